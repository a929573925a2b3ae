#!/usr/bin/env python3
"""LoRA training throughput of transformers + PEFT: the baseline agentlora is compared against.

What it measures
----------------
For one model shape (an agentlora preset, same numbers as src/model/model_presets.c) it
builds a randomly initialised model with transformers (no download), wraps it with a PEFT
LoRA adapter and runs training steps on random token ids, reporting for each micro-batch
size: tokens/s, mean step time, peak memory and MFU. It also times a large square GEMM in
the same process, so MFU is relative to the rate this device actually reaches, not to a
datasheet number. Each result is one JSON line appended to --out (and printed), with the
same keys as agentlora's end-to-end harness (bench/e2e/), so bench/compare.py can put the
two side by side.

The recipe is the standard PEFT one, the fairest baseline we know:
  - base model in bf16 (dtype=torch.bfloat16), attn_implementation="sdpa";
  - gradient checkpointing on every decoder layer, use_reentrant=False;
  - LoRA r=16, alpha=32, dropout 0 on q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj,
    down_proj; LoRA weights kept in fp32 (the master copy AdamW updates);
  - the forward under torch.autocast(bfloat16) (the backward follows the dtypes the forward
    chose), so the LoRA matmuls run in bf16 on the tensor cores like the frozen ones, while
    their weights, gradients and AdamW state stay fp32;
  - torch.optim.AdamW over the LoRA parameters only, fused=True on CUDA (the default
    optimizer of transformers' Trainer with torch >= 2.8, "adamw_torch_fused"), weight
    decay 0, after clipping the gradient norm at 1.0 (Trainer's max_grad_norm default);
  - loss = model(input_ids, labels=input_ids).loss (transformers shifts the labels and
    computes the cross entropy on fp32 logits over the full vocabulary).
With --device cpu everything is float32 and autocast is off (--dtype bf16 runs the bf16 +
fp32-LoRA + autocast recipe on the CPU instead): that mode exists to check the script on a
machine without a GPU, its numbers mean nothing for the comparison.

FLOP count (the same formula as bench/e2e/bench_train.c)
--------------------------------------------------------
    model_flops_per_token = 4 * N_matmul + 6 * N_lora + 6 * layers * q_dim * seq

  N_matmul  the base model's parameter count (`params`: a tied embedding counted once, as
            agentlora's al_model_config_parameter_count counts it; the script checks the
            two agree) less an untied input embedding table, which is a lookup and
            multiplies nothing. What remains is the q, k, v, o, gate, up, down weights and
            the lm_head (counted when tied too: the matmul happens either way), plus the
            RMSNorm weights and Qwen2's q/k/v biases, which are under 0.01% of it.
            4 = 2 for the forward matmul + 2 for the input gradient; the frozen weights
            get no weight gradient, so the usual 6*N of full training becomes 4*N.
  N_lora    LoRA parameters (A and B of the seven targets): forward 2, input gradient 2,
            weight gradient 2.
  attention q_dim = heads * head_dim. Per token and layer the forward does Q K^T and P V,
            each 2 * q_dim * (keys attended) FLOPs; a causal row attends seq/2 keys on
            average, so the forward is 2 * q_dim * seq, and the backward (dQ, dK, dV, dP)
            twice that: 6 * q_dim * seq per layer in all.
  Not counted: the recomputation that gradient checkpointing adds (this is MFU, not
  hardware FLOP utilisation), softmax, norms, RoPE, SiLU, the optimizer.

  mfu = model_flops_per_token * tokens_per_s / (gemm_tflops * 1e12)

Documents: each row of the batch is one document of seq random tokens and SDPA attends
causally over the whole row. agentlora packs several documents into a row with
per-document masks (bench_train.c draws their lengths from [seq/8, seq/2]), so it does less
attention work per row than this baseline, which has no varlen packing; the formula above
credits both with a full causal row (seq/2 keys per token on average), so both MFUs use the
same yardstick, and the attention advantage shows up in agentlora's tokens/s (small next to
the matmuls at seq 4096 on these models: the attention term is about 10% of the FLOPs of
llama-3.1-8b, 8% of qwen2.5-7b, 14% of llama-3.2-1b).

Peak memory: on CUDA (peak_memory_kind "device"), torch.cuda.max_memory_allocated() over the warmup and timed steps of
one micro-batch size (reset before each), which includes the model weights, the LoRA
weights, gradients and optimizer state, and the activations; max_memory_reserved() is
reported too (peak_memory_reserved_bytes: the caching allocator's footprint, closer to what
nvidia-smi shows, less the CUDA context). On CPU (peak_memory_kind "host_rss") the
process's peak resident set, VmHWM, reset before each micro-batch size through
/proc/self/clear_refs as bench_train.c does; it includes the Python and torch libraries.

How to run on a GPU
-------------------
    pip install torch transformers peft
    python bench/baseline_peft.py --preset llama-3.2-1b --seq 4096 --micro-batch 1,2,4 \\
        --steps 10 --warmup 2 --out bench/peft.jsonl
    python bench/baseline_peft.py --preset llama-3.1-8b --out bench/peft.jsonl
    python bench/baseline_peft.py --preset qwen2.5-7b --out bench/peft.jsonl
    python bench/compare.py bench/agentlora.jsonl bench/peft.jsonl

A micro-batch size that runs out of GPU memory is reported as a line with "error": "oom"
and null rates, and the next size is tried.

Status: no GPU run has happened yet; only the CPU mode has been run (tiny and smollm2-135m
shapes, short sequences) to check that the script works.
"""
import argparse
import datetime
import gc
import json
import os
import resource
import subprocess
import sys
import time
import warnings

import torch

# transformers 5.x renamed gradient_checkpointing_* to activation_checkpointing_*; PEFT still
# calls the old names, once per step, which would bury the results under warnings.
warnings.filterwarnings("ignore", message=".*is deprecated and will be removed in v6", category=FutureWarning)

LORA_RANK = 16
LORA_ALPHA = 32
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
LEARNING_RATE = 2e-4  # bench_train.c's; any value would do, only the step's speed is measured
# transformers' Trainer clips the gradient norm at 1.0 by default, and agentlora's step clips too.
MAX_GRAD_NORM = 1.0
SEED = 0

# Square GEMM used to measure the device's achievable matmul rate: large enough to reach
# the peak on an H100 in bf16; on CPU a small f32 one, only so the CPU mode has a number.
GEMM_SIZE_CUDA = 8192
GEMM_SIZE_CPU = 1024
GEMM_WARMUP = 3
GEMM_REPEATS_CUDA = 50  # as bench_train.c
GEMM_REPEATS_CPU = 3

# Spelled as agentlora's al_dtype_name, so the two engines' JSON reads alike.
DTYPE_NAMES = {torch.bfloat16: "BF16", torch.float32: "F32"}

# Shapes copied from src/model/model_presets.c (which copies each model's config.json).
LLAMA3_ROPE = {"rope_type": "llama3", "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 8192}
PRESETS = {
    "tiny": dict(arch="llama", hidden=64, intermediate=192, layers=2, heads=4, kv_heads=2, head_dim=16,
                 vocab=2048, max_positions=2048, rope_theta=10000.0, rms_eps=1e-5, tied=False),
    "smollm2-135m": dict(arch="llama", hidden=576, intermediate=1536, layers=30, heads=9, kv_heads=3,
                         head_dim=64, vocab=49152, max_positions=8192, rope_theta=100000.0, rms_eps=1e-5,
                         tied=True),
    "llama-3.2-1b": dict(arch="llama", hidden=2048, intermediate=8192, layers=16, heads=32, kv_heads=8,
                         head_dim=64, vocab=128256, max_positions=131072, rope_theta=500000.0, rms_eps=1e-5,
                         tied=True, rope_scaling=dict(LLAMA3_ROPE, factor=32.0)),
    "llama-3.1-8b": dict(arch="llama", hidden=4096, intermediate=14336, layers=32, heads=32, kv_heads=8,
                         head_dim=128, vocab=128256, max_positions=131072, rope_theta=500000.0, rms_eps=1e-5,
                         tied=False, rope_scaling=dict(LLAMA3_ROPE, factor=8.0)),
    # Qwen2 has biases on q, k and v (transformers' Qwen2Attention always creates them).
    "qwen2.5-7b": dict(arch="qwen2", hidden=3584, intermediate=18944, layers=28, heads=28, kv_heads=4,
                       head_dim=128, vocab=152064, max_positions=32768, rope_theta=1000000.0, rms_eps=1e-6,
                       tied=False),
    # v0.3: no sliding window.
    "mistral-7b": dict(arch="mistral", hidden=4096, intermediate=14336, layers=32, heads=32, kv_heads=8,
                       head_dim=128, vocab=32768, max_positions=32768, rope_theta=1000000.0, rms_eps=1e-5,
                       tied=False),
}


def transformers_major():
    import transformers
    return int(transformers.__version__.split(".")[0])


def model_config(p):
    """A transformers config with the preset's shapes, for either transformers 4.x or 5.x."""
    from transformers import LlamaConfig, MistralConfig, Qwen2Config

    kwargs = dict(vocab_size=p["vocab"], hidden_size=p["hidden"], intermediate_size=p["intermediate"],
                  num_hidden_layers=p["layers"], num_attention_heads=p["heads"],
                  num_key_value_heads=p["kv_heads"], head_dim=p["head_dim"],
                  max_position_embeddings=p["max_positions"], rms_norm_eps=p["rms_eps"],
                  tie_word_embeddings=p["tied"], use_cache=False, hidden_act="silu")
    scaling = p.get("rope_scaling")
    if transformers_major() >= 5:
        rope = {"rope_type": "default"} if scaling is None else dict(scaling)
        rope["rope_theta"] = p["rope_theta"]
        kwargs["rope_parameters"] = rope
    else:
        kwargs["rope_theta"] = p["rope_theta"]
        if scaling is not None:
            kwargs["rope_scaling"] = dict(scaling)
    if p["arch"] == "llama":
        return LlamaConfig(**kwargs)
    if p["arch"] == "qwen2":
        return Qwen2Config(use_sliding_window=False, sliding_window=None, **kwargs)
    return MistralConfig(sliding_window=None, **kwargs)


def base_parameter_count(p):
    """Parameters of the base model, counted as al_model_config_parameter_count does."""
    q_dim, kv_dim = p["heads"] * p["head_dim"], p["kv_heads"] * p["head_dim"]
    h, ff = p["hidden"], p["intermediate"]
    attention = h * q_dim + 2 * h * kv_dim + q_dim * h
    if p["arch"] == "qwen2":
        attention += q_dim + 2 * kv_dim
    per_layer = attention + 3 * h * ff + 2 * h  # two RMSNorm weights
    embeddings = p["vocab"] * h
    return embeddings + p["layers"] * per_layer + h + (0 if p["tied"] else embeddings)


def matmul_weight_count(p):
    """N_matmul of the FLOP formula: every parameter but an untied input embedding table."""
    return base_parameter_count(p) - (0 if p["tied"] else p["vocab"] * p["hidden"])


def lora_weight_count(p, rank=LORA_RANK):
    """A is [rank, in], B is [out, rank] for each of the seven targets."""
    q_dim, kv_dim = p["heads"] * p["head_dim"], p["kv_heads"] * p["head_dim"]
    h, ff = p["hidden"], p["intermediate"]
    per_layer = rank * ((h + q_dim) + 2 * (h + kv_dim) + (q_dim + h) + 2 * (h + ff) + (ff + h))
    return p["layers"] * per_layer


MODEL_FLOPS_FORMULA = "4*N_matmul + 6*N_lora + 6*layers*heads*head_dim*seq"


def model_flops_per_token(p, seq):
    """The formula in the module docstring."""
    q_dim = p["heads"] * p["head_dim"]
    return 4 * matmul_weight_count(p) + 6 * lora_weight_count(p) + 6 * p["layers"] * q_dim * seq


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_gemm(device, size, dtype):
    """Achieved TFLOP/s of a square matmul in the model's dtype (bf16 on CUDA, f32 on CPU)."""
    repeats = GEMM_REPEATS_CUDA if device.type == "cuda" else GEMM_REPEATS_CPU
    gen = torch.Generator(device=device).manual_seed(SEED)
    a = torch.randn(size, size, device=device, dtype=dtype, generator=gen)
    b = torch.randn(size, size, device=device, dtype=dtype, generator=gen)
    for _ in range(GEMM_WARMUP):
        c = torch.matmul(a, b)
    synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        c = torch.matmul(a, b)
    synchronize(device)
    seconds = time.perf_counter() - start
    del a, b, c
    return 2.0 * size ** 3 * repeats / seconds / 1e12, DTYPE_NAMES[dtype]


def enable_checkpointing(model):
    """Every decoder layer recomputed in the backward, non-reentrant torch.utils.checkpoint.
    transformers 5.x renamed gradient_checkpointing_enable (deprecated, same behaviour)."""
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    layers = [m for m in model.modules() if getattr(m, "gradient_checkpointing", False)]
    if not layers:
        raise SystemExit("gradient checkpointing did not take: no module has gradient_checkpointing set")


def build_model(p, device, dtype):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    dtype_key = "dtype" if transformers_major() >= 5 else "torch_dtype"
    torch.manual_seed(SEED)
    # Initialise directly on the device: random init of 8B parameters on the host is slow.
    with device:
        model = AutoModelForCausalLM.from_config(model_config(p), attn_implementation="sdpa",
                                                 **{dtype_key: dtype})
    model.config.use_cache = False
    enable_checkpointing(model)
    params = sum(t.numel() for t in model.parameters())  # unique tensors: a tied embedding once
    if params != base_parameter_count(p):
        raise SystemExit(f"transformers built {params} parameters, agentlora's count is "
                         f"{base_parameter_count(p)}: the shapes differ")

    lora = LoraConfig(r=LORA_RANK, lora_alpha=LORA_ALPHA, lora_dropout=0.0, target_modules=LORA_TARGETS,
                      bias="none", task_type="CAUSAL_LM")
    model = get_peft_model(model, lora)
    trainable = [t for t in model.parameters() if t.requires_grad]
    # PEFT already upcasts adapters of a bf16 model to fp32 (autocast_adapter_dtype=True);
    # make sure of it: these are the master weights AdamW updates.
    for t in trainable:
        t.data = t.data.float()
    frozen_dtypes = {t.dtype for t in model.parameters() if not t.requires_grad}
    if frozen_dtypes != {dtype}:
        raise SystemExit(f"frozen weights are {frozen_dtypes}, expected {dtype}")
    model.train()
    lora_params = sum(t.numel() for t in trainable)
    if lora_params != lora_weight_count(p):
        raise SystemExit(f"LoRA parameter count {lora_params} differs from the formula's "
                         f"{lora_weight_count(p)}: the FLOP count would be wrong")
    return model, trainable, params, lora_params


def run_steps(model, trainable, optimizer, device, dtype, vocab, micro_batch, seq, count):
    # One document per row. agentlora packs documents into rows with per-document masks;
    # HF SDPA without varlen packing attends causally over the whole row, which is slightly
    # more attention work for this baseline when agentlora's documents are shorter than seq.
    bf16 = dtype == torch.bfloat16
    for _ in range(count):
        ids = torch.randint(0, vocab, (micro_batch, seq), device=device)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, MAX_GRAD_NORM)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return loss.item()


def device_name(device):
    """"cuda: <GPU name>" or "cpu: <model name in /proc/cpuinfo>", spelled exactly as
    bench/e2e/bench_train.c spells it, because bench/compare.py matches rows on it."""
    if device.type == "cuda":
        return "cuda: " + torch.cuda.get_device_name(device)
    name = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and ":" in line:
                    name = line.split(":", 1)[1].lstrip(" \t").rstrip("\n")
                    break
    except OSError:
        pass
    return "cpu: " + name


def git_commit():
    """Short HEAD, "+dirty" when tracked files differ from it (as bench/e2e/run.sh), else "unknown".
    Read only: GIT_OPTIONAL_LOCKS=0 keeps git status from refreshing the index."""
    here = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, GIT_OPTIONAL_LOCKS="0")
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True,
                              text=True, timeout=10, env=env)
        if head.returncode != 0 or not head.stdout.strip():
            return "unknown"
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                                capture_output=True, text=True, timeout=30, env=env)
        return head.stdout.strip() + ("+dirty" if status.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def reset_peak_rss():
    """Linux resets the process's VmHWM when "5" is written to clear_refs (as bench_train.c does)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass  # then the peak is the whole process's so far


def peak_rss_bytes():
    """VmHWM from /proc/self/status; getrusage's lifetime peak where that is unavailable."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def measure(model, trainable, optimizer, device, dtype, p, micro_batch, seq, steps, warmup):
    """One micro-batch size: the row's measured fields, or an OOM marker."""
    if device.type == "cuda":
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    else:
        reset_peak_rss()
    try:
        run_steps(model, trainable, optimizer, device, dtype, p["vocab"], micro_batch, seq, warmup)
        synchronize(device)
        start = time.perf_counter()
        loss = run_steps(model, trainable, optimizer, device, dtype, p["vocab"], micro_batch, seq, steps)
        synchronize(device)
        seconds = time.perf_counter() - start
    except torch.cuda.OutOfMemoryError:
        optimizer.zero_grad(set_to_none=True)
        return {"error": "oom", "tokens_per_s": None, "step_ms": None, "mfu": None,
                "peak_memory_bytes": None, "peak_memory_kind": "device"}
    row = {"tokens_per_s": micro_batch * seq * steps / seconds, "step_ms": seconds / steps * 1e3,
           "final_loss": loss}
    if device.type == "cuda":
        row.update(peak_memory_bytes=torch.cuda.max_memory_allocated(device),
                   peak_memory_kind="device",
                   peak_memory_reserved_bytes=torch.cuda.max_memory_reserved(device))
    else:
        row.update(peak_memory_bytes=peak_rss_bytes(), peak_memory_kind="host_rss")
    return row


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--preset", required=True, choices=sorted(PRESETS))
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--seq", type=int, default=4096)
    ap.add_argument("--micro-batch", default="1,2,4", help="comma-separated list, e.g. 1,2,4")
    ap.add_argument("--steps", type=int, default=10, help="timed steps per micro-batch size")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps before the timed ones")
    ap.add_argument("--out", help="append one JSON line per micro-batch size to this file")
    ap.add_argument("--dtype", choices=["bf16", "f32"],
                    help="frozen weights' dtype (default bf16 on cuda, f32 on cpu); bf16 also turns on "
                    "autocast, with the LoRA weights in fp32 either way")
    ap.add_argument("--gemm-size", type=int, help=f"GEMM side (default {GEMM_SIZE_CUDA} on cuda, "
                    f"{GEMM_SIZE_CPU} on cpu)")
    args = ap.parse_args(argv)
    try:
        args.micro_batch = [int(x) for x in args.micro_batch.split(",") if x.strip()]
    except ValueError:
        ap.error(f"--micro-batch {args.micro_batch!r} is not a comma-separated list of integers")
    if not args.micro_batch or min(args.micro_batch) < 1 or args.seq < 2 or args.steps < 1 or args.warmup < 0:
        ap.error("--micro-batch values and --steps must be >= 1, --seq >= 2, --warmup >= 0")
    if args.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda but torch sees no CUDA device (use --device cpu to check the script)")
    return args


def main(argv):
    import peft
    import transformers

    args = parse_args(argv)
    device = torch.device("cuda", torch.cuda.current_device()) if args.device == "cuda" else torch.device("cpu")
    p = PRESETS[args.preset]
    dtype = {"bf16": torch.bfloat16, "f32": torch.float32}[args.dtype or
                                                          ("bf16" if device.type == "cuda" else "f32")]

    gemm_size = args.gemm_size or (GEMM_SIZE_CUDA if device.type == "cuda" else GEMM_SIZE_CPU)
    gemm_tflops, gemm_dtype = measure_gemm(device, gemm_size, dtype)
    model, trainable, params, lora_params = build_model(p, device, dtype)
    optimizer = torch.optim.AdamW(trainable, lr=LEARNING_RATE, weight_decay=0.0,
                                  fused=True if device.type == "cuda" else None)
    flops_per_token = model_flops_per_token(p, args.seq)
    common = {
        "engine": "peft", "device": device_name(device), "preset": args.preset, "params": params,
        "lora_params": lora_params, "lora_rank": LORA_RANK, "dtype": DTYPE_NAMES[dtype],
        "gradient_checkpointing": True, "seq": args.seq, "steps": args.steps, "warmup": args.warmup,
        "model_flops_per_token": flops_per_token, "model_flops_formula": MODEL_FLOPS_FORMULA,
        "gemm_tflops": gemm_tflops, "gemm_dtype": gemm_dtype, "gemm_size": gemm_size,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "peft": peft.__version__},
        "commit": git_commit(),
    }
    for micro_batch in args.micro_batch:
        row = dict(common, micro_batch=micro_batch)
        row.update(measure(model, trainable, optimizer, device, dtype, p, micro_batch, args.seq, args.steps, args.warmup))
        if row["tokens_per_s"] is not None:
            row["achieved_tflops"] = flops_per_token * row["tokens_per_s"] / 1e12
            row["mfu"] = row["achieved_tflops"] / gemm_tflops
        row["date"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        line = json.dumps(row, sort_keys=True)
        print(line, flush=True)
        if args.out:
            with open(args.out, "a") as f:
                f.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
