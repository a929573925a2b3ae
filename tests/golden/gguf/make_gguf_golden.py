"""Writes tests/golden/gguf/: a tiny Llama GGUF with tensors in every type agentlora
dequantises, and what the `gguf` package and transformers make of it.

    /work/golden-venv/bin/python tests/golden/gguf/make_gguf_golden.py

Outputs (all small, committed):
  tiny-llama.gguf   hidden 64, 2 layers, 4 heads / 2 KV heads, ffn 256, the demo
                    tokenizer's BPE vocabulary (byte-level, gpt2-style) and merges
  expected.json     per GGUF tensor: type, row-major shape, float64 sum and sum of squares
                    of the gguf package's dequantised float32 values (in row-major order),
                    and sampled (flat index, value) pairs; per Hugging Face tensor (as
                    transformers loads the file: q/k un-permuted) the same; the config
                    transformers derives; logits on a few token ids; the token ids
                    transformers' tokenizer built from the GGUF gives on a few strings.

Q4_K and Q6_K cannot be quantised by the gguf package, so those tensors are random bytes
(with finite half-precision scales): every bit pattern is a valid block, and the
package's dequantiser is the reference. Deterministic: fixed seeds, one thread.
"""
import json
import os
import sys

import numpy as np
import gguf
from gguf.quants import quantize, dequantize

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
GGUF_PATH = os.path.join(HERE, "tiny-llama.gguf")
T = gguf.GGMLQuantizationType

HIDDEN, LAYERS, HEADS, KV_HEADS, FFN = 64, 2, 4, 2, 256
HEAD_DIM = HIDDEN // HEADS
CONTEXT, RMS_EPS, ROPE_THETA = 256, 1e-5, 10000.0
SAMPLES_PER_TENSOR = 64
LOGIT_IDS = [[1, 17, 300, 5, 42, 1999, 7], [100, 200, 3]]
TOKENIZE_STRINGS = ["Hello, world!", "  two  spaces\nand a newline", "don't 123 4567 émigré ∑",
                    "<|im_start|>user\nhi<|im_end|>"]

# The demo tokenizer carries no chat template; the GGUF gets ChatML's (SmolLM2's format)
# so that converting it has one to carry into tokenizer_config.json.
CHATML_TEMPLATE = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] "
                   "+ '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
                   "{% endif %}")

# Which type each tensor is stored in: every supported type appears at least once.
LAYER_TYPES = {
    "attn_q": T.Q4_0, "attn_k": T.Q4_1, "attn_v": T.F16, "attn_output": T.Q8_0,
    "ffn_gate": T.BF16, "ffn_up": T.Q8_0,
}
FFN_DOWN_TYPES = [T.Q4_K, T.Q6_K]  # rows of 256 values: one super-block each


def llama_cpp_permute(w, n_head):
    """What llama.cpp's convert_hf_to_gguf.py does to q_proj/k_proj rows: per head, the
    two halves of the rows are interleaved (row i of half j goes to row 2i + j)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def random_k_blocks(rng, rows, cols, qtype):
    """Random raw blocks of a K type, with the half-precision scales set to finite
    values of a sensible size."""
    block_values, block_bytes = gguf.GGML_QUANT_SIZES[qtype]
    blocks = rows * cols // block_values
    raw = rng.integers(0, 256, size=(blocks, block_bytes), dtype=np.uint8)
    if qtype == T.Q4_K:
        d = rng.uniform(1e-3, 4e-3, size=(blocks, 2)).astype(np.float16)  # d, dmin
        raw[:, 0:4] = d.view(np.uint8).reshape(blocks, 4)
    elif qtype == T.Q6_K:
        d = rng.uniform(1e-4, 5e-4, size=(blocks, 1)).astype(np.float16)
        raw[:, block_bytes - 2:] = d.view(np.uint8).reshape(blocks, 2)
    else:
        raise ValueError(qtype)
    return raw.reshape(rows, cols // block_values * block_bytes)


def encode(rng, w, qtype):
    """The bytes (or array) to store and the gguf package's dequantised float32 values."""
    if qtype == T.F32:
        return w.astype(np.float32), w.astype(np.float32)
    if qtype == T.F16:
        h = w.astype(np.float16)
        return h, h.astype(np.float32)
    q = quantize(w.astype(np.float32), qtype)
    return q, dequantize(q, qtype).astype(np.float32)


def summary(values, rng):
    flat = np.ascontiguousarray(values, dtype=np.float32).reshape(-1)
    index = np.unique(np.concatenate([np.arange(min(8, flat.size)),
                                      rng.integers(0, flat.size, SAMPLES_PER_TENSOR), [flat.size - 1]]))
    return {
        "shape": list(values.shape),
        "sum": float(flat.astype(np.float64).sum()),
        "sum_squares": float((flat.astype(np.float64) ** 2).sum()),
        "samples": [[int(i), float(flat[i])] for i in index],
    }


def load_tokenizer():
    with open(os.path.join(ROOT, "data", "demo-tokenizer", "tokenizer.json")) as f:
        tok = json.load(f)
    vocab = tok["model"]["vocab"]
    size = max(max(vocab.values()), max(a["id"] for a in tok["added_tokens"])) + 1
    tokens = [None] * size
    types = [gguf.TokenType.NORMAL] * size
    for text, i in vocab.items():
        tokens[i] = text
    for added in tok["added_tokens"]:
        tokens[added["id"]] = added["content"]
        types[added["id"]] = gguf.TokenType.CONTROL if added["special"] else gguf.TokenType.USER_DEFINED
    assert all(t is not None for t in tokens)
    merges = [" ".join(m) if isinstance(m, list) else m for m in tok["model"]["merges"]]
    with open(os.path.join(ROOT, "data", "demo-tokenizer", "tokenizer_config.json")) as f:
        config = json.load(f)
    return tokens, types, merges, config


def token_id(tokens, text):
    return tokens.index(text)


def write_gguf(rng):
    tokens, types, merges, tok_config = load_tokenizer()
    vocab = len(tokens)
    w = gguf.GGUFWriter(GGUF_PATH, arch="llama")
    w.add_name("agentlora tiny llama")
    w.add_context_length(CONTEXT)
    w.add_embedding_length(HIDDEN)
    w.add_block_count(LAYERS)
    w.add_feed_forward_length(FFN)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV_HEADS)
    w.add_layer_norm_rms_eps(RMS_EPS)
    w.add_rope_freq_base(ROPE_THETA)
    w.add_rope_dimension_count(HEAD_DIM)
    w.add_vocab_size(vocab)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(token_id(tokens, "<|im_start|>"))
    w.add_eos_token_id(token_id(tokens, "<|im_end|>"))
    w.add_pad_token_id(token_id(tokens, "<|endoftext|>"))
    w.add_add_bos_token(False)
    w.add_chat_template(tok_config.get("chat_template") or CHATML_TEMPLATE)

    gguf_values = {}

    def add(name, hf_weight, qtype, permute_heads=None):
        stored = hf_weight if permute_heads is None else llama_cpp_permute(hf_weight, permute_heads)
        if qtype in (T.Q4_K, T.Q6_K):
            raw = random_k_blocks(rng, stored.shape[0], stored.shape[1], qtype)
            values = dequantize(raw, qtype).astype(np.float32)
        else:
            raw, values = encode(rng, stored, qtype)
        if raw.dtype == np.uint8 and qtype not in (T.F32, T.F16):
            w.add_tensor(name, raw, raw_shape=raw.shape, raw_dtype=qtype)
        else:
            w.add_tensor(name, raw)
        gguf_values[name] = (qtype, values)

    def normal(*shape, std=0.08):
        return (rng.standard_normal(shape) * std).astype(np.float32)

    add("token_embd.weight", normal(vocab, HIDDEN, std=0.5), T.Q8_0)
    for layer in range(LAYERS):
        p = f"blk.{layer}."
        add(p + "attn_norm.weight", 1 + normal(HIDDEN, std=0.1), T.F32)
        add(p + "attn_q.weight", normal(HIDDEN, HIDDEN, std=0.3), LAYER_TYPES["attn_q"], HEADS)
        add(p + "attn_k.weight", normal(KV_HEADS * HEAD_DIM, HIDDEN, std=0.3), LAYER_TYPES["attn_k"], KV_HEADS)
        add(p + "attn_v.weight", normal(KV_HEADS * HEAD_DIM, HIDDEN, std=0.2), LAYER_TYPES["attn_v"])
        add(p + "attn_output.weight", normal(HIDDEN, HIDDEN, std=0.2), LAYER_TYPES["attn_output"])
        add(p + "ffn_norm.weight", 1 + normal(HIDDEN, std=0.1), T.F32)
        add(p + "ffn_gate.weight", normal(FFN, HIDDEN, std=0.2), LAYER_TYPES["ffn_gate"])
        add(p + "ffn_up.weight", normal(FFN, HIDDEN, std=0.2), LAYER_TYPES["ffn_up"])
        add(p + "ffn_down.weight", normal(HIDDEN, FFN), FFN_DOWN_TYPES[layer])
    add("output_norm.weight", 1 + normal(HIDDEN, std=0.1), T.F32)
    add("output.weight", normal(vocab, HIDDEN, std=0.3), T.Q8_0)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return gguf_values


def check_reader_agrees(gguf_values):
    """The gguf package's reader gives back the values we wrote."""
    reader = gguf.GGUFReader(GGUF_PATH)
    for t in reader.tensors:
        values = dequantize(t.data, t.tensor_type).astype(np.float32)
        expected = gguf_values[t.name][1]
        assert values.shape == expected.shape and np.array_equal(values, expected), t.name


def transformers_side(expected):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = AutoModelForCausalLM.from_pretrained(HERE, gguf_file=os.path.basename(GGUF_PATH),
                                                 torch_dtype=torch.float32, attn_implementation="eager")
    model.eval()
    cfg = model.config
    expected["config"] = {k: getattr(cfg, k) for k in [
        "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
        "vocab_size", "max_position_embeddings", "rms_norm_eps", "rope_theta", "tie_word_embeddings",
        "bos_token_id", "eos_token_id"] if hasattr(cfg, k)}
    rng = np.random.default_rng(7)
    state = model.state_dict()
    expected["hf_tensors"] = {name: summary(t.detach().numpy(), rng) for name, t in sorted(state.items())
                              if not name.endswith("rotary_emb.inv_freq")}
    with torch.no_grad():
        expected["logits"] = []
        for ids in LOGIT_IDS:
            logits = model(torch.tensor([ids])).logits[0].numpy()
            expected["logits"].append({"ids": ids, "summary": summary(logits, rng),
                                       "last_row": [float(v) for v in logits[-1]]})
    tokenizer = AutoTokenizer.from_pretrained(HERE, gguf_file=os.path.basename(GGUF_PATH))
    expected["chat_template"] = tokenizer.chat_template
    expected["tokenize"] = [{"text": s, "ids": tokenizer(s, add_special_tokens=False)["input_ids"]}
                            for s in TOKENIZE_STRINGS]
    return model


def check_inverse_permutation(model, gguf_values):
    """transformers' un-permuted q/k equal our own inverse of llama.cpp's permutation."""
    state = model.state_dict()
    for layer in range(LAYERS):
        for short, hf, heads in (("attn_q", "q_proj", HEADS), ("attn_k", "k_proj", KV_HEADS)):
            g = gguf_values[f"blk.{layer}.{short}.weight"][1]
            rows = g.shape[0]
            inverse = g.reshape(heads, HEAD_DIM // 2, 2, -1).swapaxes(1, 2).reshape(rows, -1)
            hf_w = state[f"model.layers.{layer}.self_attn.{hf}.weight"].numpy()
            assert np.array_equal(inverse, hf_w), (layer, short)


def main():
    rng = np.random.default_rng(20261123)
    gguf_values = write_gguf(rng)
    check_reader_agrees(gguf_values)
    sample_rng = np.random.default_rng(11)
    expected = {"gguf_tensors": {}}
    for name, (qtype, values) in gguf_values.items():
        expected["gguf_tensors"][name] = {"type": qtype.name, **summary(values, sample_rng)}
    model = transformers_side(expected)
    check_inverse_permutation(model, gguf_values)
    import importlib.metadata
    import transformers
    expected["versions"] = {"gguf": importlib.metadata.version("gguf"), "transformers": transformers.__version__,
                            "numpy": np.__version__}
    with open(os.path.join(HERE, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)
        f.write("\n")
    print("wrote", GGUF_PATH, os.path.getsize(GGUF_PATH), "bytes")


if __name__ == "__main__":
    sys.exit(main())
