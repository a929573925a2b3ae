#!/usr/bin/env python3
"""Trains the demo's small byte-level BPE tokenizer on the project's own sample data.

    /work/golden-venv/bin/python data/make_demo_tokenizer.py      (from the repository root)

writes data/demo-tokenizer/tokenizer.json and tokenizer_config.json, and the ids that
Hugging Face `tokenizers` gives a few check strings to tests/golden/demo_tokenizer_ids.json
(tests/unit/test_demo_tokenizer.c compares agentlora's tokenizer against them).

The tokenizer is shaped like Qwen2.5's so that the chatml-qwen2.5 chat format works on
it unchanged: the same Split regex (read from Qwen2.5's tokenizer.json) followed by
ByteLevel without its own regex, a ByteLevel decoder, <|endoftext|> / <|im_start|> /
<|im_end|> as special added tokens and <tool_call>, </tool_call>, <tool_response>,
</tool_response> as non-special added tokens. Only the vocabulary is small (2048 ids),
so a random model built on it (`agentlora init-model --tokenizer data/demo-tokenizer`)
stays tiny. The training text is every message content, every tool schema and every
tool call rendered as the Qwen2.5 template renders it. Output is deterministic.
"""
import json
import os
import sys

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
QWEN_TOKENIZER = os.environ.get("QWEN_TOKENIZER", "/work/shared/tokenizers/qwen2.5/tokenizer.json")
OUT_DIR = os.path.join(HERE, "demo-tokenizer")
IDS_FILE = os.path.join(ROOT, "tests", "golden", "demo_tokenizer_ids.json")
DATA_FILES = [os.path.join(HERE, "agentalign_sample.json"), os.path.join(HERE, "agentalign_eval.json")]

VOCAB_SIZE = 2048
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
TOOL_TOKENS = ["<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>"]
# Merges must be seen at least twice: a pair seen once is noise from one record.
MIN_FREQUENCY = 2
MODEL_MAX_LENGTH = 2048

# Strings whose Hugging Face ids the C test checks: plain prose, digits, whitespace runs,
# non-ASCII text, JSON, and the chat and tool markers.
CHECK_STRINGS = [
    "Hello world! I can't help with that.",
    "Send 3 files to notes/retro_de.md by 2025-06-12, please.",
    "  leading spaces\n\n\ttabs and\r\nnewlines   ",
    "Maßnahme: instabile Tests bis Freitag isolieren. Déjà vu, naïve café — 東京 🙂",
    '{"name": "read_file", "arguments": {"path": "notes/retro.md"}}',
    "<|im_start|>user\nRead the notes.<|im_end|>\n<|im_start|>assistant\n<tool_call>\n{}\n</tool_call><|im_end|>",
    "<tool_response>\n{\"written\": true}\n</tool_response><|endoftext|>",
]


def qwen_split_regex():
    """The Split pattern of Qwen2.5's pre-tokenizer (a format fact, read from its file)."""
    with open(QWEN_TOKENIZER, encoding="utf-8") as f:
        pre = json.load(f)["pre_tokenizer"]
    for step in pre["pretokenizers"]:
        if step["type"] == "Split":
            return step["pattern"]["Regex"]
    sys.exit(f"{QWEN_TOKENIZER}: no Split pre-tokenizer found")


def rendered_tool_call(call):
    """A tool call as the Qwen2.5 chat template writes it."""
    function = call["function"]
    arguments = function["arguments"]
    if isinstance(arguments, str):
        arguments = json.loads(arguments)
    body = json.dumps({"name": function["name"], "arguments": arguments}, ensure_ascii=False)
    return f"<tool_call>\n{body}\n</tool_call>"


def training_texts():
    texts = []
    for path in DATA_FILES:
        with open(path, encoding="utf-8") as f:
            records = json.load(f)
        for record in records:
            for tool in record.get("tools", []):
                texts.append(json.dumps(tool, ensure_ascii=False))
            for message in record["messages"]:
                if message.get("content"):
                    texts.append(message["content"])
                for call in message.get("tool_calls") or []:
                    texts.append(rendered_tool_call(call))
    return texts


def build_tokenizer():
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(qwen_split_regex()), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    # The added tokens take the last ids, as in Qwen2.5.
    n_added = len(SPECIAL_TOKENS) + len(TOOL_TOKENS)
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE - n_added, min_frequency=MIN_FREQUENCY,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(training_texts(), trainer=trainer)
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in TOOL_TOKENS])
    if tokenizer.get_vocab_size() != VOCAB_SIZE:
        sys.exit(f"expected {VOCAB_SIZE} ids, got {tokenizer.get_vocab_size()}")
    return tokenizer


def tokenizer_config(tokenizer):
    decoder = {}
    for token in SPECIAL_TOKENS + TOOL_TOKENS:
        decoder[str(tokenizer.token_to_id(token))] = {
            "content": token, "lstrip": False, "normalized": False, "rstrip": False,
            "single_word": False, "special": token in SPECIAL_TOKENS,
        }
    # No chat_template: the demo names the chatml-qwen2.5 format explicitly.
    return {
        "add_bos_token": False,
        "add_prefix_space": False,
        "added_tokens_decoder": decoder,
        "additional_special_tokens": ["<|im_start|>", "<|im_end|>"],
        "bos_token": None,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|im_end|>",
        "errors": "replace",
        "model_max_length": MODEL_MAX_LENGTH,
        "pad_token": "<|endoftext|>",
        "split_special_tokens": False,
        "tokenizer_class": "PreTrainedTokenizerFast",
        "unk_token": None,
    }


def write_tokenizer_json(tokenizer, path):
    """Saves the tokenizer with the decoder spelled as Qwen2.5 spells it: decoders.ByteLevel
    takes no options and saves the pre-tokenizer defaults, which a decoder ignores."""
    data = json.loads(tokenizer.to_str())
    data["decoder"] = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, separators=(",", ":"))


def write_ids(path, special_ids, checks):
    """One check per line, so a diff shows which string changed."""
    lines = ['{"generator": "data/make_demo_tokenizer.py",',
             f' "tokenizers_version": {json.dumps(__import__("tokenizers").__version__)},',
             f' "special_ids": {json.dumps(special_ids, ensure_ascii=False)},',
             ' "cases": [']
    lines += ["  " + json.dumps(c, ensure_ascii=False) + ("," if i + 1 < len(checks) else "")
              for i, c in enumerate(checks)]
    lines += [" ]}"]
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def write_json(path, value, indent):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, ensure_ascii=False, indent=indent)
        f.write("\n")


def main():
    tokenizer = build_tokenizer()
    os.makedirs(OUT_DIR, exist_ok=True)
    tokenizer_path = os.path.join(OUT_DIR, "tokenizer.json")
    write_tokenizer_json(tokenizer, tokenizer_path)
    write_json(os.path.join(OUT_DIR, "tokenizer_config.json"), tokenizer_config(tokenizer), 2)

    reloaded = Tokenizer.from_file(tokenizer_path)
    checks = []
    for text in CHECK_STRINGS:
        ids = reloaded.encode(text, add_special_tokens=False).ids
        if reloaded.decode(ids, skip_special_tokens=False) != text:
            sys.exit(f"round trip failed for {text!r}")
        checks.append({"text": text, "ids": ids})
    write_ids(IDS_FILE, {t: reloaded.token_to_id(t) for t in SPECIAL_TOKENS + TOOL_TOKENS}, checks)
    print(f"wrote {tokenizer_path} ({os.path.getsize(tokenizer_path)} bytes, {reloaded.get_vocab_size()} ids)")


if __name__ == "__main__":
    main()
