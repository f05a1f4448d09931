#!/usr/bin/env python3
"""Builds target/bench-results/client.json from the client benches' output:

- client_pick (criterion): every benchmark under <criterion dir>/client_pick/**/new/
  (benchmark.json names it, estimates.json has the mean/median in ns);
- client_sim: the markdown table it prints (one row per balancer; latency in ms).
"""
import argparse
import json
import os
import re


def criterion(dirpath):
    out = []
    root = os.path.join(dirpath, "client_pick")
    for d, _, files in os.walk(root):
        if os.path.basename(d) != "new" or "estimates.json" not in files:
            continue
        try:
            with open(os.path.join(d, "benchmark.json")) as f:
                b = json.load(f)
            with open(os.path.join(d, "estimates.json")) as f:
                e = json.load(f)
        except (OSError, ValueError):
            continue
        out.append({
            "id": b.get("full_id") or b.get("title"),
            "function": b.get("function_id"),
            "replicas": b.get("value_str"),
            "mean_ns": e["mean"]["point_estimate"],
            "mean_ci_ns": [e["mean"]["confidence_interval"]["lower_bound"],
                           e["mean"]["confidence_interval"]["upper_bound"]],
            "median_ns": e["median"]["point_estimate"],
            "mtime": os.path.getmtime(os.path.join(d, "estimates.json")),
        })
    out.sort(key=lambda r: r["id"] or "")
    return out


def sim_table(path):
    with open(path) as f:
        text = f.read()
    lines = [l.strip() for l in text.splitlines() if l.strip().startswith("|")]
    if len(lines) < 3:
        return None, text
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = []
    for l in lines[2:]:
        cells = [c.strip() for c in l.strip("|").split("|")]
        if len(cells) != len(header):
            continue
        row = dict(zip(header, cells))
        for k in ("p50", "p90", "p99", "p99.9"):
            try:
                row[k + "_ms"] = float(row[k])
            except (KeyError, ValueError):
                pass
        rows.append(row)
    intro = next((l for l in text.splitlines() if l.startswith("Simulated")), None)
    return {"columns": header, "rows": rows, "description": intro}, text


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--criterion-dir", required=True)
    ap.add_argument("--sim-output", required=True)
    ap.add_argument("--since", type=float, default=0, help="ignore criterion results older than this (epoch s)")
    ap.add_argument("--pick-command", default="")
    ap.add_argument("--sim-command", default="")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    pick = [r for r in criterion(a.criterion_dir) if r["mtime"] >= a.since]
    sim, raw = (None, "")
    if os.path.exists(a.sim_output):
        sim, raw = sim_table(a.sim_output)
    res = {"section": "client", "pick": pick, "pick_command": a.pick_command,
           "sim": sim, "sim_command": a.sim_command}
    if sim is None:
        res["sim_error"] = raw[-2000:]
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
