#!/usr/bin/env python3
"""Writes the tokenizer golden fixtures in this folder (run once, commit the outputs):

  corpus.json            hard strings and, per tokenizer, the ids (and for byte-level BPE
                         the start byte offsets and the decoded text) that the reference
                         libraries produce; nfc_changes_it marks text that NFC alters
  tiny-bpe/tokenizer.json       a byte-level BPE (vocab 400) trained here on our own text
  tiny-bpe/tokenizer_strip.json the same plus added tokens with lstrip / rstrip
  tiny-bpe/tokenizer_digits.json the same with Digits + ByteLevel(add_prefix_space=true)
  tiny-spm/tokenizer.model      a SentencePiece BPE with byte fallback (vocab 500), same text

References: Hugging Face `tokenizers` for tokenizer.json files, the `sentencepiece`
package for tokenizer.model files. Real tokenizer files are read from ../shared.

    /work/golden-venv/bin/python tests/golden/tokenizers/make_tokenizer_golden.py
"""
import json
import os
import tempfile
import unicodedata

import sentencepiece as spm
from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers, decoders, trainers

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.environ.get("AL_SHARED_DIR", os.path.join(HERE, "..", "..", "..", "..", "shared"))

CORPUS = [
    "",
    "Hello world",
    " Hello world",
    "  leading and trailing spaces  ",
    "\t tab\tseparated\t\tcolumns\t",
    "line one\r\nline two\r\n\r\nline four\n",
    "\n\n\n",
    "   \n  \n",
    "1234567890123456789 and 3.14159 and 1,000,000",
    "The year 2024 had 366 days; 007 is a number too.",
    "你好，世界！这是一个测试。",
    "日本語のテキストとカタカナ、ひらがな。",
    "한국어 문장입니다. 한글 자모: ᄒ ᅡ ᆫ",
    "Emoji: 🦙🚀✨ family 👨‍👩‍👧‍👦 thumbs 👍🏽 flag 🇫🇷",
    "Combining: e\u0301 a\u0308 o\u0302\u0323 n\u0303",
    "NFC: \u00e9t\u00e9 vs NFD: e\u0301te\u0301",
    "Angstrom \u212b and ohm \u2126 and \ufb01 ligature",
    "Reordered marks: x\u0302\u0323 q\u0307\u0323 a\u0302\u0323 \u1100\u1161\u11a8",
    "Zalgo: Z\u0351\u036b\u0343a\u0310l\u0352g\u0300o\u0308",
    "Arabic: مرحبا بالعالم and Hebrew: שלום עולם",
    "Hindi: नमस्ते दुनिया, Thai: สวัสดีชาวโลก",
    "Mixed\u00a0no-break\u2003em space\u3000ideographic\u0085nel",
    "Space zoo: a\x1cb\x1dc\x1ed\x1ff \u180e g\u200bh\ufeffi \u2028j\u2029k \u1680l\u205fm\u202fn\u2007o",
    "\u3000\u3000x \u00a0 y\u0085\u0085z \x0b\x0c w\u00a0\u00a0",
    "def add(a, b):\n    return a + b  # sum\n\n\tif x >= 10 && y != 3:\n",
    "for (int i = 0; i < n; ++i) { sum += x[i] * w[i]; }",
    '{"name": "get_weather", "arguments": {"city": "Paris"}}',
    "It's we're they've I'm you'll she'd IT'S WE'RE",
    "Don't stop!!! ??? ... --- *** ### $$$ %%%",
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n",
    "text <tool_call>{\"name\": \"f\"}</tool_call> more",
    "<s>[INST] What is 2+2? [/INST] 4</s>",
    "almost special <|eot_id and <|im_end| and [INST without closing",
    "Ünïcödé wörds: Füße, naïve, façade, Øresund, ĳssel",
    "Math: ∑ x² ≤ ∞, ∀ε>0 ∃δ; α β γ",
    "Numerals: ١٢٣ ४५६ Ⅻ ½ 12345",
    "URL https://example.com/path?q=1&r=two#frag and email a.b@c.org",
    "a" * 300,
    " " * 40 + "x",
    "🦙" * 12,
]

BYTE_LEVEL = {
    "qwen2.5": "tokenizers/qwen2.5/tokenizer.json",
    "llama-3.2": "tokenizers/llama-3.2/tokenizer.json",
}
SENTENCEPIECE = {
    "llama2": "tokenizers/llama2-sentencepiece/tokenizer.model",
    "mistral-v3": "tokenizers/mistral-sentencepiece/tokenizer.model.v3",
}

TRAINING_TEXT = """\
The engine reads agent trajectories, renders them with a chat template and trains small
adapters. Tokens are counted in bytes and characters; offsets say where each token starts.
A tokenizer splits text into pieces: words, spaces, digits 0 1 2 3 4 5 6 7 8 9, marks.
Refusals are short: I can't help with that. Helpful answers call tools and report results.
Weather in Paris is 22 degrees; the assistant replies politely and stops at the end of turn.
Merges join frequent neighbours first, so common words become single tokens quickly.
"""


def byte_offsets(text, char_offsets):
    """Hugging Face reports character offsets; the engine reports byte offsets."""
    return [len(text[:start].encode("utf-8")) for start, _ in char_offsets]


def encode_byte_level(tokenizer, text, parse_special):
    tokenizer.encode_special_tokens = not parse_special
    encoding = tokenizer.encode(text, add_special_tokens=False)
    return {"ids": encoding.ids, "offsets": byte_offsets(text, encoding.offsets),
            "decoded": tokenizer.decode(encoding.ids, skip_special_tokens=False)}


def train_tiny_bpe(folder):
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|end|>", "<|user|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(TRAINING_TEXT.splitlines() * 20, trainer)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "tokenizer.json")
    tokenizer.save(path)
    return path


STRIP_CASES = [
    " a <mask> b",
    "x\t<mask>  [[note]]   y",
    "<mask>",
    "  <mask>",
    "[[note]]\n\nz",
    "two<mask><mask>[[note]][[note]]end",
]


def add_strip_tokens(tokenizer, folder):
    """A copy with a special lstrip token and a non-special rstrip token."""
    tokenizer.add_special_tokens([AddedToken("<mask>", lstrip=True, rstrip=False, special=True)])
    tokenizer.add_tokens([AddedToken("[[note]]", lstrip=False, rstrip=True, special=False)])
    path = os.path.join(folder, "tokenizer_strip.json")
    tokenizer.save(path)
    return path


def with_digits_pre_tokenizer(tokenizer, folder):
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)])
    path = os.path.join(folder, "tokenizer_digits.json")
    tokenizer.save(path)
    return path


def train_tiny_spm(folder):
    os.makedirs(folder, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        text_path = os.path.join(scratch, "train.txt")
        with open(text_path, "w", encoding="utf-8") as handle:
            handle.write(TRAINING_TEXT * 20)
        prefix = os.path.join(scratch, "tiny")
        spm.SentencePieceTrainer.train(input=text_path, model_prefix=prefix, vocab_size=500, model_type="bpe",
                                       byte_fallback=True, character_coverage=1.0,
                                       normalization_rule_name="identity", remove_extra_whitespaces=False,
                                       control_symbols=["[TURN]"], minloglevel=2)
        path = os.path.join(folder, "tokenizer.model")
        with open(prefix + ".model", "rb") as source, open(path, "wb") as target:
            target.write(source.read())
    return path


def main():
    tiny_bpe = train_tiny_bpe(os.path.join(HERE, "tiny-bpe"))
    tiny_spm = train_tiny_spm(os.path.join(HERE, "tiny-spm"))
    byte_level = {name: Tokenizer.from_file(os.path.join(SHARED, path)) for name, path in BYTE_LEVEL.items()}
    byte_level["tiny-bpe"] = Tokenizer.from_file(tiny_bpe)
    byte_level["tiny-bpe-digits"] = Tokenizer.from_file(
        with_digits_pre_tokenizer(Tokenizer.from_file(tiny_bpe), os.path.dirname(tiny_bpe)))
    pieces = {name: spm.SentencePieceProcessor(model_file=os.path.join(SHARED, path))
              for name, path in SENTENCEPIECE.items()}
    pieces["tiny-spm"] = spm.SentencePieceProcessor(model_file=tiny_spm)

    cases = []
    for text in CORPUS:
        case = {"text": text, "nfc_changes_it": unicodedata.normalize("NFC", text) != text,
                "byte_level": {}, "sentencepiece": {}}
        for name, tokenizer in byte_level.items():
            case["byte_level"][name] = {
                "special": encode_byte_level(tokenizer, text, parse_special=True),
                "plain": encode_byte_level(tokenizer, text, parse_special=False),
            }
        for name, processor in pieces.items():
            case["sentencepiece"][name] = processor.encode(text)
        cases.append(case)

    stripping = Tokenizer.from_file(add_strip_tokens(Tokenizer.from_file(tiny_bpe), os.path.dirname(tiny_bpe)))
    strip_cases = [{"text": text,
                    "special": encode_byte_level(stripping, text, parse_special=True),
                    "plain": encode_byte_level(stripping, text, parse_special=False)} for text in STRIP_CASES]

    llama = byte_level["llama-3.2"]
    llama.encode_special_tokens = False
    with_bos = llama.encode("Hello world", add_special_tokens=True).ids

    golden = {
        "generator": "tests/golden/tokenizers/make_tokenizer_golden.py",
        "references": {"tokenizers": __import__("tokenizers").__version__, "sentencepiece": spm.__version__},
        "unicode_check": unicodedata.unidata_version,
        "llama3_hello_world_with_special": with_bos,
        "cases": cases,
        "strip_cases": strip_cases,
    }
    with open(os.path.join(HERE, "corpus.json"), "w", encoding="utf-8") as handle:
        json.dump(golden, handle, ensure_ascii=False, separators=(",", ":"))
        handle.write("\n")


if __name__ == "__main__":
    main()
