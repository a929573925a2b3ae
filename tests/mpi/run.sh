#!/usr/bin/env bash
# Data-parallel training on the CPU under a real MPI launcher (Open MPI's mpirun, two ranks
# oversubscribed on however many cores there are). What it proves:
#   - mpirun -np 2 with gradient_accumulation G ends with the same adapter bytes as one
#     process with 2G, checkpoint by checkpoint, and the same losses; only rank 0 writes;
#   - SIGKILL of one rank ends the run promptly, the last checkpoint stays good, and
#     --resume auto (with two ranks, or with one process and 2G) continues bit for bit;
#   - a rank that hangs (SIGSTOP) makes the other fail within collective_timeout, naming it;
#   - a rank that cannot start stops every rank at once, naming it.
# Run from the repository root (make test does); AL_CLI names the binary.
set -euo pipefail

CLI=${AL_CLI:-./agentlora}
command -v mpirun >/dev/null || { echo "tests/mpi: mpirun not found (make deps installs Open MPI)"; exit 1; }
work=$(mktemp -d)
cleanup() {
    pkill -KILL -f "output_dir $work/" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
[ -n "${AL_KEEP_MPI_WORK:-}" ] && trap - EXIT

MPIRUN=(mpirun --oversubscribe)
[ "$(id -u)" = 0 ] && MPIRUN+=(--allow-run-as-root)
# One thread per rank: two ranks share the cores instead of fighting over them.
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1

failures=0
check() { # check DESCRIPTION COMMAND...
    local what=$1
    shift
    if "$@"; then
        echo "ok   - $what"
    else
        echo "FAIL - $what"
        failures=$((failures + 1))
    fi
}

"$CLI" init-model --out "$work/model" --tokenizer data/demo-tokenizer --init-std 0.1 >/dev/null

# train NAME RANKS ACCUMULATION [more keys...]: output in $work/NAME.log
train() {
    local name=$1 ranks=$2 accumulation=$3
    shift 3
    local launcher=()
    [ "$ranks" -gt 1 ] && launcher=("${MPIRUN[@]}" -np "$ranks")
    "${launcher[@]}" "$CLI" train --model "$work/model" --train_data data/agentalign_sample.json \
        --chat_format chatml-qwen2.5 --max_len 1024 --lora_r 4 --lr 5e-3 --lora_dropout 0.1 --device cpu \
        --output_dir "$work/" --run_name "$name" --gradient_accumulation "$accumulation" "$@" \
        >"$work/$name.log" 2>&1
}

same_adapter() { # same_adapter RUN_A RUN_B STEP
    cmp -s "$work/$1/checkpoint-$3/adapter_model.safetensors" "$work/$2/checkpoint-$3/adapter_model.safetensors"
}
train_losses() { grep '"kind":"train"' "$work/$1/metrics.jsonl" | sed 's/.*"loss":\([^,]*\),.*/\1/'; }
same_losses() { diff <(train_losses "$1") <(train_losses "$2") >/dev/null; }
count_in_log() { grep -c -- "$2" "$work/$1.log" || true; }

# ---- one process with 2G == two ranks with G ----
train one-g4 1 4 --max_steps 6 --save_every 3
train two-g2 2 2 --max_steps 6 --save_every 3
check "2 ranks x G=2 and 1 process x G=4: the same adapter bytes at step 3" same_adapter one-g4 two-g2 3
check "2 ranks x G=2 and 1 process x G=4: the same adapter bytes at step 6" same_adapter one-g4 two-g2 6
check "2 ranks x G=2 and 1 process x G=4: the same training losses" same_losses one-g4 two-g2
check "rank 0 alone reports: one summary" test "$(count_in_log two-g2 'training finished')" = 1
check "rank 0 alone writes: one TensorBoard file" test "$(ls "$work/two-g2" | grep -c '^events.out')" = 1
check "the log says the run is data parallel" grep -q "data parallel: 2 ranks" "$work/two-g2.log"
train one-g2 1 2 --max_steps 4
train two-g1 2 1 --max_steps 4
check "2 ranks x G=1 and 1 process x G=2: the same adapter bytes" same_adapter one-g2 two-g1 4
# The test can fail: a different split of the same data is a different optimisation.
check "(control) 1 process x G=2 differs from 1 process x G=4" bash -c "! cmp -s '$work/one-g2/checkpoint-4/adapter_model.safetensors' '$work/one-g4/checkpoint-3/adapter_model.safetensors'"

# ---- a rank killed mid-run; resume ----
# rank_pid RUN RANK: the pid of that rank of that run
rank_pid() {
    for pid in $(pgrep -f -- "--run_name $1 " || true) $(pgrep -f -- "--run_name $1\$" || true); do
        if tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2"; then
            echo "$pid"
            return 0
        fi
    done
    return 1
}
# wait_for FILE SECONDS
wait_for() {
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        [ -e "$1" ] && return 0
        sleep 0.1
    done
    return 1
}

# wait_status PID: waits for a background launcher; its exit status in $status
wait_status() {
    set +e
    wait "$1"
    status=$?
    set -e
}

train reference 1 4 --max_steps 12 --save_every 2
train killed 2 2 --max_steps 12 --save_every 2 &
launcher=$!
wait_for "$work/killed/checkpoint-4/adapter_model.safetensors" 120
victim=$(rank_pid killed 1)
kill -KILL "$victim"
started=$SECONDS
wait_status "$launcher"
check "SIGKILL of rank 1: mpirun fails (status $status)" test "$status" -ne 0
check "SIGKILL of rank 1: the run ended within 60 s" test $((SECONDS - started)) -le 60
cp -r "$work/killed" "$work/killed-copy"
train killed 2 2 --max_steps 12 --save_every 2 --resume auto
check "resumed with 2 ranks after the kill: the uninterrupted run's adapter" same_adapter reference killed 12
check "resumed with 2 ranks: the uninterrupted run's losses" same_losses reference killed
rm -rf "$work/killed"
mv "$work/killed-copy" "$work/killed"
train killed 1 4 --max_steps 12 --save_every 2 --resume auto
check "resumed with 1 process x G=4 after the kill: the uninterrupted run's adapter" same_adapter reference killed 12
check "resuming with another rank count says the run goes on exactly" grep -q "resuming a run of 2 ranks with 1" "$work/killed.log"

# ---- a rank that hangs ----
train hung 2 2 --max_steps 100000 --save_every 0 --collective_timeout 5 &
launcher=$!
wait_for "$work/hung/metrics.jsonl" 120
sleep 1
stopped=$(rank_pid hung 1)
kill -STOP "$stopped"
started=$SECONDS
wait_status "$launcher"
kill -KILL "$stopped" 2>/dev/null || true
check "rank 1 stopped (SIGSTOP): the run fails (status $status)" test "$status" -ne 0
check "rank 1 stopped: rank 0 gave up within collective_timeout (5 s) plus 30 s" test $((SECONDS - started)) -le 35
check "rank 1 stopped: rank 0's message names rank 1" grep -q "rank 1 did not answer for 5 s" "$work/hung.log"

# ---- a rank that cannot start ----
# The run folder already holds checkpoints and the run is not a resume: rank 0 refuses it.
train refused 2 2 --max_steps 2
started=$SECONDS
set +e
train refused 2 2 --max_steps 2
status=$?
set -e
check "rank 0 refuses to start: every rank fails (status $status)" test "$status" -ne 0
check "rank 0 refuses to start: at once (within 30 s)" test $((SECONDS - started)) -le 30
check "rank 0 refuses to start: rank 1 names rank 0" grep -q "rank 1: rank 0 could not open the run folder" "$work/refused.log"

if [ "$failures" -gt 0 ]; then
    echo "tests/mpi: $failures check(s) failed; the logs:"
    for log in "$work"/*.log; do
        echo "==== $log"
        tail -n 30 "$log"
    done
    exit 1
fi
echo "tests/mpi: all checks passed"
