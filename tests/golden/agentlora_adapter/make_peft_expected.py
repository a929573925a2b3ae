#!/usr/bin/env python3
"""PEFT's logits for the adapters WRITTEN BY agentlora (tests/golden/agentlora_adapter/).

The adapter folders under <case>/adapter/ are agentlora's output (made by the C test
tests/integration/test_peft_loads_agentlora.c with AL_WRITE_GOLDEN set; that test also
proves they are byte-identical to what agentlora writes now). This script loads each,
unedited, over its tiny golden base model with PeftModel.from_pretrained, checks that
PEFT took every tensor and the intended LoRA scale, and stores PEFT's logits for two
sequences in <case>/expected.safetensors (plus <case>/meta.json with versions).

Generator only: never run in CI. From the repository root:
    /work/golden-venv/bin/python tests/golden/agentlora_adapter/make_peft_expected.py
"""

import json
import math
import os
import sys
import warnings

import numpy as np
import peft
import safetensors
import torch
import transformers
from peft import PeftModel
from safetensors.numpy import save_file as save_numpy
from safetensors.torch import load_file as load_torch
from transformers import AutoModelForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.dirname(HERE)
REPOSITORY = os.path.dirname(os.path.dirname(GOLDEN))

# What the C writer was asked for; PEFT must end up with exactly this.
CASES = {
    "llama_tiny": dict(
        r=8,
        lora_alpha=16,
        use_rslora=False,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        token_seed=31,
    ),
    "qwen2_tiny": dict(
        r=4,
        lora_alpha=4,
        use_rslora=True,
        target_modules=["q_proj", "v_proj", "down_proj"],
        token_seed=32,
    ),
    "mistral_window_tiny": dict(
        r=4,
        lora_alpha=8,
        use_rslora=False,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        token_seed=33,
    ),
    "qwen2_window_tiny": dict(
        r=4,
        lora_alpha=4,
        use_rslora=True,
        target_modules=["q_proj", "k_proj", "o_proj", "up_proj"],
        token_seed=34,
    ),
    "qwen3_tiny": dict(
        r=8,
        lora_alpha=16,
        use_rslora=False,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        token_seed=35,
    ),
}

# Two sequences of different lengths; the C test packs them as two documents.
SEQUENCE_LENGTHS = [12, 7]

# The adapter must move the logits by more than this (max abs), or the comparison
# would not notice an adapter that agentlora failed to apply.
MIN_ADAPTER_EFFECT = 0.1


def set_determinism():
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float32)


def expected_scale(spec):
    return spec["lora_alpha"] / (math.sqrt(spec["r"]) if spec["use_rslora"] else spec["r"])


def load_base(model_dir):
    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager")


def load_peft_model(model_dir, adapter_dir):
    """PeftModel.from_pretrained must load without a warning (missing adapter keys are
    reported only as a warning); API deprecation notices from the libraries say nothing
    about the adapter and are let through."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = PeftModel.from_pretrained(load_base(model_dir), adapter_dir)
    messages = [str(w.message) for w in caught if not issubclass(w.category, (DeprecationWarning, FutureWarning))]
    assert not messages, f"PEFT warned while loading {adapter_dir}: {messages}"
    model.eval()
    return model


def check_strict_load(model_dir, adapter_dir):
    """from_pretrained silently ignores unexpected keys; load_adapter returns both lists."""
    model = PeftModel.from_pretrained(load_base(model_dir), adapter_dir)
    result = model.load_adapter(adapter_dir, adapter_name="strict")
    assert not result.missing_keys, f"missing adapter keys: {result.missing_keys}"
    assert not result.unexpected_keys, f"unexpected adapter keys: {result.unexpected_keys}"


def check_loaded_tensors(model, adapter_dir, spec):
    """Every tensor in the file is a LoRA parameter of the model, bit for bit, and every
    LoRA parameter of the model came from the file."""
    saved = load_torch(os.path.join(adapter_dir, "adapter_model.safetensors"))
    in_model = {
        name.replace(".default.", "."): param
        for name, param in model.named_parameters()
        if ".lora_A." in name or ".lora_B." in name
    }
    assert set(saved) == set(in_model), sorted(set(saved) ^ set(in_model))
    for key, tensor in saved.items():
        assert tensor.dtype == torch.float32, key
        assert torch.equal(tensor, in_model[key].detach()), f"{key} differs after loading"
        if ".lora_B." in key:
            assert float(tensor.abs().max()) > 0.0, f"{key} is zero"
    layers = model.base_model.model.model.layers
    modules = {key.split(".lora_")[0].split(".")[-1] for key in in_model}
    assert modules == set(spec["target_modules"]), (modules, spec["target_modules"])
    expected_count = 2 * len(spec["target_modules"]) * len(layers)
    assert len(saved) == expected_count, (len(saved), expected_count)
    return len(saved)


def check_config_and_scale(model, spec):
    config = model.peft_config["default"]
    assert config.peft_type == peft.PeftType.LORA and config.task_type == "CAUSAL_LM"
    assert config.r == spec["r"] and config.lora_alpha == spec["lora_alpha"]
    assert config.use_rslora == spec["use_rslora"]
    assert isinstance(config.target_modules, (set, list)), config.target_modules
    assert set(config.target_modules) == set(spec["target_modules"]), config.target_modules
    scale = expected_scale(spec)
    lora_layers = [m for m in model.modules() if isinstance(m, peft.tuners.lora.LoraLayer)]
    assert lora_layers, "no LoRA layers"
    for module in lora_layers:
        assert abs(module.scaling["default"] - scale) < 1e-12, (module.scaling, scale)
        assert module.lora_dropout["default"].__class__.__name__ == "Identity", "dropout must be 0"
    return scale


def make_sequences(vocab_size, seed):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randint(0, vocab_size, (length,), generator=generator) for length in SEQUENCE_LENGTHS]


def run_sequences(model, sequences, padded_length, vocab_size):
    """Each sequence alone (batch of one, positions 0..len-1), into a zero-padded grid."""
    logits = torch.zeros((len(sequences), padded_length, vocab_size), dtype=torch.float32)
    with torch.no_grad():
        for row, tokens in enumerate(sequences):
            out = model(input_ids=tokens[None, :]).logits[0]
            logits[row, : len(tokens)] = out
    return logits


def make_case(name, spec):
    print(f"case {name}")
    model_dir = os.path.join(GOLDEN, name, "model")
    case_dir = os.path.join(HERE, name)
    adapter_dir = os.path.join(case_dir, "adapter")

    check_strict_load(model_dir, adapter_dir)
    model = load_peft_model(model_dir, adapter_dir)
    tensor_count = check_loaded_tensors(model, adapter_dir, spec)
    scale = check_config_and_scale(model, spec)

    vocab_size = model.config.vocab_size
    padded_length = max(SEQUENCE_LENGTHS)
    sequences = make_sequences(vocab_size, spec["token_seed"])
    logits = run_sequences(model, sequences, padded_length, vocab_size)
    with model.disable_adapter():
        base_logits = run_sequences(model, sequences, padded_length, vocab_size)
    effect = float((logits - base_logits).abs().max())
    assert effect > MIN_ADAPTER_EFFECT, f"the adapter barely changes the logits ({effect})"

    input_ids = np.zeros((len(sequences), padded_length), dtype=np.int32)
    for row, tokens in enumerate(sequences):
        input_ids[row, : len(tokens)] = tokens.numpy()
    tensors = {
        "input_ids": input_ids,
        "lengths": np.array(SEQUENCE_LENGTHS, dtype=np.int32),
        "logits": logits.numpy().astype(np.float32),
    }
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
        "base_model": os.path.relpath(model_dir, REPOSITORY),
        "attn_implementation": "eager",
        "dtype": "float32",
        "lora": {
            "r": spec["r"],
            "lora_alpha": spec["lora_alpha"],
            "use_rslora": spec["use_rslora"],
            "scale": scale,
            "target_modules": spec["target_modules"],
            "tensors_loaded": tensor_count,
        },
        "sequence_lengths": SEQUENCE_LENGTHS,
        "token_seed": spec["token_seed"],
        "run": "each sequence alone, batch of one, no padding; logits zero-padded to the longer length",
        "adapter_effect_max_abs": effect,
        "logits_max_abs": float(logits.abs().max()),
    }
    with open(os.path.join(case_dir, "meta.json"), "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    print(f"  {tensor_count} tensors, scale {scale}, adapter effect {effect:.4f}, "
          f"logits max abs {meta['logits_max_abs']:.4f}")


def main():
    set_determinism()
    for name in sys.argv[1:] or list(CASES):
        make_case(name, CASES[name])


if __name__ == "__main__":
    main()
