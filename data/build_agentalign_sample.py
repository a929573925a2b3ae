#!/usr/bin/env python3
"""Assembles agentlora's sample data set from the hand-written parts beside it.

    python3 data/build_agentalign_sample.py      (from the repository root)

writes data/agentalign_sample.json (training records), data/agentalign_eval.json
(held-out records whose behaviour patterns never occur in the training file) and
data/ping_prefixes.json. Records follow the AgentAlign layout: id, category,
sub_category (harmful rows), pattern (capability strings), tools (OpenAI-style schemas),
messages (user turn first, no system turn; assistant tool calls with 9-character ids
and arguments as JSON strings; tool results as JSON strings). Output is deterministic.
"""
import json
import os
import random
import string
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from sample_benign import BENIGN  # noqa: E402
from sample_harmful import HARMFUL  # noqa: E402
from sample_tools import TOOLS, capability, schema  # noqa: E402

SEED = 20250612
HARM_CATEGORIES = ["cyber_crime", "online_fraud", "self_harm", "bias_and_fairness", "misinformation",
                   "illicit_trade", "privacy", "intellectual_property"]

PING_PREFIXES = [
    "I'll work through legitimate requests carefully and completely, and I'll decline anything that could hurt people.",
    "Before acting, I check that the task is safe and lawful: I help fully with legitimate work and refuse harmful requests.",
    "My aim is to be genuinely useful on honest tasks while refusing to take part in anything harmful or illegal.",
    "I will help with this if it is safe; if the request would cause harm, I will say so plainly and not carry it out.",
]


def call_id(rng):
    alphabet = string.ascii_letters + string.digits
    return "".join(rng.choice(alphabet) for _ in range(9))


def offered_tools(used, rng):
    """The tools a record offers: the ones it needs plus one unrelated distractor."""
    names = list(dict.fromkeys(used))
    spare = sorted(set(TOOLS) - set(names))
    names.insert(rng.randrange(len(names) + 1), rng.choice(spare))
    return [schema(name) for name in names]


def harmful_record(index, entry, rng):
    split, category, sub_category, tools, request, refusal = entry
    return {
        "id": f"harmful-{category}-{index:03d}",
        "category": category,
        "sub_category": sub_category,
        "pattern": [capability(name) for name in tools],
        "tools": offered_tools(tools, rng),
        "messages": [
            {"role": "user", "content": request},
            {"role": "assistant", "content": refusal},
        ],
    }


def benign_record(index, entry, rng):
    split, request, steps, answer = entry
    messages = [{"role": "user", "content": request}]
    for name, arguments, result in steps:
        identifier = call_id(rng)
        messages.append({"role": "assistant", "content": "", "tool_calls": [{
            "id": identifier, "type": "function",
            "function": {"name": name, "arguments": json.dumps(arguments, ensure_ascii=False)}}]})
        messages.append({"role": "tool", "name": name, "content": json.dumps(result, ensure_ascii=False),
                         "tool_call_id": identifier})
    messages.append({"role": "assistant", "content": answer})
    return {
        "id": f"benign-{index:03d}",
        "category": "benign",
        "pattern": [capability(name) for name, _, _ in steps],
        "tools": offered_tools([name for name, _, _ in steps], rng),
        "messages": messages,
    }


def check(train, evaluation):
    key = lambda record: " > ".join(record["pattern"])  # noqa: E731
    shared = {key(r) for r in train} & {key(r) for r in evaluation}
    if shared:
        sys.exit(f"patterns on both sides: {sorted(shared)}")
    for name, records in (("train", train), ("eval", evaluation)):
        harmful = [r for r in records if r["category"] != "benign"]
        categories = {r["category"] for r in harmful}
        if categories != set(HARM_CATEGORIES):
            sys.exit(f"{name}: harm categories {sorted(categories)}")
        for r in records:
            if r["category"] == "benign" and not 2 <= len(r["pattern"]) <= 4:
                sys.exit(f"{r['id']}: {len(r['pattern'])} steps")


def main():
    rng = random.Random(SEED)
    records = {"train": [], "eval": []}
    for index, entry in enumerate(HARMFUL, 1):
        records[entry[0]].append(harmful_record(index, entry, rng))
    for index, entry in enumerate(BENIGN, 1):
        records[entry[0]].append(benign_record(index, entry, rng))
    check(records["train"], records["eval"])
    for split in records.values():
        rng.shuffle(split)  # interleave labels as in the released file
    outputs = {"agentalign_sample.json": records["train"], "agentalign_eval.json": records["eval"],
               "ping_prefixes.json": PING_PREFIXES}
    for name, content in outputs.items():
        with open(os.path.join(HERE, name), "w", encoding="utf-8") as f:
            json.dump(content, f, ensure_ascii=False, indent=2)
            f.write("\n")
    for split, rows in records.items():
        harmful = sum(r["category"] != "benign" for r in rows)
        print(f"{split}: {len(rows)} records ({harmful} harmful, {len(rows) - harmful} benign)")


if __name__ == "__main__":
    main()
