#!/usr/bin/env bash
# CPU data-parallel scaling: the same training (the tiny random model of the tests, the
# sample data, 4 micro-batches a step) as one process with 2 OpenMP threads and
# gradient_accumulation 4, then as `mpirun -np 2` ranks of 1 thread each with
# gradient_accumulation 2. Prints each run's tokens/s (from its summary) and whether the
# adapters are byte-identical. Usage: bench/parallel/cpu_ranks.sh [STEPS]
set -euo pipefail
CLI=${AL_CLI:-./agentlora}
steps=${1:-30}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
MPIRUN=(mpirun --oversubscribe)
[ "$(id -u)" = 0 ] && MPIRUN+=(--allow-run-as-root)
"$CLI" init-model --out "$work/model" --tokenizer data/demo-tokenizer --init-std 0.1 >/dev/null
common=(train --model "$work/model" --train_data data/agentalign_sample.json --chat_format chatml-qwen2.5
        --max_len 1024 --lora_r 16 --max_steps "$steps" --save_every 0 --device cpu --output_dir "$work/")
OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=1 "$CLI" "${common[@]}" --run_name one --gradient_accumulation 4 >"$work/one.log" 2>&1
OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 "${MPIRUN[@]}" -np 2 "$CLI" "${common[@]}" --run_name two \
    --gradient_accumulation 2 >"$work/two.log" 2>&1
rate() { sed -n 's/.*tokens .*(\([0-9.]*\) tok\/s).*/\1/p' "$work/$1.log"; }
echo "cores: $(nproc); steps: $steps"
echo "1 process x 2 threads, G=4: $(rate one) tok/s"
echo "2 ranks x 1 thread, G=2:    $(rate two) tok/s"
if cmp -s "$work/one/checkpoint-$steps/adapter_model.safetensors" "$work/two/checkpoint-$steps/adapter_model.safetensors"; then
    echo "adapters: byte-identical"
else
    echo "adapters: DIFFER"
fi
