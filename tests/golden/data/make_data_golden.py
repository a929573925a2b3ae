"""Expected renders and token ids of data/ records, from Hugging Face transformers.

For a few records of data/agentalign_sample.json, with the real Qwen2.5 and Llama 3.2
tokenizers in ../shared/tokenizers, this writes what `agentlora data inspect --raw`
and `--ids` must print: apply_chat_template(messages, tools=tools, tokenize=False) on
the record with tool-call arguments parsed into objects (agentlora's default), then the
tokenizer's ids for that text without added special tokens. Llama 3.2 gets the fixed
date "26 Jul 2024". Not run in CI; run from the repository root with the generator venv:

    /work/golden-venv/bin/python tests/golden/data/make_data_golden.py
"""
import json
import os

from transformers import AutoTokenizer

SHARED = os.environ.get("AL_SHARED_DIR", "../shared")
RECORDS = [1, 2, 50, 60, 88]  # 1-based record numbers: harmful and benign, short and multi-step
CASES = {"qwen2.5": {}, "llama-3.2": {"date_string": "26 Jul 2024"}}


def as_template_messages(record):
    messages = []
    for message in record["messages"]:
        message = dict(message)
        if message.get("tool_calls"):
            calls = []
            for call in message["tool_calls"]:
                call = json.loads(json.dumps(call))
                arguments = call["function"]["arguments"]
                if isinstance(arguments, str):
                    call["function"]["arguments"] = json.loads(arguments)
                calls.append(call)
            message["tool_calls"] = calls
        if message.get("content") is None:
            message["content"] = ""
        messages.append(message)
    return messages


def main():
    with open("data/agentalign_sample.json", encoding="utf-8") as f:
        records = json.load(f)
    out = {"records": RECORDS, "cases": {}}
    for name, extra in CASES.items():
        tokenizer = AutoTokenizer.from_pretrained(os.path.join(SHARED, "tokenizers", name))
        texts, ids = [], []
        for number in RECORDS:
            record = records[number - 1]
            text = tokenizer.apply_chat_template(as_template_messages(record), tools=record.get("tools"),
                                                 tokenize=False, **extra)
            texts.append(text)
            ids.append(tokenizer(text, add_special_tokens=False)["input_ids"])
        out["cases"][name] = {"texts": texts, "ids": ids, "template_kwargs": extra}
    with open("tests/golden/data/expected_inspect.json", "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)


if __name__ == "__main__":
    main()
