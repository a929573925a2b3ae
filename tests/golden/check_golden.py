#!/usr/bin/env python3
"""Recomputes the golden fixtures with a plain-numpy Llama/Qwen2 + LoRA forward.

Not run in CI. It confirms that the math documented in README.md (the math the C
engine implements) reproduces what transformers + PEFT wrote:
  - logits and base_logits of every real position,
  - the loss,
  - every LoRA gradient, by a central finite difference of the numpy loss along a
    random direction (one directional derivative per tensor).
Everything is computed in float64 from the saved float32 files, so the remaining
differences are transformers' float32 rounding.

Run from the repository root:
    /work/golden-venv/bin/python tests/golden/check_golden.py
"""

import json
import math
import os
import sys

import numpy as np
from safetensors.numpy import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
CASES = ["llama_tiny", "qwen2_tiny"]
IGNORE_INDEX = -100

# The tolerances README.md promises to the C test; float64 numpy must meet them easily.
LOGITS_REL_TOL = 1e-4
LOSS_ABS_TOL = 1e-5
GRAD_REL_TOL = 1e-3
FINITE_DIFFERENCE_STEP = 1e-5  # float64 central difference: error ~ step^2 * L''' plus 1e-16 / step

PROJECTIONS = {
    "self_attn": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "mlp": ["gate_proj", "up_proj", "down_proj"],
}


# ----------------------------------------------------------------------------- config


def read_config(model_dir):
    """Accepts both spellings: hub (rope_theta + rope_scaling) and transformers>=5 (rope_parameters)."""
    with open(os.path.join(model_dir, "config.json")) as f:
        raw = json.load(f)
    if "rope_parameters" in raw:
        rope = dict(raw["rope_parameters"])
        theta = rope.pop("rope_theta")
    else:
        theta = raw["rope_theta"]
        rope = dict(raw.get("rope_scaling") or {"rope_type": "default"})
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    heads = raw["num_attention_heads"]
    return {
        "hidden": raw["hidden_size"],
        "heads": heads,
        "kv_heads": raw.get("num_key_value_heads", heads),
        "head_dim": raw.get("head_dim") or raw["hidden_size"] // heads,
        "layers": raw["num_hidden_layers"],
        "eps": raw["rms_norm_eps"],
        "theta": theta,
        "rope_type": rope_type,
        "rope": rope,
        "tied": raw.get("tie_word_embeddings", False),
    }


def inverse_frequencies(config):
    """RoPE inv_freq, with the llama3 (Llama 3.1) rescaling when asked for."""
    d = config["head_dim"]
    inv_freq = 1.0 / config["theta"] ** (np.arange(0, d, 2, dtype=np.float64) / d)
    if config["rope_type"] == "default":
        return inv_freq
    assert config["rope_type"] == "llama3", config["rope_type"]
    rope = config["rope"]
    factor = rope["factor"]
    low, high = rope["low_freq_factor"], rope["high_freq_factor"]
    old_context = rope["original_max_position_embeddings"]
    wavelen = 2.0 * math.pi / inv_freq
    # Short wavelengths (< old_context / high) stay, long ones (> old_context / low)
    # are divided by factor, and the band between blends the two linearly in
    # old_context / wavelen. The comparisons are strict on both sides, so a wavelength
    # exactly on a boundary falls in the band (where the blend gives the same value).
    smooth = (old_context / wavelen - low) / (high - low)
    blended = (1.0 - smooth) * inv_freq / factor + smooth * inv_freq
    out = np.where(wavelen > old_context / low, inv_freq / factor, inv_freq)
    in_band = ~(wavelen < old_context / high) & ~(wavelen > old_context / low)
    return np.where(in_band, blended, out)


# ----------------------------------------------------------------------------- model


def rms_norm(x, weight, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * weight


def rotate_half_rope(x, positions, inv_freq):
    """x: [T, heads, head_dim]. Pairs are (i, i + head_dim/2), not interleaved."""
    angles = positions[:, None] * inv_freq[None, :]            # [T, d/2]
    cos = np.concatenate([np.cos(angles)] * 2, axis=-1)[:, None, :]
    sin = np.concatenate([np.sin(angles)] * 2, axis=-1)[:, None, :]
    half = x.shape[-1] // 2
    rotated = np.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    return x * cos + rotated * sin


def silu(x):
    return x / (1.0 + np.exp(-x))


def linear(x, weights, prefix, lora, use_lora):
    """y = x W^T (+ b) + scale * (x A^T) B^T, PEFT's LoRA with dropout 0."""
    y = x @ weights[prefix + ".weight"].T
    if prefix + ".bias" in weights:
        y = y + weights[prefix + ".bias"]
    if use_lora:
        a = lora["params"]["base_model.model." + prefix + ".lora_A.weight"]
        b = lora["params"]["base_model.model." + prefix + ".lora_B.weight"]
        y = y + lora["scale"] * ((x @ a.T) @ b.T)
    return y


def causal_gqa_attention(q, k, v):
    """q: [T, H, d]; k, v: [T, Hkv, d]. Query head h reads key/value head h // (H / Hkv)."""
    length, heads, d = q.shape
    group = heads // k.shape[1]
    out = np.empty_like(q)
    mask = np.triu(np.full((length, length), -np.inf), k=1)
    for h in range(heads):
        scores = q[:, h, :] @ k[:, h // group, :].T / math.sqrt(d) + mask
        scores = scores - scores.max(axis=-1, keepdims=True)
        p = np.exp(scores)
        p = p / p.sum(axis=-1, keepdims=True)
        out[:, h, :] = p @ v[:, h // group, :]
    return out.reshape(length, heads * d)


def forward_sequence(config, weights, lora, tokens, use_lora):
    """Logits [T, vocab] of one unpadded sequence; positions start at 0."""
    c = config
    x = weights["model.embed_tokens.weight"][tokens]
    positions = np.arange(len(tokens), dtype=np.float64)
    inv_freq = inverse_frequencies(c)
    for i in range(c["layers"]):
        p = f"model.layers.{i}"
        h = rms_norm(x, weights[p + ".input_layernorm.weight"], c["eps"])
        q = linear(h, weights, p + ".self_attn.q_proj", lora, use_lora).reshape(-1, c["heads"], c["head_dim"])
        k = linear(h, weights, p + ".self_attn.k_proj", lora, use_lora).reshape(-1, c["kv_heads"], c["head_dim"])
        v = linear(h, weights, p + ".self_attn.v_proj", lora, use_lora).reshape(-1, c["kv_heads"], c["head_dim"])
        q = rotate_half_rope(q, positions, inv_freq)
        k = rotate_half_rope(k, positions, inv_freq)
        attention = causal_gqa_attention(q, k, v)
        x = x + linear(attention, weights, p + ".self_attn.o_proj", lora, use_lora)
        h = rms_norm(x, weights[p + ".post_attention_layernorm.weight"], c["eps"])
        gate = linear(h, weights, p + ".mlp.gate_proj", lora, use_lora)
        up = linear(h, weights, p + ".mlp.up_proj", lora, use_lora)
        x = x + linear(silu(gate) * up, weights, p + ".mlp.down_proj", lora, use_lora)
    x = rms_norm(x, weights["model.norm.weight"], c["eps"])
    head = weights["model.embed_tokens.weight"] if c["tied"] else weights["lm_head.weight"]
    return x @ head.T


def forward_batch(config, weights, lora, expected, use_lora=True):
    input_ids, lengths = expected["input_ids"], expected["lengths"]
    logits = np.zeros(input_ids.shape + (weights["model.embed_tokens.weight"].shape[0],))
    for row, length in enumerate(lengths):
        logits[row, :length] = forward_sequence(config, weights, lora, input_ids[row, :length], use_lora)
    return logits


def mean_target_loss(logits, labels):
    """Mean over targets of -log p(target); position t predicts labels[t + 1]."""
    total, count = 0.0, 0
    for row in range(labels.shape[0]):
        for t in range(labels.shape[1] - 1):
            target = labels[row, t + 1]
            if target == IGNORE_INDEX:
                continue
            z = logits[row, t]
            log_normaliser = z.max() + math.log(np.exp(z - z.max()).sum())
            total += log_normaliser - z[target]
            count += 1
    return total / count


# ----------------------------------------------------------------------------- checks


def relative_error(actual, expected):
    return float(np.abs(actual - expected).max() / max(np.abs(expected).max(), 1e-30))


def load_case(name):
    case_dir = os.path.join(HERE, name)
    config = read_config(os.path.join(case_dir, "model"))
    weights = {k: v.astype(np.float64) for k, v in load_file(os.path.join(case_dir, "model", "model.safetensors")).items()}
    with open(os.path.join(case_dir, "adapter", "adapter_config.json")) as f:
        adapter_config = json.load(f)
    r, alpha = adapter_config["r"], adapter_config["lora_alpha"]
    scale = alpha / math.sqrt(r) if adapter_config.get("use_rslora") else alpha / r
    params = {k: v.astype(np.float64) for k, v in load_file(os.path.join(case_dir, "adapter", "adapter_model.safetensors")).items()}
    expected = load_file(os.path.join(case_dir, "expected.safetensors"))
    return config, weights, {"scale": scale, "params": params}, expected


def check_case(name, rng):
    config, weights, lora, expected = load_case(name)
    failures = []

    def report(what, error, tolerance):
        status = "ok" if error < tolerance else "FAIL"
        print(f"  {what:60s} {error:.3e}  (< {tolerance:g})  {status}")
        if error >= tolerance:
            failures.append(what)

    print(f"case {name}: lora scale {lora['scale']}, inv_freq {np.array2string(inverse_frequencies(config), precision=6)}")
    logits = forward_batch(config, weights, lora, expected)
    base_logits = forward_batch(config, weights, lora, expected, use_lora=False)
    loss = mean_target_loss(logits, expected["labels"])
    report("logits relative error", relative_error(logits, expected["logits"]), LOGITS_REL_TOL)
    report("base_logits relative error", relative_error(base_logits, expected["base_logits"]), LOGITS_REL_TOL)
    report(f"loss absolute error (numpy {loss:.7f})", abs(loss - float(expected["loss"][0])), LOSS_ABS_TOL)
    loss_of_expected_logits = mean_target_loss(expected["logits"].astype(np.float64), expected["labels"])
    report("loss recomputed from the expected logits", abs(loss_of_expected_logits - float(expected["loss"][0])), LOSS_ABS_TOL)

    worst = 0.0
    for key in sorted(lora["params"]):
        grad = expected["grad." + key].astype(np.float64)
        direction = rng.standard_normal(grad.shape)
        original = lora["params"][key]
        losses = []
        for sign in (+1.0, -1.0):
            lora["params"][key] = original + sign * FINITE_DIFFERENCE_STEP * direction
            losses.append(mean_target_loss(forward_batch(config, weights, lora, expected), expected["labels"]))
        lora["params"][key] = original
        numeric = (losses[0] - losses[1]) / (2.0 * FINITE_DIFFERENCE_STEP)
        analytic = float((grad * direction).sum())
        error = abs(numeric - analytic) / max(abs(numeric), 1e-12)
        worst = max(worst, error)
        if error >= GRAD_REL_TOL:
            report(f"grad.{key} directional", error, GRAD_REL_TOL)
    report(f"all {len(lora['params'])} LoRA grads, worst directional-derivative error", worst, GRAD_REL_TOL)
    return failures


def main():
    rng = np.random.default_rng(0)
    failures = []
    for name in CASES:
        failures += [f"{name}: {what}" for what in check_case(name, rng)]
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        return 1
    print("all golden checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
