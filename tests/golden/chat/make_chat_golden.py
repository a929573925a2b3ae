"""Writes the expected chat-template renders the C renderers are checked against.

Run from the repository root with the golden virtualenv:
    /work/golden-venv/bin/python tests/golden/chat/make_chat_golden.py

For every conversation in tests/golden/chat/conversations.json and every supported
model family, it renders the ORIGINAL chat template (read from /work/shared/templates)
through transformers' own apply_chat_template(tokenize=False) on a tokenizer object that
carries the model's bos/eos tokens, and writes tests/golden/chat/expected_<format>.json:
{"template": <source file>, "cases": {<name>: {"text": ...} | {"error": ...}},
"cases_arguments_as_objects": the same with string tool-call arguments json.loads()-ed
first (checked with the renderer's string_arguments_as_objects option)}.
Per-case options: add_generation_prompt, llama_tools_in_system (Llama 3's
tools_in_user_message=False) and enable_thinking (Qwen3), passed as apply_chat_template
keyword arguments; templates ignore the ones they do not know.
Records may name AgentAlign tools by "synthetic_tools": [...]; they are resolved from
/work/shared/agentalign/synthetic_tools.json here and in the C test alike.
"""
import json
import os
import sys

import transformers
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from transformers import PreTrainedTokenizerFast

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.environ.get("AL_SHARED_DIR", os.path.join(HERE, "..", "..", "..", "..", "shared"))
TEMPLATES = os.path.join(SHARED, "templates")
DATE_STRING = "05 Mar 2025"  # passed to every template; only Llama 3 uses it

# format name -> (tokenizer_config.json with the original template, or the bare .jinja
# template when no whole config was collected; alternative template files that must
# render identically)
FORMATS = {
    "llama3.1": ("Llama-3.1-8B-Instruct.tokenizer_config.json", ["meta-llama-Llama-3.1-8B-Instruct.jinja"]),
    "llama3.2": ("Llama-3.2-Instruct.tokenizer_config.json", ["meta-llama-Llama-3.2-3B-Instruct.jinja"]),
    "chatml-qwen2.5": ("Qwen2.5-Instruct.tokenizer_config.json", ["Qwen-Qwen2.5-7B-Instruct.jinja"]),
    "smollm2": ("SmolLM2-Instruct.tokenizer_config.json", []),
    "mistral-nemo": ("Mistral-Nemo-Instruct-2407.tokenizer_config.json",
                     ["mistralai-Mistral-Nemo-Instruct-2407.jinja"]),
    "qwen3": ("Qwen-Qwen3-0.6B.jinja", []),
}

# The special tokens of models whose template is a bare .jinja file (Qwen/Qwen3-0.6B's
# tokenizer_config.json: bos_token null, eos_token "<|im_end|>").
BARE_TEMPLATE_TOKENS = {
    "Qwen-Qwen3-0.6B.jinja": {"bos_token": None, "eos_token": "<|im_end|>"},
}


def load_format(template_file):
    """The tokenizer config (for its special tokens) and the original chat template."""
    with open(os.path.join(TEMPLATES, template_file)) as f:
        if template_file.endswith(".jinja"):
            config = dict(BARE_TEMPLATE_TOKENS[template_file])
            config["chat_template"] = f.read()
        else:
            config = json.load(f)
    return config


def make_tokenizer(config, template):
    """A minimal fast tokenizer: only its special tokens and chat template matter here."""
    backend = Tokenizer(WordLevel({"<unk>": 0}, unk_token="<unk>"))
    specials = {k: config[k] for k in ("bos_token", "eos_token") if isinstance(config.get(k), str)}
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", **specials)
    tokenizer.chat_template = template
    return tokenizer


def resolve_record(record, synthetic_tools):
    record = dict(record)
    names = record.pop("synthetic_tools", None)
    if names is not None:
        by_name = {tool["function"]["name"]: tool for tool in synthetic_tools}
        record["tools"] = [by_name[name] for name in names]
    return record


def with_parsed_arguments(record):
    """The record as callers who json.loads() string arguments first would pass it."""
    record = dict(record)
    messages = []
    for message in record["messages"]:
        message = dict(message)
        if message.get("tool_calls"):
            calls = []
            for call in message["tool_calls"]:
                call = dict(call)
                function = dict(call["function"])
                if isinstance(function.get("arguments"), str):
                    function["arguments"] = json.loads(function["arguments"])
                call["function"] = function
                calls.append(call)
            message["tool_calls"] = calls
        messages.append(message)
    record["messages"] = messages
    return record


def render(tokenizer, case, record):
    kwargs = {"date_string": DATE_STRING}
    if case.get("llama_tools_in_system"):
        kwargs["tools_in_user_message"] = False
    if "enable_thinking" in case:  # Qwen3's switch; the other templates ignore it
        kwargs["enable_thinking"] = case["enable_thinking"]
    # transformers hands the template what the caller passes; a JSON null content is None.
    messages = [dict(m) for m in record["messages"]]
    for m in messages:
        if m.get("content") is None:
            m["content"] = ""
    try:
        text = tokenizer.apply_chat_template(
            messages, tools=record.get("tools"), tokenize=False,
            add_generation_prompt=bool(case.get("add_generation_prompt")), **kwargs)
        return {"text": text}
    except Exception as error:  # the templates raise_exception() on unsupported shapes
        return {"error": f"{type(error).__name__}: {error}"}


def main():
    with open(os.path.join(HERE, "conversations.json")) as f:
        cases = json.load(f)
    with open(os.path.join(SHARED, "agentalign", "synthetic_tools.json")) as f:
        synthetic_tools = json.load(f)
    for name, (config_file, alternatives) in FORMATS.items():
        config = load_format(config_file)
        tokenizer = make_tokenizer(config, config["chat_template"])
        results = {}
        parsed_results = {}
        for case in cases:
            record = resolve_record(case["record"], synthetic_tools)
            results[case["name"]] = render(tokenizer, case, record)
            parsed_results[case["name"]] = render(tokenizer, case, with_parsed_arguments(record))
            for alternative in alternatives:
                with open(os.path.join(TEMPLATES, alternative)) as f:
                    other = make_tokenizer(config, f.read())
                again = render(other, case, record)
                if again.get("text") != results[case["name"]].get("text"):
                    print(f"note: {name}/{case['name']}: {alternative} renders differently", file=sys.stderr)
        out = {"template": config_file, "generator": f"transformers {transformers.__version__}",
               "date_string": DATE_STRING, "cases": results,
               "cases_arguments_as_objects": parsed_results}
        path = os.path.join(HERE, f"expected_{name}.json")
        with open(path, "w") as f:
            json.dump(out, f, ensure_ascii=False, indent=1)
            f.write("\n")
        errors = sum("error" in r for r in results.values())
        print(f"{path}: {len(results)} cases, {errors} template errors")


if __name__ == "__main__":
    main()
