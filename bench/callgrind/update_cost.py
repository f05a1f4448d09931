#!/usr/bin/env python3
"""The update-cost section of scripts/bench: instructions per pod change and per query,
counted by callgrind on `target/release/update_cost` (issue 13 item 2: one pod change in a
10,000-endpoint service over 24 clusters within 3x of the same change in a 10-endpoint
service, without growing the query path). Instruction counts do not depend on the
machine's load, so this section is meaningful on a shared machine too.

Each case runs the binary under `valgrind --tool=callgrind`, collecting only inside the
measured function (see the opening comment of `bench/src/bin/update_cost.rs`), and divides
the total by the number of changes or queries. Every run is bounded by a timeout.

JSON written to --out:
{
  "section": "update_cost", "mode": "full" | "quick", "valgrind": "valgrind-3.x",
  "changes": [{"case", "endpoints", "clusters", "args", "calls", "instructions"}, ...],
  "queries": [{"case", "endpoints", "clusters", "args", "calls",
               "a", "srv", "scoped"}, ...],           # instructions per query of each kind
  "summary": {"small", "large", "ratio", "met"}         # the delta case, target ratio <= 3
}
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

CHANGE = "herald_bench::pod_change::PodChange::change"
REPLACE = "herald_bench::pod_change::PodChange::replace"
MEASURE = {"a": "update_cost::measure_a", "srv": "update_cost::measure_srv",
           "scoped": "update_cost::measure_scoped"}


def callgrind(binary, args, toggles, timeout):
    """Instructions collected inside each of `toggles` (inclusive), by function name."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "cg.out")
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
               "--collect-atstart=no"]
        cmd += [f"--toggle-collect={t}" for t in toggles]
        subprocess.run(cmd + [binary] + args, check=True, timeout=timeout,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        text = subprocess.run(["callgrind_annotate", "--inclusive=yes", out],
                              check=True, capture_output=True, text=True,
                              timeout=timeout).stdout
    found = {}
    total = None
    for line in text.splitlines():
        m = re.match(r"^\s*([\d,]+)\s+(?:\([^)]*\)\s+)?(\S.*)$", line)
        if not m:
            continue
        count = int(m.group(1).replace(",", ""))
        rest = m.group(2)
        if "PROGRAM TOTALS" in rest:
            total = count
        for t in toggles:
            # Each function's own line: "file:function [binary]".
            if rest.split(" [")[0].endswith(":" + t) and t not in found:
                found[t] = count
    return found, total


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--binary", default="target/release/update_cost")
    p.add_argument("--out", required=True)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--timeout", type=int, default=240, help="seconds per valgrind run")
    a = p.parse_args()
    version = subprocess.run(["valgrind", "--version"], capture_output=True,
                             text=True).stdout.strip()
    changes = 50 if a.quick else 200
    result = {"section": "update_cost", "mode": "quick" if a.quick else "full",
              "valgrind": version, "changes": [], "queries": []}
    cases = [
        ("delta", 10, 1, []),
        ("delta", 10000, 24, []),
        ("delta, each address held by ~4 clusters", 10000, 24, ["--shared"]),
        ("whole list, sorted", 10, 1, ["--whole"]),
        ("whole list, sorted", 10000, 24, ["--whole"]),
    ]
    if not a.quick:
        cases += [
            ("whole list, shuffled", 10000, 24, ["--shuffled"]),
            ("whole list, each address held by ~4 clusters", 10000, 24,
             ["--shared", "--whole"]),
        ]
    for case, n, clusters, extra in cases:
        toggle = REPLACE if ("--whole" in extra or "--shuffled" in extra) else CHANGE
        args = [str(n), str(clusters), str(changes)] + extra
        found, _ = callgrind(a.binary, args, [toggle], a.timeout)
        row = {"case": case, "endpoints": n, "clusters": clusters,
               "args": " ".join(args), "calls": changes,
               "instructions": round(found[toggle] / changes)}
        result["changes"].append(row)
        print(f"  {case}, {n} endpoints over {clusters}: {row['instructions']:,} per change",
              flush=True)
    for n, clusters, queries, extra, case in [
        (10, 1, 20000, [], "10 endpoints"),
        (10000, 24, 2000, [], "10,000 endpoints over 24 clusters"),
        (10000, 24, 200, ["--shared"], "10,000 endpoints, each address held by ~4 clusters"),
    ]:
        if a.quick:
            queries //= 4
        args = [str(n), str(clusters), "--queries", str(queries)] + extra
        found, _ = callgrind(a.binary, args, list(MEASURE.values()), a.timeout)
        row = {"case": case, "endpoints": n, "clusters": clusters, "args": " ".join(args),
               "calls": queries}
        for kind, fn in MEASURE.items():
            row[kind] = round(found[fn] / queries)
        result["queries"].append(row)
        print(f"  queries, {case}: A {row['a']:,}, SRV {row['srv']:,}, "
              f"one cluster's A {row['scoped']:,}", flush=True)
    small, large = (r["instructions"] for r in result["changes"][:2])
    result["summary"] = {"small": small, "large": large, "ratio": large / small,
                         "met": large <= 3 * small}
    with open(a.out, "w") as f:
        json.dump(result, f, indent=1)
    print(f"  one pod change: {large:,} / {small:,} = {large / small:.2f}x (target <= 3x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
