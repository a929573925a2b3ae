#!/usr/bin/env python3
"""Greedy generation throughput of transformers' generate() on a model folder, measured as
`gpu_check decode` measures agentlora: BATCH sequences of PROMPT random token ids, then NEW
tokens each (min_new_tokens = max_new_tokens, so no sequence stops early), bf16, KV cache.
The decode rate excludes the prefill: (t(NEW) - t(1)) covers NEW - 1 decode steps of BATCH
tokens. Prints one JSON object (keys as gpu_check decode's). Needs torch and transformers.

Usage: generate_hf.py --model DIR [--batch B] [--prompt P] [--new N] [--device cuda]
"""
import argparse
import json
import time

import torch
import transformers
from transformers import AutoModelForCausalLM


def timed_generate(model, ids, new_tokens, device):
    mask = torch.ones_like(ids)
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                   do_sample=False, pad_token_id=0, use_cache=True)
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--prompt", type=int, default=128)
    ap.add_argument("--new", type=int, default=128)
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    args = ap.parse_args()
    dtype = torch.bfloat16 if args.device == "cuda" else torch.float32
    # transformers 5 spells torch_dtype "dtype" (as bench/baseline_peft.py does).
    dtype_key = "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"
    model = AutoModelForCausalLM.from_pretrained(args.model, **{dtype_key: dtype}).to(args.device).eval()
    generator = torch.Generator().manual_seed(7)
    ids = torch.randint(0, model.config.vocab_size, (args.batch, args.prompt), generator=generator).to(args.device)
    with torch.inference_mode():
        timed_generate(model, ids, 4, args.device)  # warm-up: kernels, allocator
        prefill = timed_generate(model, ids, 1, args.device)
        total = timed_generate(model, ids, args.new, args.device)
    decode = max(total - prefill, 1e-9)
    steps = max(args.new - 1, 1)
    print(json.dumps({"engine": "transformers", "device": args.device, "batch": args.batch, "prompt": args.prompt,
                      "new_tokens": args.new, "prefill_s": round(prefill, 4), "decode_s": round(decode, 4),
                      "decode_tokens_per_s": round(args.batch * steps / decode, 1),
                      "ms_per_step": round(1e3 * decode / steps, 3),
                      "torch": torch.__version__, "transformers": transformers.__version__}))


if __name__ == "__main__":
    main()
