#!/usr/bin/env python3
"""Helpers of bench/gpu/check.sh, plain Python 3 (no packages):

  check_tools.py losses CPU_METRICS DEVICE_METRICS --tolerance R
      compares the training losses of two metrics.jsonl files step by step; exit 1 when a
      step is missing or differs by more than R relative to the CPU's loss.
  check_tools.py adapters A.safetensors B.safetensors
      compares two adapters tensor by tensor: identical bytes, or the largest absolute
      difference; exit 1 when they differ.
  check_tools.py numbers FILE KEY=VALUE...
      merges values (numbers where they parse) into the JSON object in FILE.
  check_tools.py generation_table ROWS.jsonl
      the Markdown table of gpu_check decode's and generate_hf.py's JSON lines.
  check_tools.py summary OUT
      writes OUT/summary.json and OUT/summary.md from OUT/phases.tsv and OUT/numbers/*.json.
Each comparison prints one JSON object on stdout.
"""
import json
import math
import os
import struct
import sys


def read_losses(path):
    """{step: loss} of the training records of a metrics.jsonl (those with "loss" and "step")."""
    losses = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            row = json.loads(line)
            if row.get("kind", "train") == "train" and "loss" in row and "step" in row:
                losses[int(row["step"])] = float(row["loss"])
    return losses


def cmd_losses(args):
    cpu_path, dev_path = args[0], args[1]
    tolerance = float(args[args.index("--tolerance") + 1])
    cpu, dev = read_losses(cpu_path), read_losses(dev_path)
    worst, worst_step, missing = 0.0, None, sorted(set(cpu) ^ set(dev))
    for step in sorted(set(cpu) & set(dev)):
        rel = abs(dev[step] - cpu[step]) / max(abs(cpu[step]), 1e-30)
        if not math.isfinite(dev[step]) or rel > worst:
            worst, worst_step = (math.inf if not math.isfinite(dev[step]) else rel), step
    ok = not missing and bool(cpu) and worst <= tolerance
    print(json.dumps({"steps": len(cpu), "missing_steps": missing, "max_rel_loss_error": worst,
                      "worst_step": worst_step, "tolerance": tolerance, "pass": ok,
                      "cpu_first_last": [cpu.get(min(cpu)), cpu.get(max(cpu))] if cpu else None,
                      "device_first_last": [dev.get(min(dev)), dev.get(max(dev))] if dev else None}))
    return 0 if ok else 1


def read_safetensors(path):
    """{name: (dtype, shape, bytes)}."""
    with open(path, "rb") as f:
        data = f.read()
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + size])
    body = data[8 + size:]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        tensors[name] = (info["dtype"], info["shape"], body[begin:end])
    return tensors


def cmd_adapters(args):
    a, b = read_safetensors(args[0]), read_safetensors(args[1])
    if set(a) != set(b):
        print(json.dumps({"identical": False, "error": "different tensor names",
                          "only_in_first": sorted(set(a) - set(b)), "only_in_second": sorted(set(b) - set(a))}))
        return 1
    worst, worst_name, differing = 0.0, None, 0
    for name in sorted(a):
        (dt, shape, x), (dt2, shape2, y) = a[name], b[name]
        if dt != "F32" or dt2 != "F32" or shape != shape2:
            print(json.dumps({"identical": False, "error": f"{name}: {dt}{shape} against {dt2}{shape2}"}))
            return 1
        if x == y:
            continue
        differing += 1
        n = len(x) // 4
        xs, ys = struct.unpack(f"<{n}f", x), struct.unpack(f"<{n}f", y)
        d = max(abs(p - q) for p, q in zip(xs, ys))
        if d > worst:
            worst, worst_name = d, name
    print(json.dumps({"identical": differing == 0, "tensors": len(a), "differing_tensors": differing,
                      "max_abs_difference": worst, "worst_tensor": worst_name}))
    return 0 if differing == 0 else 1


def parse_value(text):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    if text in ("true", "false"):
        return text == "true"
    return text


def cmd_numbers(args):
    path = args[0]
    numbers = {}
    if os.path.exists(path):
        with open(path) as f:
            numbers = json.load(f)
    for pair in args[1:]:
        key, _, value = pair.partition("=")
        try:
            numbers[key] = json.loads(value) if value[:1] in "{[" else parse_value(value)
        except json.JSONDecodeError:
            numbers[key] = value
    with open(path + ".tmp", "w") as f:
        json.dump(numbers, f, indent=1, sort_keys=True)
    os.replace(path + ".tmp", path)
    return 0


# The numbers the Markdown table shows (every number is in summary.json).
HEADLINE_KEYS = {"pass", "name", "sm_count", "bf16_gemm_tflops", "d2d_copy_gb_s", "h2d_copy_gb_s", "synthesis",
                 "logits_max_rel_error", "loss_rel_error", "grad_rel_l2_error", "max_rel_loss_error", "identical",
                 "max_abs_difference", "killed_after_checkpoint", "tokens_per_s", "mfu", "peak_memory_bytes",
                 "decode_tokens_per_s", "files_with_missing_libraries", "bundled_libraries"}


def format_numbers(numbers):
    """The headline numbers of a phase, short, for the Markdown table."""
    flat = {}
    for key, value in numbers.items():
        if isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    parts = []
    for key, value in flat.items():
        if key.rsplit(".", 1)[-1] not in HEADLINE_KEYS and not key.endswith("_summary"):
            continue
        if isinstance(value, float):
            parts.append(f"{key} {value:.4g}")
        elif isinstance(value, (bool, int, str)):
            parts.append(f"{key} {value}")
    return "; ".join(parts)


def cmd_summary(args):
    out = args[0]
    header_path = os.path.join(out, "header.json")
    summary = json.load(open(header_path)) if os.path.exists(header_path) else {}
    phases = []
    with open(os.path.join(out, "phases.tsv")) as f:
        for line in f:
            name, kind, status, seconds, budget, message = (line.rstrip("\n").split("\t") + [""] * 6)[:6]
            path = os.path.join(out, "numbers", name + ".json")
            numbers = json.load(open(path)) if os.path.exists(path) else {}
            phases.append({"name": name, "kind": kind, "status": status, "seconds": float(seconds or 0),
                           "budget_s": float(budget or 0), "message": message, "numbers": numbers,
                           "log": f"logs/{name}.log"})
    summary["phases"] = phases
    counts = {}
    for p in phases:
        counts[p["status"]] = counts.get(p["status"], 0) + 1
    summary["counts"] = counts
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    lines = ["# agentlora GPU check", ""]
    for key in ("date", "commit", "host", "gpu", "total_seconds", "budget_s"):
        if key in summary:
            lines.append(f"- {key}: {summary[key]}")
    lines += ["- phases: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())), "",
              "| phase | kind | result | seconds | budget | numbers / message |", "|---|---|---|---|---|---|"]
    for p in phases:
        text = format_numbers(p["numbers"])
        if p["message"]:
            text = p["message"] + (" — " + text if text else "")
        lines.append(f"| {p['name']} | {p['kind']} | {p['status']} | {p['seconds']:.0f} | {p['budget_s']:.0f} "
                     f"| {text.replace('|', '/')} |")
    tables = [n for n in ("e2e_table.md", "generation_table.md") if os.path.exists(os.path.join(out, n))]
    for name in tables:
        lines += ["", f"## {name[:-3]}", "", open(os.path.join(out, name)).read().rstrip()]
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return 0


def cmd_generation_table(args):
    print("| engine | batch | prompt | new tokens | prefill s | decode tokens/s | ms/step |")
    print("|---|---|---|---|---|---|---|")
    with open(args[0]) as f:
        for line in f:
            if line.startswith("{"):
                r = json.loads(line)
                print(f"| {r['engine']} | {r['batch']} | {r['prompt']} | {r['new_tokens']} | {r['prefill_s']} "
                      f"| {r['decode_tokens_per_s']} | {r['ms_per_step']} |")
    return 0


COMMANDS = {"generation_table": cmd_generation_table, "losses": cmd_losses, "adapters": cmd_adapters, "numbers": cmd_numbers, "summary": cmd_summary}

if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] not in COMMANDS:
        sys.stderr.write(__doc__)
        sys.exit(2)
    sys.exit(COMMANDS[sys.argv[1]](sys.argv[2:]))
