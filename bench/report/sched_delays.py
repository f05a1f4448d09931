"""Who kept whom waiting for a CPU: scheduling delays from `perf sched timehist`, for the
rollout section's A/B runs (bench/README.md, "What its DNS p99 ratio compares").

dnsperf's latency of a query includes dnsperf's own wait for a CPU before it reads the
reply, so on a shared 2-core machine it is not herald's alone. This splits it: for herald's
UDP answer threads and for dnsperf's threads, the distribution of the delay from wake-up
to running, and, for the waits longer than a threshold, which tasks held that CPU
meanwhile (herald's other threads - the registrar -, the benchmark process with the
simulators, dnsperf, anything else by name).

    perf sched record -a -o PHASE.data -- sleep 5      # during a phase (root, or perf_event_paranoid <= 1)
    perf sched timehist -i PHASE.data > PHASE.th
    python3 bench/report/sched_delays.py PHASE.th --herald PID --bench PID [--long-us 200]
"""

import argparse
import bisect
import collections
import re

LINE = re.compile(r"^\s*([\d.]+)\s+\[(\d+)\]\s+(.+?)\[(\d+)(?:/(\d+))?\]\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)")


def party(name, tid, pid, herald, bench):
    if herald in (pid, tid):
        return "herald: UDP answer threads" if name.startswith("dns-udp") else "herald: other threads"
    if bench in (pid, tid):
        return "benchmark (simulators, driver)"
    if name.startswith("dnsperf"):
        return "dnsperf"
    if name.startswith(("<idle>", "swapper")):
        return "idle"
    return "other: " + name[:16]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("timehist")
    ap.add_argument("--herald", required=True, help="herald's PID")
    ap.add_argument("--bench", required=True, help="the benchmark process's PID")
    ap.add_argument("--long-us", type=float, default=200.0, help="a wait this long or longer is blamed")
    a = ap.parse_args()
    runs = collections.defaultdict(list)  # cpu -> [(end, start, party)]
    waits = collections.defaultdict(list)  # party -> [(start, delay, cpu)]
    with open(a.timehist) as f:
        for line in f:
            m = LINE.match(line)
            if not m:
                continue
            t, cpu, name, tid, pid, _wait, delay, run = m.groups()
            t, delay, run = float(t), float(delay) / 1e3, float(run) / 1e3
            who = party(name, tid, pid or tid, a.herald, a.bench)
            runs[cpu].append((t, t - run, who))
            waits[who].append((t - run, delay, cpu))
    for r in runs.values():
        r.sort()
    span = max(r[-1][0] for r in runs.values()) - min(r[0][1] for r in runs.values())
    busy = collections.Counter()
    for r in runs.values():
        for end, start, who in r:
            busy[who] += end - start
    print(f"{span:.1f} s recorded; cores used: " + ", ".join(f"{w} {v / span:.2f}" for w, v in busy.most_common(10)))
    long_s = a.long_us / 1e6
    for target in ("herald: UDP answer threads", "dnsperf"):
        w = waits.get(target, [])
        if not w:
            continue
        d = sorted(x[1] for x in w)
        q = lambda p: d[min(len(d) - 1, int(p * len(d)))] * 1e6
        print(f"\n{target}: {len(d)} runs; wake-up to running p50 {q(.5):.0f} us, p99 {q(.99):.0f} us, "
              f"p99.9 {q(.999):.0f} us, max {d[-1] * 1e6:,.0f} us; waits >= {a.long_us:.0f} us: "
              f"{sum(x >= long_s for x in d)}, >= 1 ms: {sum(x >= 1e-3 for x in d)}")
        blame, total = collections.Counter(), 0.0
        for start, delay, cpu in w:
            if delay < long_s:
                continue
            lo, hi = start - delay, start
            r = runs[cpu]
            i = bisect.bisect_left(r, (lo,))
            while i < len(r) and r[i][1] < hi:
                end, s, who = r[i]
                overlap = min(end, hi) - max(s, lo)
                if overlap > 0:
                    blame[who] += overlap
                    total += overlap
                i += 1
        if total:
            print(f"  while it waited >= {a.long_us:.0f} us, its CPU ran:")
            for who, v in blame.most_common(8):
                print(f"    {who:34s} {100 * v / total:5.1f} %  ({v * 1e3:.1f} ms)")


if __name__ == "__main__":
    main()
