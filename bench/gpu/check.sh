#!/usr/bin/env bash
# Verifies and benchmarks agentlora on a GPU machine in one command, from the GPU bundle
# (`make gpu-bundle`; bench/gpu/README.md):
#
#     build/gpu-bundle/check.sh OUT_DIR
#
# Phases run in order, each with a time budget (a `timeout`) and a result (pass, fail,
# skipped, not_run) plus its numbers; the whole run keeps within AL_CHECK_BUDGET_S seconds
# (default 520, under 9 minutes), and a phase is skipped, with the reason, when less than
# half its budget is left. A failing phase does not stop the others. Written to OUT_DIR:
# logs/<phase>.log, numbers/<phase>.json, summary.json, summary.md (and the e2e and
# generation tables). Random models are written to a scratch folder (AL_CHECK_SCRATCH, by
# default /dev/shm when it has room for them, else $TMPDIR or /tmp), never to OUT_DIR, and
# removed at the end.
#
# AL_CHECK_PHASES="parity e2e_8b" runs only the GPU phases named (the CPU-side ones always
# run: later phases use their models), e.g. to rerun what failed or was skipped.
#
# Without a GPU (no nvidia-smi, no device listed, or AL_CHECK_GPU=0) only the CPU-side phases
# run (bundle, reference); the GPU phases are listed as not_run, it says so plainly, and it
# exits 0 when the CPU-side phases pass.
# Exit status: 0 when no phase failed, 1 when one did, 2 usage.
set -u

BUNDLE=$(cd "$(dirname "$0")" && pwd)
TOOLS="$BUNDLE/tools/check_tools.py"
PYTHON=${PYTHON:-python3}

# ---- the phases (each runs in its own process: `check.sh --phase NAME`, OUT and SCRATCH exported) --
# name:kind:budget seconds. Kinds: cpu (runs everywhere) and gpu (needs a visible GPU).
PHASES="bundle:cpu:20 reference:cpu:40 device:gpu:40 gpu_tests:gpu:60 parity:gpu:45 resume:gpu:45
        e2e_1b:gpu:75 kernels:gpu:40 generation:gpu:75 sanitizer:gpu:90 e2e_8b:gpu:150"

# The device of the GPU phases. Only for rehearsing those phases' scripting on a machine
# without a GPU (AL_CHECK_DEVICE=cpu check.sh --phase NAME, with OUT and SCRATCH exported).
DEVICE=${AL_CHECK_DEVICE:-cuda}

note() { echo "[$(date -u +%H:%M:%S)] $*"; }
numbers() { "$PYTHON" "$TOOLS" numbers "$NUMBERS" "$@"; }
# The JSON object a command printed last on stdout, merged into the phase's numbers under key.
numbers_json() { numbers "$1=$(grep '^{' "$2" | tail -1)"; }

tiny_model() { # DIR [init-model options]: a tiny Llama with the demo tokenizer, written once
  local dir=$1; shift
  [ -e "$dir/config.json" ] || "$BUNDLE/agentlora" init-model --out "$dir" --preset tiny \
    --tokenizer "$BUNDLE/data/demo-tokenizer" "$@" >/dev/null
}

train() { # DEVICE OUTPUT_DIR RUN_NAME STEPS [more train options]
  local device=$1 out=$2 name=$3 steps=$4; shift 4
  "$BUNDLE/agentlora" train --model "$SCRATCH/tiny" --train_data "$BUNDLE/data/agentalign_sample.json" \
    --chat_format chatml-qwen2.5 --max_len 1024 --max_steps "$steps" --lora_r 8 --lr 1e-3 --seed 7 \
    --device "$device" --output_dir "$out" --run_name "$name" "$@"
}

phase_bundle() {
  # Libraries over 4 MiB travel gzipped; unpack them once.
  for gz in "$BUNDLE"/lib/*.gz; do
    [ -e "$gz" ] || continue
    [ -e "${gz%.gz}" ] || { gzip -dc "$gz" > "${gz%.gz}.part" && mv "${gz%.gz}.part" "${gz%.gz}"; }
  done
  local missing=0 files=0
  for f in "$BUNDLE"/* "$BUNDLE"/lib/*; do
    [ -f "$f" ] && head -c 4 "$f" | grep -q ELF || continue
    files=$((files + 1))
    if ldd "$f" | grep "not found"; then echo "  ^ in $f"; missing=$((missing + 1)); fi
  done
  numbers elf_files=$files files_with_missing_libraries=$missing \
    bundled_libraries="$(ls "$BUNDLE"/lib | grep -vc '\.gz$')" ld_library_path="${LD_LIBRARY_PATH:-}"
  "$BUNDLE/agentlora" --help >/dev/null
  [ "$missing" = 0 ]
}

# CPU-side reference: models for the later phases, 20 CPU training steps (the losses the
# GPU's are compared with), and gpu_check run CPU against CPU (zero error, or the tool is broken).
phase_reference() {
  tiny_model "$SCRATCH/tiny"
  tiny_model "$SCRATCH/tiny-std02" --init-std 0.2 --seed 3
  train cpu "$SCRATCH/runs" cpu20 "$REFERENCE_STEPS"
  cp "$SCRATCH/runs/cpu20/metrics.jsonl" "$OUT/logs/reference-cpu20-metrics.jsonl"
  "$BUNDLE/gpu_check" parity --model "$SCRATCH/tiny-std02" --device cpu | tee "$SCRATCH/parity-cpu.json"
  numbers_json cpu_vs_cpu_parity "$SCRATCH/parity-cpu.json"
  grep -q '"logits_max_rel_error": 0.000e+00, .*"grad_rel_l2_error": 0.000e+00' "$SCRATCH/parity-cpu.json"
  "$BUNDLE/gpu_check" decode --model "$SCRATCH/tiny" --device cpu --batch 2 --prompt 16 --new 8 \
    | tee "$SCRATCH/decode-cpu.json"
  numbers_json cpu_decode_tiny "$SCRATCH/decode-cpu.json"
}

phase_device() {
  nvidia-smi
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv \
    | tee "$SCRATCH/smi.csv"
  numbers nvidia_smi="$(tail -1 "$SCRATCH/smi.csv")"
  "$BUNDLE/device_probe" | tee "$SCRATCH/probe.json"
  numbers_json probe "$SCRATCH/probe.json"
}

phase_gpu_tests() {
  local rc=0
  (cd "$SCRATCH" && "$BUNDLE/test_gpu" --jobs 1) 2>&1 | tee "$SCRATCH/test_gpu.log" || rc=$?
  numbers synthesis="$(grep -o 'Synthesis:.*' "$SCRATCH/test_gpu.log" | tail -1)"
  return $rc
}

sanitize() { # LABEL TOOL SECONDS COMMAND...: one compute-sanitizer run, its error count into the numbers
  local label=$1 tool=$2 seconds=$3; shift 3
  note "compute-sanitizer --tool $tool (limit ${seconds}s): $*"
  local rc=0
  timeout --kill-after=3 "$seconds" "$SANITIZER" --tool "$tool" --target-processes all --error-exitcode 9 "$@" \
    > "$SCRATCH/san-$label.log" 2>&1 || rc=$?
  tail -5 "$SCRATCH/san-$label.log"
  [ $rc = 124 ] && echo "$label: timed out after ${seconds}s"
  numbers "${label}_rc=$rc" "${label}_summary=$(grep -o 'ERROR SUMMARY:.*' "$SCRATCH/san-$label.log" | tail -1)"
  return $rc
}

# Each run has its own limit, so a slow one (racecheck over the long attention tests) cannot
# take the others' time; the cheapest run first.
phase_sanitizer() {
  SANITIZER=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
  [ -n "$SANITIZER" ] || { echo "compute-sanitizer not found"; return 1; }
  local failed=0
  sanitize memcheck_decode_step memcheck 15 "$BUNDLE/gpu_check" decode --model "$SCRATCH/tiny" --device "$DEVICE" \
    --batch 3 --prompt 9 --new 1 || failed=1
  sanitize memcheck_train_step memcheck 25 "$BUNDLE/agentlora" train --model "$SCRATCH/tiny" \
    --train_data "$BUNDLE/data/agentalign_sample.json" --chat_format chatml-qwen2.5 --max_len 1024 --max_steps 1 \
    --device "$DEVICE" --output_dir "$SCRATCH/san-runs" --run_name memcheck --save_every 0 || failed=1
  sanitize racecheck_decode racecheck 15 "$BUNDLE/test_gpu" --jobs 1 --filter 'gpu_decode/*' || failed=1
  sanitize racecheck_attention racecheck 30 "$BUNDLE/test_gpu" --jobs 1 --filter 'gpu_ops/attention_*' || failed=1
  return $failed
}

# Tolerance of the 20 training losses, relative to the CPU's at each step: bf16 activations
# (2^-9 relative per rounding) through the tiny model, compounding over 20 AdamW steps. A
# first estimate, to be confirmed on the first GPU run.
LOSS_TOLERANCE=0.02
# Training steps compared (20; fewer only to keep the no-GPU test in CI short).
REFERENCE_STEPS=${AL_CHECK_REFERENCE_STEPS:-20}

phase_parity() {
  local failed=0
  "$BUNDLE/gpu_check" parity --model "$SCRATCH/tiny-std02" --device "$DEVICE" | tee "$SCRATCH/parity.json" || failed=1
  numbers_json logits_and_grads "$SCRATCH/parity.json"
  train "$DEVICE" "$SCRATCH/runs" cuda20 "$REFERENCE_STEPS" || failed=1
  "$PYTHON" "$TOOLS" losses "$SCRATCH/runs/cpu20/metrics.jsonl" "$SCRATCH/runs/cuda20/metrics.jsonl" \
    --tolerance $LOSS_TOLERANCE | tee "$SCRATCH/losses.json" || failed=1
  numbers_json losses_20_steps "$SCRATCH/losses.json"
  return $failed
}

# SIGKILL during training (checkpoints every step, so the kill may land in a checkpoint
# write), then --resume auto; the final adapter is compared with an uninterrupted run's. A
# second uninterrupted run says whether the GPU's training is deterministic at all.
RESUME_STEPS=${AL_CHECK_RESUME_STEPS:-40}
newest_checkpoint() { # RUN_DIR: the step of its newest checkpoint folder, 0 when none
  (ls "$1" 2>/dev/null | sed -n 's/^checkpoint-\([0-9]*\)$/\1/p'; echo 0) | sort -n | tail -1
}
phase_resume() {
  local runs="$SCRATCH/resume" failed=0
  train "$DEVICE" "$runs" whole $RESUME_STEPS --save_every 1 --keep_last 2 > "$SCRATCH/whole.log" 2>&1 || failed=1
  train "$DEVICE" "$runs" whole2 $RESUME_STEPS --save_every 1 --keep_last 2 > "$SCRATCH/whole2.log" 2>&1 || failed=1
  train "$DEVICE" "$runs" killed $RESUME_STEPS --save_every 1 --keep_last 2 > "$SCRATCH/killed.log" 2>&1 &
  local pid=$! polls=0
  # keep_last 2 deletes older checkpoints, so wait for the newest to pass half way.
  while kill -0 $pid 2>/dev/null && [ "$(newest_checkpoint "$runs/killed")" -lt $((RESUME_STEPS / 2)) ] &&
        [ $polls -lt 6000 ]; do
    sleep 0.01; polls=$((polls + 1))
  done
  kill -9 $pid 2>/dev/null || true
  wait $pid 2>/dev/null || true
  local killed_at; killed_at=$(newest_checkpoint "$runs/killed")
  echo "killed with SIGKILL; newest checkpoint then: $killed_at of $RESUME_STEPS"
  numbers killed_after_checkpoint="$killed_at" steps=$RESUME_STEPS
  if [ -e "$runs/killed/checkpoint-$RESUME_STEPS" ]; then
    echo "the run had finished before the kill: resume not exercised"; failed=1
  fi
  train "$DEVICE" "$runs" killed $RESUME_STEPS --save_every 1 --keep_last 2 --resume auto > "$SCRATCH/resumed.log" 2>&1 || failed=1
  local final="checkpoint-$RESUME_STEPS/adapter_model.safetensors"
  "$PYTHON" "$TOOLS" adapters "$runs/whole/$final" "$runs/whole2/$final" | tee "$SCRATCH/deterministic.json" || true
  numbers_json uninterrupted_twice "$SCRATCH/deterministic.json"
  if ! "$PYTHON" "$TOOLS" adapters "$runs/whole/$final" "$runs/killed/$final" | tee "$SCRATCH/resumed.json"; then
    # Not bit-identical: acceptable only when two uninterrupted runs differ as well.
    if grep -q '"identical": true' "$SCRATCH/deterministic.json"; then
      echo "FAIL: the resumed adapter differs from the uninterrupted one, though uninterrupted runs agree"; failed=1
    else
      echo "the resumed adapter differs (numbers above), and so do two uninterrupted runs: the GPU path is"
      echo "not deterministic; compare the sizes of the two differences"
    fi
  fi
  numbers_json resumed_against_uninterrupted "$SCRATCH/resumed.json"
  return $failed
}

have_torch() { "$PYTHON" -c "import torch, transformers, peft; assert torch.cuda.is_available()" 2>/dev/null; }

e2e() { # PRESET: agentlora's and transformers + PEFT's training step at sequence 4096
  local preset=$1 failed=0
  "$BUNDLE/bench_train" --device "$DEVICE" --preset "$preset" --seq 4096 --micro-batch 1 --steps 5 --warmup 1 \
    --model-dir "$SCRATCH/models/$preset" --out "$OUT/numbers/bench-e2e.jsonl" || failed=1
  if have_torch; then
    "$PYTHON" "$BUNDLE/tools/baseline_peft.py" --device "$DEVICE" --preset "$preset" --seq 4096 --micro-batch 1 \
      --steps 5 --warmup 1 --out "$OUT/numbers/bench-peft.jsonl" || failed=1
  else
    echo "$PYTHON lacks torch/transformers/peft or sees no GPU: no PEFT baseline"; failed=1
  fi
  "$PYTHON" "$BUNDLE/tools/compare.py" "$OUT/numbers/bench-e2e.jsonl" \
    $(ls "$OUT/numbers/bench-peft.jsonl" 2>/dev/null) > "$OUT/e2e_table.md" && cat "$OUT/e2e_table.md"
  numbers "agentlora=$(grep "\"$preset\"" "$OUT/numbers/bench-e2e.jsonl" 2>/dev/null | tail -1)" \
    "peft=$(grep "\"$preset\"" "$OUT/numbers/bench-peft.jsonl" 2>/dev/null | tail -1)"
  return $failed
}
phase_e2e_1b() { e2e llama-3.2-1b; }
phase_e2e_8b() { e2e llama-3.1-8b; }

phase_kernels() { "$BUNDLE/bench_cuda_ops"; }

# Decoding throughput at batch 1 and 32 on the Llama-3.2-1B-shaped model e2e_1b wrote
# (written here when that phase did not run), against transformers' generate.
phase_generation() {
  local model="$SCRATCH/models/llama-3.2-1b" failed=0 rows="$SCRATCH/generation.jsonl"
  [ -e "$model/config.json" ] || "$BUNDLE/agentlora" init-model --preset llama-3.2-1b --out "$model" || return 1
  for batch in 1 32; do
    "$BUNDLE/gpu_check" decode --model "$model" --device "$DEVICE" --batch $batch --prompt 128 --new 64 \
      | tee -a "$rows" || failed=1
    if have_torch; then
      "$PYTHON" "$BUNDLE/tools/generate_hf.py" --model "$model" --batch $batch --prompt 128 --new 64 \
        | tee -a "$rows" || failed=1
    else
      echo "$PYTHON lacks torch/transformers or sees no GPU: no transformers baseline"; failed=1
    fi
  done
  "$PYTHON" "$TOOLS" generation_table "$rows" > "$OUT/generation_table.md"
  cat "$OUT/generation_table.md"
  numbers "rows=[$(grep '^{' "$rows" | paste -sd, -)]"
  return $failed
}

# ---- one phase, in its own process ----------------------------------------------------
if [ "${1:-}" = "--phase" ]; then
  [ $# = 2 ] || exit 2
  NUMBERS="$OUT/numbers/$2.json"
  set -eo pipefail
  "phase_$2"
  exit $?
fi

# ---- the driver -----------------------------------------------------------------------
if [ $# != 1 ] || [ "${1#-}" != "$1" ]; then
  echo "usage: $0 OUT_DIR   (runs every phase; see the header of this script)" >&2
  exit 2
fi
OUT=$(mkdir -p "$1" && cd "$1" && pwd) || { echo "check.sh: cannot create $1" >&2; exit 2; }
mkdir -p "$OUT/logs" "$OUT/numbers"
rm -f "$OUT/phases.tsv" "$OUT/numbers/"*.json "$OUT/numbers/"*.jsonl
TOTAL_BUDGET=${AL_CHECK_BUDGET_S:-520}
START=$(date +%s)

# Scratch: /dev/shm when it holds the 1B and 8B models (about 19 GB) with room to spare.
if [ -z "${AL_CHECK_SCRATCH:-}" ]; then
  if [ "$(df -Pk /dev/shm 2>/dev/null | awk 'NR==2 {print $4}')" -gt 40000000 ] 2>/dev/null; then
    AL_CHECK_SCRATCH=/dev/shm/agentlora-check.$$
  else
    AL_CHECK_SCRATCH=${TMPDIR:-/tmp}/agentlora-check.$$
  fi
fi
SCRATCH=$AL_CHECK_SCRATCH
mkdir -p "$SCRATCH"
trap 'rm -rf "$SCRATCH"' EXIT
export OUT SCRATCH PYTHON

# cuBLAS comes from the machine: when the loader does not find it, look in the
# CUDA toolkit folders and in the nvidia-* wheels PyTorch installs.
if ldd "$BUNDLE/agentlora" | grep -q "libcublas.*not found"; then
  for d in /usr/local/cuda/lib64 /usr/local/cuda-13*/lib64 /usr/local/cuda*/targets/x86_64-linux/lib \
           $("$PYTHON" -c 'import glob, site
print(" ".join(d for s in site.getsitepackages() for d in glob.glob(s + "/nvidia/*/lib")))' 2>/dev/null); do
    if ls "$d"/libcublas.so.13 >/dev/null 2>&1 || ls "$d"/libcublasLt.so.13 >/dev/null 2>&1; then
      LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    fi
  done
  export LD_LIBRARY_PATH
fi

# Is there a GPU? nvidia-smi listing a device; the reason is printed when not.
GPU_REASON=""
if [ "${AL_CHECK_GPU:-1}" = 0 ]; then
  GPU_REASON="AL_CHECK_GPU=0 was set"
elif ! command -v nvidia-smi >/dev/null 2>&1; then
  GPU_REASON="nvidia-smi is not installed"
elif ! nvidia-smi -L > "$OUT/logs/nvidia-smi-L.log" 2>&1 || ! grep -q '^GPU ' "$OUT/logs/nvidia-smi-L.log"; then
  GPU_REASON="nvidia-smi lists no GPU ($(head -1 "$OUT/logs/nvidia-smi-L.log"))"
fi
GPU_NAME=$([ -z "$GPU_REASON" ] && head -1 "$OUT/logs/nvidia-smi-L.log" || echo none)

commit=$(sed -n 's/^commit: //p' "$BUNDLE/BUNDLE.txt" 2>/dev/null)
export AL_BENCH_COMMIT=${commit:-unknown}  # bench_train's "commit" (there may be no git here)
"$PYTHON" - "$OUT/header.json" "$commit" "$GPU_NAME" "$TOTAL_BUDGET" <<'EOF'
import json, socket, sys, time
json.dump({"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "commit": sys.argv[2] or "unknown",
           "host": socket.gethostname(), "gpu": sys.argv[3], "budget_s": int(sys.argv[4])}, open(sys.argv[1], "w"))
EOF
note "agentlora GPU check: bundle $BUNDLE (commit ${commit:-unknown}), output $OUT, budget ${TOTAL_BUDGET}s"
note "GPU: ${GPU_NAME}${GPU_REASON:+ ($GPU_REASON)}"

any_failed=0
record() { printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >> "$OUT/phases.tsv"; }
for spec in $PHASES; do
  IFS=: read -r name kind budget <<< "$spec"
  left=$((TOTAL_BUDGET - ($(date +%s) - START)))
  if [ "$kind" = gpu ] && [ -n "${AL_CHECK_PHASES:-}" ] && ! [[ " $AL_CHECK_PHASES " == *" $name "* ]]; then
    record "$name" "$kind" skipped 0 "$budget" "not selected (AL_CHECK_PHASES=$AL_CHECK_PHASES)"
    continue
  fi
  if [ "$kind" = gpu ] && [ -n "$GPU_REASON" ]; then
    record "$name" "$kind" not_run 0 "$budget" "GPU phase did not run: $GPU_REASON"
    note "$name: NOT RUN (GPU phase; $GPU_REASON)"
    continue
  fi
  if [ $left -lt $((budget / 2)) ]; then
    record "$name" "$kind" skipped 0 "$budget" "skipped: ${left}s of the total budget left, budget ${budget}s"
    note "$name: SKIPPED, only ${left}s left (budget ${budget}s)"
    continue
  fi
  limit=$((budget < left ? budget : left))
  note "$name: running (limit ${limit}s) ..."
  t0=$(date +%s)
  timeout --kill-after=5 "$limit" bash "$0" --phase "$name" > "$OUT/logs/$name.log" 2>&1
  rc=$?
  seconds=$(($(date +%s) - t0))
  case $rc in
    0) status=pass; message="" ;;
    124|137) status=fail; message="timed out after ${limit}s" ;;
    *) status=fail; message="exit status $rc (see logs/$name.log)" ;;
  esac
  [ $status = pass ] || any_failed=1
  record "$name" "$kind" "$status" "$seconds" "$budget" "$message"
  note "$name: $(echo $status | tr a-z A-Z) in ${seconds}s${message:+: $message}"
  [ $status = pass ] || tail -5 "$OUT/logs/$name.log" | sed 's/^/    | /'
done

"$PYTHON" "$TOOLS" numbers "$OUT/header.json" total_seconds=$(($(date +%s) - START)) >/dev/null
"$PYTHON" "$TOOLS" summary "$OUT" && cat "$OUT/summary.md"
if [ -n "$GPU_REASON" ]; then
  echo
  echo "NOTE: the GPU phases did NOT run ($GPU_REASON). Only the CPU-side phases ran; nothing"
  echo "      here is a GPU result."
fi
exit $any_failed
