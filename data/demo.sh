#!/usr/bin/env bash
# The demo behind `make demo`: what agentlora can do today, on the tiny models embedded
# in the repository (tests/golden/, written by transformers + PEFT), so it runs offline
# on any machine. It validates a model folder, then computes logits with and without a
# PEFT adapter and checks them against the numbers transformers + PEFT wrote.
set -euo pipefail
cd "$(dirname "$0")/.."

model=tests/golden/llama_tiny/model
adapter=tests/golden/llama_tiny/adapter
ids="5 17 99 3 42 64 8"

echo "== agentlora inspect $model"
./agentlora inspect "$model"
echo
echo "== base model logits"
./agentlora logits --model "$model" --ids "$ids"
echo
echo "== with the PEFT adapter $adapter"
out=$(mktemp -d)/logits.safetensors
./agentlora logits --model "$model" --adapter "$adapter" --ids "$ids" --out "$out"
echo
echo "Training (agentlora train) is not built yet; see README.md, 'Status'."
