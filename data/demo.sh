#!/usr/bin/env bash
# The demo behind `make demo`: a complete training run, offline, on the project's own
# data. Until a real instruct model is wired in (see README, Status), the model is a
# small random-initialised Llama whose vocabulary is the project's demo tokenizer
# (data/demo-tokenizer, trained on data/), so the run shows the whole machinery: AgentAlign
# records rendered with the Qwen2.5 chat format, PING prefixes injected in train mode,
# packing, LoRA training with checkpoints, eval loss on harmful and benign records, and a
# PEFT adapter at the end. On the GPU when one is visible, else on the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."

model=checkpoints/demo-model
if [ ! -f "$model/config.json" ]; then
  echo "== creating $model (random weights, demo tokenizer)"
  # std 0.1 (not 0.02) lets an adapter on this random frozen model move the logits visibly
  ./agentlora init-model --preset tiny --tokenizer data/demo-tokenizer --seed 1 --init-std 0.1 --out "$model"
fi
./agentlora inspect "$model" | head -n 12
echo
echo "== what the loss sees (first record; trained tokens marked)"
./agentlora data inspect data/agentalign_sample.json --model "$model" --template chatml-qwen2.5 \
  --ping-prefixes data/ping_prefixes.json --records 1 --max-len 1024 | tail -n 25
echo
echo "== training (data/demo.json)"
./agentlora train --config data/demo.json
