#!/usr/bin/env python3
"""Randomized parity sweep: agentlora against transformers + PEFT on configs that the
committed golden cases do not pin.

It draws --count configs (seeded: the same --seed gives the same configs and the same
files) over Llama, Mistral, Qwen2 and Qwen3: GQA ratios (MQA included), head_dim
overrides, sliding windows from 1 to longer than the sequences, Qwen2/Qwen3 windows chosen
by max_window_layers (with and without layer_types in config.json) or by mixed explicit
layer_types, tied and untied embeddings, RoPE theta and llama3 scaling, float32 and
bfloat16 weights (and bfloat16 adapters), LoRA rank/alpha and rsLoRA, batches with
sequences longer than the CPU attention's 64-row blocks. Each config becomes a case
folder written by make_golden.make_case (same layout, same checks, same float32
reference), then the C golden test checks every folder:

    AL_GOLDEN_EXTRA_DIR=DIR ./build/test_runner --filter 'golden_extra/*'

with the tolerances of the committed goldens. Generator only, never run in CI. From the
repository root, after `make build/test_runner`:

    /work/golden-venv/bin/python tests/golden/parity_sweep.py            # 40 configs, seed 16
    /work/golden-venv/bin/python tests/golden/parity_sweep.py --count 40 --seed 7 --out /tmp/sweep
    /work/golden-venv/bin/python tests/golden/parity_sweep.py --check-only --out /tmp/sweep

It prints one line per config and exits non-zero when any config is refused by the
engine or misses a tolerance (or was not checked).
"""

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import make_golden as golden  # noqa: E402  (the sweep shares the generator's conventions)

ARCHITECTURES = {
    "llama": (golden.LlamaConfig, golden.LlamaForCausalLM),
    "mistral": (golden.MistralConfig, golden.MistralForCausalLM),
    "qwen2": (golden.Qwen2Config, golden.Qwen2ForCausalLM),
    "qwen3": (golden.Qwen3Config, golden.Qwen3ForCausalLM),
}

# Windows from "only itself" to longer than any sequence drawn below; short ones (those
# that cut into every sequence) are drawn twice as often.
WINDOWS = [1, 2, 3, 4, 5, 7, 9, 12] * 2 + [20, 33, 70, 200]
# The CPU attention works in blocks of 64 query rows: longer sequences cross blocks.
ATTENTION_BLOCK_ROWS = 64
RESULT_LINE = re.compile(r"^golden-extra (\S+) (OK|MISMATCH|REFUSED) ?(.*)$")


def draw_heads(rng):
    heads = rng.choice([1, 2, 3, 4, 6, 8])
    kv_heads = rng.choice([d for d in range(1, heads + 1) if heads % d == 0])
    return heads, kv_heads


def draw_head_dim(rng, arch, hidden, heads):
    """head_dim stated in the config; None: transformers derives hidden // heads. Qwen3
    always states one (its default, 128, is tried by dropping the field: see draw_config)."""
    derived = hidden // heads if hidden % heads == 0 else 0
    if arch == "qwen3" or derived == 0 or derived % 2 or rng.random() < 0.4:
        return rng.choice([c for c in [8, 12, 16, 20, 24, 32] if c != derived])
    return None


def draw_rope(rng):
    rope = dict(rope_type="default", rope_theta=rng.choice([100.0, 10000.0, 500000.0, 1000000.0]))
    if rng.random() < 0.25:
        rope.update(
            rope_type="llama3",
            factor=rng.choice([2.0, 8.0, 32.0]),
            low_freq_factor=1.0,
            high_freq_factor=rng.choice([2.0, 4.0]),
            original_max_position_embeddings=rng.choice([8, 16, 32, 64]),
        )
    return rope


def draw_sequences(rng):
    """Two or three right-padded sequences; the prompt (no loss) is a prefix of each."""
    if rng.random() < 0.3:
        lengths = [rng.randint(ATTENTION_BLOCK_ROWS + 1, 90), rng.randint(20, ATTENTION_BLOCK_ROWS)]
    else:
        lengths = [rng.randint(9, 24) for _ in range(rng.choice([2, 3]))]
        lengths[-1] = rng.randint(2, 12)
    prompts = [rng.randint(1, max(1, length // 2)) for length in lengths]
    return lengths, prompts


def draw_window(rng, arch, layers, kwargs, edits, notes):
    """Sliding-window fields as each architecture spells them; edits change the saved
    config.json afterwards (hub spellings transformers reads but does not write)."""
    if arch == "llama":
        if rng.random() < 0.3:  # LlamaForCausalLM has no window: both sides must ignore it
            window = rng.choice(WINDOWS[:6])
            edits.append(lambda c: c.update(sliding_window=window))
            notes.append(f"ignored sliding_window {window}")
        return
    if arch == "mistral":
        kwargs["sliding_window"] = rng.choice(WINDOWS + [None, None])
        if kwargs["sliding_window"] and layers > 1 and rng.random() < 0.25:
            # MistralModel ignores layer_types (it warns): every layer stays windowed.
            kwargs["layer_types"] = [rng.choice(["full_attention", "sliding_attention"]) for _ in range(layers)]
            notes.append("layer_types given (ignored by Mistral)")
        return
    use_window = rng.random() < 0.8
    # Mostly some layers windowed; sometimes max_window_layers >= layers (none windowed).
    first_windowed = rng.randint(0, layers - 1) if rng.random() < 0.85 else rng.randint(layers, layers + 1)
    kwargs.update(use_sliding_window=use_window, sliding_window=rng.choice(WINDOWS), max_window_layers=first_windowed)
    if use_window and rng.random() < 0.4:
        kwargs["layer_types"] = [rng.choice(["full_attention", "sliding_attention"]) for _ in range(layers)]
        notes.append("explicit layer_types")
    elif rng.random() < 0.5:
        edits.append(lambda c: c.pop("layer_types"))
        notes.append("no layer_types in config.json")
    if not use_window and rng.random() < 0.5:
        edits.append(lambda c: c.update(sliding_window=32768))  # as hub Qwen2.5 folders have it
        notes.append("sliding_window 32768 with use_sliding_window false")


def draw_config(rng, index):
    """One sweep case: the make_golden spec and a summary for people."""
    arch = list(ARCHITECTURES)[index % len(ARCHITECTURES)]
    config_class, model_class = ARCHITECTURES[arch]
    hidden = rng.choice([32, 48, 64])
    heads, kv_heads = draw_heads(rng)
    while arch == "llama" and hidden % heads:  # LlamaConfig refuses it, even with head_dim
        heads, kv_heads = draw_heads(rng)
    layers = rng.choice([1, 2, 2, 3, 3, 4])
    head_dim = draw_head_dim(rng, arch, hidden, heads)
    kwargs = dict(
        hidden_size=hidden,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        intermediate_size=rng.choice([40, 50, 64, 96]),
        num_hidden_layers=layers,
        vocab_size=rng.choice([64, 97, 128]),
        max_position_embeddings=256,
        hidden_act="silu",
        attention_dropout=0.0,
        bos_token_id=1,
        eos_token_id=2,
        rms_norm_eps=rng.choice([1e-5, 1e-6]),
        tie_word_embeddings=rng.random() < 0.4,
        rope_parameters=draw_rope(rng),
    )
    if head_dim is not None:
        kwargs["head_dim"] = head_dim
    edits, notes = [], []
    if arch == "qwen3" and rng.random() < 0.15:
        kwargs["head_dim"] = 128  # and config.json leaves it out: Qwen3Config's default
        edits.append(lambda c: c.pop("head_dim"))
        notes.append("head_dim absent (128)")
    draw_window(rng, arch, layers, kwargs, edits, notes)
    weight_dtype = rng.choices([torch.float32, torch.bfloat16, torch.float16], weights=[45, 45, 10])[0]
    adapter_dtype = weight_dtype if weight_dtype != torch.float32 and rng.random() < 0.4 else torch.float32
    rank = rng.choice([1, 2, 4, 8])
    lengths, prompts = draw_sequences(rng)
    legacy = rng.random() < 0.3  # top-level rope_theta / rope_scaling and torch_dtype
    spec = dict(
        model_class=model_class,
        config=lambda: config_class(**kwargs),
        use_rslora=rng.random() < 0.4,
        legacy_config=legacy,
        seed=rng.randrange(1, 2**31),
        lora_r=rank,
        lora_alpha=rank * rng.choice([1, 2, 4]),
        weight_dtype=weight_dtype,
        adapter_dtype=adapter_dtype,
        sequence_lengths=lengths,
        prompt_lengths=prompts,
        check_llama3_regimes=False,
    )
    if edits:
        spec["edit_config"] = lambda c: [edit(c) for edit in edits]
    summary = summarize(arch, kwargs, spec, notes)
    spec["single_key_layers"] = [layer for layer, window in enumerate(summary["layer_windows"]) if window == 1]
    return f"sweep{index:02d}_{arch}", spec, summary


def resolved_windows(arch, config):
    """Per layer, the window transformers applies (0: full attention)."""
    window = getattr(config, "sliding_window", None) or 0
    if arch == "llama":
        return [0] * config.num_hidden_layers
    if arch == "mistral":
        return [window] * config.num_hidden_layers
    return [window if kind == "sliding_attention" else 0 for kind in config.layer_types]


def summarize(arch, kwargs, spec, notes):
    config = spec["config"]()
    rope = kwargs["rope_parameters"]
    return dict(
        arch=arch,
        hidden=kwargs["hidden_size"],
        heads=kwargs["num_attention_heads"],
        kv_heads=kwargs["num_key_value_heads"],
        head_dim=config.head_dim if hasattr(config, "head_dim") else kwargs["hidden_size"] // kwargs["num_attention_heads"],
        layers=kwargs["num_hidden_layers"],
        layer_windows=resolved_windows(arch, config),
        tied=kwargs["tie_word_embeddings"],
        rope=rope["rope_type"] + f" theta {rope['rope_theta']:g}",
        weights=str(spec["weight_dtype"]).replace("torch.", ""),
        adapter=str(spec["adapter_dtype"]).replace("torch.", ""),
        lora=f"r {spec['lora_r']} alpha {spec['lora_alpha']}" + (" rslora" if spec["use_rslora"] else ""),
        lengths=spec["sequence_lengths"],
        spelling="hub" if spec["legacy_config"] else "transformers 5",
        notes=notes,
    )


def generate(args):
    rng = random.Random(args.seed)
    golden.set_determinism()
    os.makedirs(args.out, exist_ok=True)
    summaries = {}
    for index in range(args.count):
        name, spec, summary = draw_config(rng, index)
        golden.make_case(name, spec, out_root=args.out)
        summaries[name] = summary
    with open(os.path.join(args.out, "sweep.json"), "w") as f:
        json.dump(dict(seed=args.seed, count=args.count, cases=summaries), f, indent=2)
        f.write("\n")


def check(args):
    """Runs the C golden test over every case folder; returns {name: (status, details)}."""
    env = dict(os.environ, AL_GOLDEN_EXTRA_DIR=os.path.abspath(args.out), OMP_NUM_THREADS="2",
               OPENBLAS_NUM_THREADS="1")
    run = subprocess.run([args.runner, "--filter", "golden_extra/*"], cwd=REPO, env=env,
                         capture_output=True, text=True)
    results = {}
    for line in (run.stdout + run.stderr).splitlines():
        match = RESULT_LINE.match(line.strip())
        if match:
            results[match.group(1)] = (match.group(2), match.group(3))
    return results, run


def coverage(cases):
    """How many configs have each property the sweep is for."""
    def windows_cut(case):
        return any(0 < window < max(case["lengths"]) for window in case["layer_windows"])

    properties = {
        "window shorter than a sequence": windows_cut,
        "window 1": lambda c: 1 in c["layer_windows"],
        "window between the sequence lengths": lambda c: any(
            min(c["lengths"]) < w < max(c["lengths"]) for w in c["layer_windows"]),
        "windowed and full layers mixed": lambda c: len(set(c["layer_windows"])) > 1,
        "GQA or MQA": lambda c: c["kv_heads"] < c["heads"],
        "head_dim override": lambda c: c["hidden"] % c["heads"] or c["head_dim"] != c["hidden"] // c["heads"],
        "bfloat16 weights": lambda c: c["weights"] == "bfloat16",
        "float16 weights": lambda c: c["weights"] == "float16",
        "bfloat16 adapter": lambda c: c["adapter"] == "bfloat16",
        "llama3 rope": lambda c: c["rope"].startswith("llama3"),
        "tied": lambda c: c["tied"],
        "rslora": lambda c: "rslora" in c["lora"],
        "sequence over 64 tokens": lambda c: max(c["lengths"]) > ATTENTION_BLOCK_ROWS,
        "hub spelling": lambda c: c["spelling"] == "hub",
        "no layer_types in config.json": lambda c: "no layer_types in config.json" in c["notes"],
        "explicit layer_types": lambda c: "explicit layer_types" in c["notes"],
    }
    counts = {arch: sum(c["arch"] == arch for c in cases.values()) for arch in ARCHITECTURES}
    counts.update({name: sum(bool(test(c)) for c in cases.values()) for name, test in properties.items()})
    return ", ".join(f"{name} {count}" for name, count in counts.items())


def report(args, results, run):
    with open(os.path.join(args.out, "sweep.json")) as f:
        cases = json.load(f)["cases"]
    bad = 0
    for name, summary in cases.items():
        status, details = results.get(name, ("NOT CHECKED", ""))
        bad += status != "OK"
        windows = summary["layer_windows"]
        print(f"{name:16s} {status:9s} {summary['arch']:7s} h{summary['hidden']} q{summary['heads']}/kv{summary['kv_heads']} "
              f"hd{summary['head_dim']} L{summary['layers']} windows {windows} {summary['weights']} "
              f"{summary['lora']} lengths {summary['lengths']}  {details}")
    if bad or run.returncode != 0:
        print(run.stdout[-4000:] + run.stderr[-4000:])
    print("coverage: " + coverage(cases))
    print(f"{len(cases) - bad} passed, {bad} failed")
    return 1 if bad or run.returncode != 0 else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=40)
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--out", help="folder for the case folders (default: a new temporary folder)")
    parser.add_argument("--runner", default=os.path.join(REPO, "build", "test_runner"))
    parser.add_argument("--check-only", action="store_true", help="check the folders already in --out")
    args = parser.parse_args()
    if args.check_only and not args.out:
        parser.error("--check-only needs --out")
    args.out = args.out or tempfile.mkdtemp(prefix="agentlora-parity-sweep-")
    if not args.check_only:
        generate(args)
    results, run = check(args)
    print(f"cases in {args.out}")
    sys.exit(report(args, results, run))


if __name__ == "__main__":
    main()
