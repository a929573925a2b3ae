#!/usr/bin/env python3
"""Checks that TensorBoard's own reader accepts the event files agentlora writes.

Not run in CI (it needs `pip install tensorboard`). Usage:

    python tests/golden/check_tfevents.py RUN_DIR [TAG=STEP:VALUE ...]

Loads RUN_DIR with tensorboard's EventAccumulator (the reader behind
`tensorboard --logdir`), prints every scalar series, and, for each TAG=STEP:VALUE given,
checks that the series TAG holds VALUE at STEP (float32 tolerance). Exits 1 on a mismatch.
"""
import math
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def main(argv):
    if len(argv) < 2:
        print(__doc__)
        return 2
    accumulator = EventAccumulator(argv[1], size_guidance={"scalars": 0})
    accumulator.Reload()
    tags = accumulator.Tags()["scalars"]
    series = {tag: {e.step: e.value for e in accumulator.Scalars(tag)} for tag in tags}
    for tag in sorted(series):
        print(tag, sorted(series[tag].items()))
    failures = 0
    for expectation in argv[2:]:
        tag, point = expectation.split("=", 1)
        step, value = point.split(":", 1)
        got = series.get(tag, {}).get(int(step))
        if got is None or not math.isclose(got, float(value), rel_tol=1e-6):
            print(f"MISMATCH {tag} at step {step}: expected {value}, got {got}")
            failures += 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
