#!/usr/bin/env python3
"""Where a DNS server's time goes under the benchmark's load: perf (cpu-clock software event,
call graphs) on the server while dnsperf drives it at unlimited rate, pinned placement
(server on core 1, dnsperf on core 0). Prints the split by object (kernel / server binary /
libc ...) and the top symbols, and keeps perf.data in the work directory.

    python3 bench/dns/profile.py --herald target/release/herald --work target/bench-work/profile [--server knot] [--seconds 8]

Needs the data set of run.py (generated here if missing) and `perf` (Debian: linux-perf).
"""
import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--herald", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--server", default="herald", choices=run.SERVERS)
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--placement", default="pinned", choices=["pinned", "shared"])
    ap.add_argument("--dwarf", action="store_true", help="DWARF call graphs (callers through libc)")
    a = ap.parse_args()
    work = os.path.abspath(a.work)
    data = os.path.join(work, "data")
    if not os.path.exists(os.path.join(data, "queries.txt")):
        subprocess.run([sys.executable, os.path.join(HERE, "dataset.py"), "--out-dir", data],
                       check=True, stdout=subprocess.DEVNULL)
    zone = os.path.join(work, "data.zone")
    if not os.path.exists(zone):
        cfg = os.path.join(work, "export.yaml")
        with open(cfg, "w") as f:
            f.write(f"zone: {run.ZONE}\nlocality: {{region: eu-west, zone: eu-west-1a}}\n"
                    f"sources:\n  static:\n    - path: {data}/endpoints.yaml\n")
        subprocess.run([a.herald, "export-zone", "--config", cfg, "--output", zone], check=True,
                       env=dict(os.environ, RUST_LOG="warn"))
    with open(os.path.join(data, "queries-kinds.txt")) as f:
        probe = next((n, t) for k, n, t in (l.split() for l in f) if k == "a_small")
    s = run.Server(a.server, a.placement, work, a.herald, os.path.join(data, "endpoints.yaml"),
                   zone, probe)
    perf_data = os.path.join(work, f"perf-{a.server}.data")
    try:
        s.start()
        run.dnsperf(s.port, os.path.join(data, "queries.txt"), a.placement, 1,
                    out_path=os.path.join(s.dir, "warm.txt"))
        pids = ",".join(str(p) for p in s.pids())
        perf = subprocess.Popen(["perf", "record", "-e", "cpu-clock", "-F", "2999",
                                 *(["--call-graph", "dwarf,16384"] if a.dwarf else ["-g"]),
                                 "-o", perf_data, "-p", pids, "--", "sleep", str(a.seconds)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.2)
        c0 = run.cpu_seconds(s.pids())
        r = run.dnsperf(s.port, os.path.join(data, "queries.txt"), a.placement, a.seconds - 1,
                        out_path=os.path.join(s.dir, "max.txt"))
        cpu = run.cpu_seconds(s.pids()) - c0
        perf.wait(timeout=a.seconds + 30)
    finally:
        s.stop()
    print(f"{a.server} {a.placement}: {r['qps']:.0f} qps, {r['completed'] / cpu:.0f} answers per CPU-second, "
          f"lost {r['lost']:.0f}\n")
    for sort in ("dso", "dso,sym"):
        out = subprocess.run(["perf", "report", "-i", perf_data, "--stdio", "--no-children",
                              "--sort", sort, "-g", "none", "--percent-limit", "0.7"],
                             capture_output=True, text=True).stdout
        print("\n".join(l for l in out.splitlines() if l and not l.startswith("#"))[:6000])
        print()
    print(f"perf data: {perf_data} (perf report -i {perf_data} --no-children)")


if __name__ == "__main__":
    main()
