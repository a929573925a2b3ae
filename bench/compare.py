#!/usr/bin/env python3
"""Puts agentlora's and transformers + PEFT's training benchmarks side by side.

Reads the JSON lines that bench/e2e/bench_train.c (engine "agentlora") and
bench/baseline_peft.py (engine "peft") append to their --out files, matches the rows of the
two engines by (preset, seq, micro_batch, device) and prints one Markdown table per device:
tokens/s of each engine and their ratio (agentlora / peft: above 1 means agentlora is
faster), peak memory of each and their ratio (below 1 means agentlora uses less), and the
MFU of each. A configuration only one engine ran shows "-" on the other side; a run that
ran out of memory (a row with "error": "oom") shows "OOM". When a file holds several rows
for the same engine and configuration (a rerun), the last one read wins.

Both scripts count model FLOPs with the same formula (see their header comments) and divide
by a GEMM rate each measured in its own run (torch.matmul for PEFT, agentlora's own
linear_forward for agentlora; the footer lists both rates). When the two rates agree, as
they should on a GPU where both reach cuBLAS's peak, the MFU columns compare like with
like; when they differ (the CPU: MKL or OpenBLAS against agentlora's backend) the ratio of
MFUs is not the ratio of speeds. tokens/s is the number to quote. Peak memory is what each engine's allocator handed out
(torch.cuda.max_memory_allocated for PEFT, the arena high-water mark for agentlora), or the
process's peak RSS on the CPU; the "kind" column says which, and a ratio is printed only
when both sides measured the same kind.

Usage (plain Python 3, no packages needed):
    python3 bench/compare.py bench/e2e/results.jsonl bench/peft.jsonl > table.md

Status: no GPU run has happened yet, so there are no real results to compare; the script
has been checked on hand-written rows only.
"""
import argparse
import json
import sys

KEY_FIELDS = ("preset", "seq", "micro_batch", "device")
MISSING = "-"
GIB = float(1 << 30)


def read_rows(paths, engines):
    """{(engine, key): row}, later rows replacing earlier ones; a bad line is an error."""
    rows = {}
    for path in paths:
        with open(path) as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    sys.exit(f"{path}:{number}: not JSON ({e})")
                if not isinstance(row, dict):
                    sys.exit(f"{path}:{number}: not a JSON object")
                missing = [k for k in ("engine",) + KEY_FIELDS if k not in row]
                if missing:
                    sys.exit(f"{path}:{number}: no {', '.join(missing)}")
                if row["engine"] not in engines:
                    print(f"{path}:{number}: engine {row['engine']!r} ignored (comparing "
                          f"{' and '.join(engines)})", file=sys.stderr)
                    continue
                rows[(row["engine"], tuple(row[k] for k in KEY_FIELDS))] = row
    return rows


def failed(row):
    return row is not None and (row.get("error") or row.get("tokens_per_s") is None)


def cell(row, field, fmt):
    if row is None:
        return MISSING
    if failed(row):
        return "OOM" if row.get("error") == "oom" else str(row.get("error") or "failed")
    value = row.get(field)
    return MISSING if value is None else fmt(value)


def ratio(a, b, field, same_kind=True):
    if a is None or b is None or failed(a) or failed(b) or not same_kind:
        return MISSING
    x, y = a.get(field), b.get(field)
    if x is None or not y:
        return MISSING
    return f"{x / y:.2f}x"


def memory_kind(a, b):
    kinds = {r.get("peak_memory_kind") for r in (a, b) if r is not None and not failed(r)}
    return " / ".join(sorted(k for k in kinds if k)) or MISSING


def sort_key(key):
    preset, seq, micro_batch, device = key
    return (str(device), str(preset), seq if isinstance(seq, (int, float)) else 0,
            micro_batch if isinstance(micro_batch, (int, float)) else 0)


def table(rows, engines):
    ours, theirs = engines
    keys = sorted({key for _, key in rows}, key=sort_key)
    lines = []
    device = object()
    for key in keys:
        if key[3] != device:
            device = key[3]
            if lines:
                lines.append("")
            lines += [f"### {device}", "",
                      f"| preset | seq | micro-batch | tokens/s {ours} | tokens/s {theirs} | speed ratio | "
                      f"peak GiB {ours} | peak GiB {theirs} | memory ratio | memory kind | "
                      f"MFU {ours} | MFU {theirs} |",
                      "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|"]
        a, b = rows.get((ours, key)), rows.get((theirs, key))
        same_kind = (a is not None and b is not None and
                     a.get("peak_memory_kind") == b.get("peak_memory_kind"))
        lines.append("| " + " | ".join([
            str(key[0]), str(key[1]), str(key[2]),
            cell(a, "tokens_per_s", lambda v: f"{v:,.0f}"),
            cell(b, "tokens_per_s", lambda v: f"{v:,.0f}"),
            ratio(a, b, "tokens_per_s"),
            cell(a, "peak_memory_bytes", lambda v: f"{v / GIB:.2f}"),
            cell(b, "peak_memory_bytes", lambda v: f"{v / GIB:.2f}"),
            ratio(a, b, "peak_memory_bytes", same_kind),
            memory_kind(a, b),
            cell(a, "mfu", lambda v: f"{100 * v:.1f}%"),
            cell(b, "mfu", lambda v: f"{100 * v:.1f}%"),
        ]) + " |")
    return "\n".join(lines)


def provenance(rows):
    """One line per engine: the commits, dates and library versions the numbers come from."""
    out = []
    for engine in sorted({e for e, _ in rows}):
        picked = [r for (e, _), r in rows.items() if e == engine]
        commits = sorted({str(r.get("commit", "unknown")) for r in picked})
        dates = sorted(str(r["date"]) for r in picked if r.get("date"))
        versions = sorted({", ".join(f"{k} {v}" for k, v in sorted(r["versions"].items()))
                           for r in picked if isinstance(r.get("versions"), dict)})
        span = f"{dates[0]} to {dates[-1]}" if dates else "date unknown"
        gemm = sorted({f"{r['device']} {r['gemm_tflops']:.3g} TFLOP/s {r.get('gemm_dtype', '')}".rstrip()
                       for r in picked if isinstance(r.get("gemm_tflops"), (int, float))})
        text = f"- {engine}: commit {', '.join(commits)}; {span}"
        if gemm:
            text += f"; MFU relative to its measured GEMM rate: {'; '.join(gemm)}"
        if versions:
            text += f"; {'; '.join(versions)}"
        out.append(text)
    return "\n".join(out)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("files", nargs="+", help="JSON lines files from either engine, in any order")
    ap.add_argument("--engines", default="agentlora,peft",
                    help="the two engines to compare, ratios are first / second (default agentlora,peft)")
    args = ap.parse_args(argv)
    engines = [e.strip() for e in args.engines.split(",")]
    if len(engines) != 2 or not all(engines) or engines[0] == engines[1]:
        ap.error("--engines takes two different names separated by a comma")
    rows = read_rows(args.files, engines)
    if not rows:
        sys.exit("no rows of " + " or ".join(engines) + " in " + ", ".join(args.files))
    print(table(rows, engines))
    print()
    print(provenance(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
