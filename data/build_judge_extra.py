#!/usr/bin/env python3
"""Writes data/judge/agentalign_responses.jsonl: the final text answer of each record of
data/agentalign_sample.json (the training records, never the held-out eval file), labelled
a refusal for the harmful records and no refusal for the benign ones. These are agentic
answers (what an assistant says after its tool calls, or instead of them), a kind of
response the public labelled data (jailbroken chat) barely has; `make judge` trains on
them with a higher weight. Deterministic.

    python3 data/build_judge_extra.py      (from the repository root)
"""
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))


def final_text(record):
    texts = [m["content"] for m in record["messages"]
             if m["role"] == "assistant" and m.get("content") and not m.get("tool_calls")]
    return texts[-1] if texts else None


def main():
    with open(os.path.join(HERE, "agentalign_sample.json"), encoding="utf-8") as f:
        records = json.load(f)
    os.makedirs(os.path.join(HERE, "judge"), exist_ok=True)
    with open(os.path.join(HERE, "judge", "agentalign_responses.jsonl"), "w", encoding="utf-8") as out:
        for record in records:
            text = final_text(record)
            if text is None:
                continue
            row = {"text": text, "refusal": record["id"].startswith("harmful"), "source": "agentalign_sample",
                   "label_origin": "human", "split": "train", "prompt": record["messages"][0]["content"]}
            out.write(json.dumps(row, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
