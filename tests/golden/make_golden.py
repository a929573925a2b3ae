#!/usr/bin/env python3
"""Writes the Hugging Face transformers + PEFT golden fixtures under tests/golden/.

For each case (llama_tiny, qwen2_tiny) it builds a tiny random float32 model,
attaches a LoRA adapter with non-zero A and B, runs one forward/backward on a
right-padded batch of two sequences and stores the model folder, the adapter
folder, the inputs and the expected logits, loss and LoRA gradients.

Generator only: never run in CI. Run it from the repository root with
    /work/golden-venv/bin/python tests/golden/make_golden.py
The format of every file is documented in tests/golden/README.md.
"""

import copy
import json
import math
import os
import re
import shutil
import sys

import numpy as np
import peft
import safetensors
import torch
import transformers
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.numpy import save_file as save_numpy
from safetensors.torch import load_file as load_torch
from safetensors.torch import save_file as save_torch
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen3Config,
    Qwen3ForCausalLM,
)

HERE = os.path.dirname(os.path.abspath(__file__))

# Every LoRA target the engine supports; the adapter must list them explicitly.
TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

# Random weights this large make the logits far from flat, so that a wrong
# RoPE, mask or LoRA scale changes the loss visibly.
WEIGHT_STD = 0.2
NORM_WEIGHT_JITTER = 0.1  # norm weights are 1 + 0.1 * randn
LORA_STD = 0.1            # both lora_A and lora_B, so the adapter matters

# Two unpacked sequences, right-padded to the longer one.
SEQUENCE_LENGTHS = [13, 8]
PROMPT_LENGTHS = [4, 3]   # labels are -100 on these first positions
PAD_TOKEN_ID = 0
IGNORE_INDEX = -100

# Reloading the saved files must give the same logits; both runs are float32 on
# one CPU thread, so only the order of identical operations could differ.
RELOAD_ATOL = 1e-6

COMMON_SIZES = dict(
    hidden_size=64,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    intermediate_size=96,
    num_hidden_layers=2,
    vocab_size=128,
    max_position_embeddings=256,
    hidden_act="silu",
    attention_dropout=0.0,
    bos_token_id=1,
    eos_token_id=2,
)

LLAMA3_ROPE_SCALING = {
    "rope_type": "llama3",
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    # Small on purpose: with head_dim 16 and theta 1e4 the wavelengths run from
    # 6.3 to 17,000 positions, so 32 puts some frequencies below the high-frequency
    # cut (8), some in the smoothed band (8..32) and some above it (divided by 8).
    "original_max_position_embeddings": 32,
}

CASES = {
    "llama_tiny": dict(
        model_class=LlamaForCausalLM,
        config=lambda: LlamaConfig(
            **COMMON_SIZES,
            rms_norm_eps=1e-5,
            tie_word_embeddings=False,
            attention_bias=False,
            mlp_bias=False,
            rope_parameters=dict(rope_theta=10000.0, **LLAMA3_ROPE_SCALING),
        ),
        use_rslora=False,
        # Hub Llama 3.x folders spell RoPE as top-level "rope_theta" plus "rope_scaling"
        # and the dtype as "torch_dtype"; transformers >= 5 writes "rope_parameters" and
        # "dtype". This case is rewritten to the hub spelling, qwen2_tiny keeps the new
        # one, so the C config reader meets both.
        legacy_config=True,
        seed=1234,
    ),
    "qwen2_tiny": dict(
        model_class=Qwen2ForCausalLM,
        config=lambda: Qwen2Config(
            **COMMON_SIZES,
            rms_norm_eps=1e-6,
            tie_word_embeddings=True,
            use_sliding_window=False,
            rope_parameters=dict(rope_type="default", rope_theta=1000000.0),
        ),
        use_rslora=True,
        legacy_config=False,
        seed=5678,
    ),
    # Sliding windows shorter than the 13-token sequence: from position `window` on, a
    # token no longer sees the start of its sequence. Mistral windows every layer.
    "mistral_window_tiny": dict(
        model_class=MistralForCausalLM,
        config=lambda: MistralConfig(
            **COMMON_SIZES,
            rms_norm_eps=1e-5,
            tie_word_embeddings=False,
            sliding_window=5,
            rope_parameters=dict(rope_type="default", rope_theta=10000.0),
        ),
        use_rslora=False,
        legacy_config=False,
        seed=2468,
    ),
    # Qwen2 with use_sliding_window and max_window_layers 1 of 3 layers: layer 0 attends
    # fully, layers 1 and 2 within a window of 4 (transformers derives layer_types from
    # max_window_layers; the saved config.json carries both).
    "qwen2_window_tiny": dict(
        model_class=Qwen2ForCausalLM,
        config=lambda: Qwen2Config(
            **dict(COMMON_SIZES, num_hidden_layers=3),
            rms_norm_eps=1e-6,
            tie_word_embeddings=True,
            use_sliding_window=True,
            sliding_window=4,
            max_window_layers=1,
            rope_parameters=dict(rope_type="default", rope_theta=1000000.0),
        ),
        use_rslora=True,
        legacy_config=False,
        seed=1357,
    ),
    # Qwen3: q_norm/k_norm, no biases, GQA (4 query heads on 2 kv heads) and a head_dim
    # of 24 that is not hidden_size / heads (16); layer_types given explicitly (sliding
    # first, full second: the opposite of what max_window_layers alone would give).
    "qwen3_tiny": dict(
        model_class=Qwen3ForCausalLM,
        config=lambda: Qwen3Config(
            **dict(COMMON_SIZES, head_dim=24),
            rms_norm_eps=1e-6,
            tie_word_embeddings=False,
            attention_bias=False,
            use_sliding_window=True,
            sliding_window=6,
            max_window_layers=1,
            layer_types=["sliding_attention", "full_attention"],
            rope_parameters=dict(rope_type="default", rope_theta=1000000.0),
        ),
        use_rslora=False,
        legacy_config=False,
        seed=9753,
    ),
    # Stored in bfloat16 (weights and adapter; the reference computes in float32 on the
    # stored values). Qwen3 with 8 query heads on 2 kv heads (group 4) and head_dim 12,
    # not hidden / heads = 8; tied embeddings; window 3 on the second layer only;
    # intermediate 48 keeps the files small.
    "qwen3_gqa_bf16_tiny": dict(
        model_class=Qwen3ForCausalLM,
        config=lambda: Qwen3Config(
            **dict(COMMON_SIZES, num_attention_heads=8, num_key_value_heads=2, head_dim=12, intermediate_size=48),
            rms_norm_eps=1e-6,
            tie_word_embeddings=True,
            attention_bias=False,
            use_sliding_window=True,
            sliding_window=3,
            layer_types=["full_attention", "sliding_attention"],
            rope_parameters=dict(rope_type="default", rope_theta=1000000.0),
        ),
        use_rslora=False,
        legacy_config=False,
        seed=4242,
        lora_r=8,
        lora_alpha=16,
        weight_dtype=torch.bfloat16,
        adapter_dtype=torch.bfloat16,
    ),
    # Qwen2 in bfloat16 as hub folders spell it: no layer_types in config.json, so
    # max_window_layers 2 of 3 decides (layers 0-1 full, layer 2 within a window of 3); one
    # kv head for 4 query heads (MQA); hub spelling (rope_theta, torch_dtype). Smaller
    # sizes (hidden 32, head_dim 8, intermediate 48) keep the files small.
    "qwen2_mixed_bf16_tiny": dict(
        model_class=Qwen2ForCausalLM,
        config=lambda: Qwen2Config(
            **dict(COMMON_SIZES, hidden_size=32, head_dim=8, intermediate_size=48, num_hidden_layers=3,
                   num_key_value_heads=1),
            rms_norm_eps=1e-6,
            tie_word_embeddings=False,
            use_sliding_window=True,
            sliding_window=3,
            max_window_layers=2,
            rope_parameters=dict(rope_type="default", rope_theta=1000000.0),
        ),
        use_rslora=True,
        legacy_config=True,
        edit_config=lambda config: config.pop("layer_types"),
        seed=8642,
        weight_dtype=torch.bfloat16,
    ),
}


def set_determinism():
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float32)


def fill_base_weights(model, generator):
    """Every parameter random-normal; norm weights around one; visited in name order."""
    for name, param in sorted(model.named_parameters(), key=lambda item: item[0]):
        noise = torch.randn(param.shape, generator=generator, dtype=torch.float32)
        with torch.no_grad():
            if name.endswith("norm.weight"):
                param.copy_(1.0 + NORM_WEIGHT_JITTER * noise)
            else:
                param.copy_(WEIGHT_STD * noise)


def fill_lora_weights(peft_model, generator):
    """PEFT initialises B to zero, which would make the adapter invisible; draw both."""
    count = 0
    for name, param in sorted(peft_model.named_parameters(), key=lambda item: item[0]):
        if ".lora_A." in name or ".lora_B." in name:
            with torch.no_grad():
                param.copy_(LORA_STD * torch.randn(param.shape, generator=generator, dtype=torch.float32))
            count += 1
    return count


def adapter_key(parameter_name):
    """named_parameters say '...q_proj.lora_A.default.weight'; the saved file drops the adapter name."""
    return parameter_name.replace(".default.", ".")


def make_batch(vocab_size, generator, sequence_lengths=SEQUENCE_LENGTHS, prompt_lengths=PROMPT_LENGTHS):
    length = max(sequence_lengths)
    input_ids = torch.full((len(sequence_lengths), length), PAD_TOKEN_ID, dtype=torch.long)
    attention_mask = torch.zeros_like(input_ids)
    labels = torch.full_like(input_ids, IGNORE_INDEX)
    for row, (seq_len, prompt_len) in enumerate(zip(sequence_lengths, prompt_lengths)):
        tokens = torch.randint(0, vocab_size, (seq_len,), generator=generator)
        input_ids[row, :seq_len] = tokens
        attention_mask[row, :seq_len] = 1
        labels[row, prompt_len:seq_len] = tokens[prompt_len:]
    return input_ids, attention_mask, labels


def zero_padding(logits, attention_mask):
    return logits * attention_mask[..., None].to(logits.dtype)


def legacy_spelling(config):
    """The way hub Llama 3.x folders spell config.json (see CASES)."""
    rope = dict(config.pop("rope_parameters"))
    config["rope_theta"] = rope.pop("rope_theta")
    config["rope_scaling"] = rope
    config["torch_dtype"] = config.pop("dtype")


def edit_config(model_dir, edit):
    """Applies edit(dict) to the saved config.json: the legacy spelling, or spellings
    transformers reads but does not write (a Qwen2 config without layer_types, as on the
    hub). check_reload then proves transformers reads the edited file as the model that
    computed the reference."""
    path = os.path.join(model_dir, "config.json")
    with open(path) as f:
        config = json.load(f)
    edit(config)
    with open(path, "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
        f.write("\n")


def check_llama3_frequencies(config):
    """Reports which RoPE frequencies the llama3 scaling changes; all three regimes must occur."""
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    scaled, _ = ROPE_INIT_FUNCTIONS["llama3"](config)
    head_dim = config.head_dim
    theta = config.rope_parameters["rope_theta"]
    plain = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    ratio = (plain / scaled).tolist()
    print("  llama3 rope: inv_freq index, wavelength, plain/scaled ratio")
    for index, (p, r) in enumerate(zip(plain.tolist(), ratio)):
        print(f"    {index}: wavelen {2 * math.pi / p:10.2f}  ratio {r:.6f}")
    assert any(abs(r - 1.0) < 1e-6 for r in ratio), "no frequency left unscaled"
    assert any(abs(r - 8.0) < 1e-5 for r in ratio), "no frequency divided by the full factor"
    assert any(1.0 + 1e-6 < r < 8.0 - 1e-5 for r in ratio), "no frequency in the smoothed band"
    return ratio


def structurally_zero(key, spec):
    """A layer whose window is 1 (spec "single_key_layers") attends each query to itself
    alone: softmax over one key is 1 whatever q and k are, so their LoRA gradients are 0."""
    match = re.search(r"\.layers\.(\d+)\.self_attn\.[qk]_proj\.", key)
    return bool(match) and int(match.group(1)) in spec.get("single_key_layers", ())


def run_peft(peft_model, input_ids, attention_mask, labels):
    peft_model.train()
    peft_model.zero_grad(set_to_none=True)
    output = peft_model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
    output.loss.backward()
    grads = {}
    for name, param in peft_model.named_parameters():
        if param.requires_grad:
            assert ".lora_A." in name or ".lora_B." in name, f"unexpected trainable parameter {name}"
            grads[adapter_key(name)] = param.grad.detach().clone()
    return output.logits.detach(), output.loss.detach(), grads


def reference_loss(logits, labels):
    """The convention the README states, recomputed independently of transformers."""
    logp = torch.log_softmax(logits.double(), dim=-1)
    total, count = 0.0, 0
    for row in range(labels.shape[0]):
        for t in range(labels.shape[1] - 1):
            target = int(labels[row, t + 1])
            if target != IGNORE_INDEX:
                total -= float(logp[row, t, target])
                count += 1
    return total / count, count


def round_to(module_or_model, dtype, name_filter=lambda name: True):
    """Rounds parameters to `dtype` in place while keeping them float32, so that the
    float32 reference computes on exactly the values a `dtype` file stores."""
    if dtype == torch.float32:
        return
    with torch.no_grad():
        for name, param in module_or_model.named_parameters():
            if name_filter(name):
                param.copy_(param.to(dtype).to(torch.float32))


def save_base(base, config, spec, model_dir):
    """Writes the model folder in the case's weight dtype (the config then says that
    dtype too). A copy is converted: Module.to would also round the RoPE inv_freq buffer
    of the float32 model that computes the reference."""
    weight_dtype = spec.get("weight_dtype", torch.float32)
    stored = base if weight_dtype == torch.float32 else copy.deepcopy(base).to(weight_dtype)
    stored.config.dtype = weight_dtype
    stored.save_pretrained(model_dir, safe_serialization=True)
    if spec["legacy_config"]:
        edit_config(model_dir, legacy_spelling)
    if "edit_config" in spec:
        edit_config(model_dir, spec["edit_config"])
    saved = load_torch(os.path.join(model_dir, "model.safetensors"))
    assert ("lm_head.weight" in saved) == (not config.tie_word_embeddings)
    assert all(tensor.dtype == weight_dtype for tensor in saved.values())


def convert_saved_adapter(adapter_dir, dtype):
    """PEFT saves the adapter in its parameters' dtype (float32 here); store it as `dtype`.
    The values were rounded beforehand (round_to), so the conversion is exact."""
    if dtype == torch.float32:
        return
    path = os.path.join(adapter_dir, "adapter_model.safetensors")
    weights = {key: tensor.to(dtype) for key, tensor in load_torch(path).items()}
    save_torch(weights, path, metadata={"format": "pt"})


def make_case(name, spec, out_root=HERE):
    """Writes out_root/name. Optional spec keys (defaults in brackets): lora_r [4],
    lora_alpha [8], weight_dtype [float32], adapter_dtype [float32], sequence_lengths and
    prompt_lengths [SEQUENCE_LENGTHS, PROMPT_LENGTHS], edit_config [none: see
    edit_config()], check_llama3_regimes [True], single_key_layers [none: see
    structurally_zero()]. Whatever the storage dtype, the reference
    runs in float32 on the stored values."""
    print(f"case {name}")
    sequence_lengths = spec.get("sequence_lengths", SEQUENCE_LENGTHS)
    prompt_lengths = spec.get("prompt_lengths", PROMPT_LENGTHS)
    adapter_dtype = spec.get("adapter_dtype", torch.float32)
    case_dir = os.path.join(out_root, name)
    model_dir = os.path.join(case_dir, "model")
    adapter_dir = os.path.join(case_dir, "adapter")
    if os.path.isdir(case_dir):
        shutil.rmtree(case_dir)
    os.makedirs(case_dir)

    generator = torch.Generator().manual_seed(spec["seed"])
    torch.manual_seed(spec["seed"])

    config = spec["config"]()
    config.dtype = torch.float32
    config._attn_implementation = "eager"
    rope_ratio = None
    if config.rope_parameters["rope_type"] == "llama3" and spec.get("check_llama3_regimes", True):
        rope_ratio = check_llama3_frequencies(config)

    base = spec["model_class"](config).to(torch.float32)
    fill_base_weights(base, generator)
    round_to(base, spec.get("weight_dtype", torch.float32))
    if config.tie_word_embeddings:
        assert base.lm_head.weight.data_ptr() == base.model.embed_tokens.weight.data_ptr()
    save_base(base, config, spec, model_dir)

    lora_config = LoraConfig(
        task_type="CAUSAL_LM",
        r=spec.get("lora_r", 4),
        lora_alpha=spec.get("lora_alpha", 8),
        lora_dropout=0.0,
        target_modules=list(TARGET_MODULES),
        bias="none",
        use_rslora=spec["use_rslora"],
    )
    peft_model = get_peft_model(base, lora_config)
    lora_count = fill_lora_weights(peft_model, generator)
    round_to(peft_model, adapter_dtype, lambda name: ".lora_A." in name or ".lora_B." in name)
    assert lora_count == 2 * len(TARGET_MODULES) * config.num_hidden_layers
    scale = lora_config.lora_alpha / (math.sqrt(lora_config.r) if lora_config.use_rslora else lora_config.r)
    q_proj = peft_model.base_model.model.model.layers[0].self_attn.q_proj
    assert abs(q_proj.scaling["default"] - scale) < 1e-12, (q_proj.scaling, scale)

    input_ids, attention_mask, labels = make_batch(config.vocab_size, generator, sequence_lengths, prompt_lengths)
    logits, loss, grads = run_peft(peft_model, input_ids, attention_mask, labels)
    for key, grad in grads.items():
        assert float(grad.abs().max()) > 0.0 or structurally_zero(key, spec), f"zero gradient for {key}"
    expected_loss, target_count = reference_loss(logits, labels)
    assert abs(expected_loss - float(loss)) < 1e-5, (expected_loss, float(loss))

    peft_model.eval()
    with torch.no_grad():
        eval_logits = peft_model(input_ids=input_ids, attention_mask=attention_mask).logits
        with peft_model.disable_adapter():
            base_logits = peft_model(input_ids=input_ids, attention_mask=attention_mask).logits
    # train() and eval() must agree: dropout is zero everywhere.
    assert torch.equal(zero_padding(eval_logits, attention_mask), zero_padding(logits, attention_mask))
    assert float((zero_padding(logits - base_logits, attention_mask)).abs().max()) > 0.1, "adapter has no effect"

    peft_model.save_pretrained(adapter_dir, safe_serialization=True)
    tidy_adapter_folder(adapter_dir)
    convert_saved_adapter(adapter_dir, adapter_dtype)
    check_saved_adapter(adapter_dir, lora_config, grads, adapter_dtype)
    check_reload(spec["model_class"], model_dir, adapter_dir, input_ids, attention_mask, logits)

    tensors = {
        "input_ids": input_ids.to(torch.int32).numpy(),
        "attention_mask": attention_mask.to(torch.int32).numpy(),
        "labels": labels.to(torch.int32).numpy(),
        "lengths": np.array(sequence_lengths, dtype=np.int32),
        "logits": zero_padding(logits, attention_mask).numpy().astype(np.float32),
        "base_logits": zero_padding(base_logits, attention_mask).numpy().astype(np.float32),
        "loss": np.array([float(loss)], dtype=np.float32),
    }
    for key, grad in sorted(grads.items()):
        tensors["grad." + key] = grad.numpy().astype(np.float32)
    save_numpy(tensors, os.path.join(case_dir, "expected.safetensors"), metadata={"format": "pt"})

    meta = {
        "case": name,
        "versions": {
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "peft": peft.__version__,
            "safetensors": safetensors.__version__,
            "numpy": np.__version__,
        },
        "architecture": spec["model_class"].__name__,
        "attn_implementation": "eager",
        "weight_dtype": str(spec.get("weight_dtype", torch.float32)).replace("torch.", ""),
        "adapter_dtype": str(adapter_dtype).replace("torch.", ""),
        "reference_compute_dtype": "float32",
        "seed": spec["seed"],
        "weight_std": WEIGHT_STD,
        "norm_weight": f"1 + {NORM_WEIGHT_JITTER} * randn",
        "lora": {
            "r": lora_config.r,
            "lora_alpha": lora_config.lora_alpha,
            "lora_dropout": lora_config.lora_dropout,
            "use_rslora": lora_config.use_rslora,
            "scale": scale,
            "init_std_A_and_B": LORA_STD,
            "target_modules": TARGET_MODULES,
        },
        "sequence_lengths": sequence_lengths,
        "prompt_lengths": prompt_lengths,
        "pad_token_id": PAD_TOKEN_ID,
        "target_token_count": target_count,
        "loss": float(loss),
        "llama3_inv_freq_divisor": rope_ratio,
        "config_spelling": "hub (rope_theta + rope_scaling + torch_dtype)"
        if spec["legacy_config"]
        else "transformers>=5 (rope_parameters + dtype)",
    }
    with open(os.path.join(case_dir, "meta.json"), "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    print(f"  loss {float(loss):.7f} over {target_count} targets, scale {scale}")


def tidy_adapter_folder(adapter_dir):
    """PEFT writes target_modules from a set (order varies with the string hash seed)
    and a boilerplate model card; sort the one and drop the other so that reruns are
    byte-identical."""
    os.remove(os.path.join(adapter_dir, "README.md"))
    path = os.path.join(adapter_dir, "adapter_config.json")
    with open(path) as f:
        saved = json.load(f)
    saved["target_modules"] = sorted(saved["target_modules"])
    with open(path, "w") as f:
        json.dump(saved, f, indent=2, sort_keys=True)
        f.write("\n")


def check_saved_adapter(adapter_dir, lora_config, grads, adapter_dtype):
    with open(os.path.join(adapter_dir, "adapter_config.json")) as f:
        saved = json.load(f)
    assert isinstance(saved["target_modules"], list), saved["target_modules"]
    assert sorted(saved["target_modules"]) == sorted(TARGET_MODULES), saved["target_modules"]
    assert saved["peft_type"] == "LORA" and saved["r"] == lora_config.r
    assert saved["lora_alpha"] == lora_config.lora_alpha
    assert saved["use_rslora"] == lora_config.use_rslora
    weights = load_torch(os.path.join(adapter_dir, "adapter_model.safetensors"))
    assert set(weights.keys()) == set(grads.keys()), sorted(set(weights.keys()) ^ set(grads.keys()))
    for key, tensor in weights.items():
        assert tensor.dtype == adapter_dtype and tensor.shape == grads[key].shape, key
        assert float(tensor.abs().max()) > 0.0, key


def check_reload(model_class, model_dir, adapter_dir, input_ids, attention_mask, logits):
    base = model_class.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager")
    reloaded = PeftModel.from_pretrained(base, adapter_dir)
    reloaded.eval()
    with torch.no_grad():
        again = reloaded(input_ids=input_ids, attention_mask=attention_mask).logits
    difference = float(zero_padding(again - logits, attention_mask).abs().max())
    assert difference <= RELOAD_ATOL, f"reloaded logits differ by {difference}"


def main():
    """Every case, or only the cases named on the command line."""
    set_determinism()
    names = sys.argv[1:] or list(CASES)
    for name in names:
        make_case(name, CASES[name])


if __name__ == "__main__":
    main()
