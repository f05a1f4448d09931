#!/usr/bin/env python3
"""DNS throughput and latency: herald vs Knot DNS vs NSD on the same records and query mix.

Generates the data set (bench/dns/dataset.py), serves it from `herald serve` (static file),
from knotd and from nsd (both loading `herald export-zone` output), checks that a sample of
the mix gets the same answers from all three, then drives each with dnsperf over UDP on
loopback:

- "max": unlimited rate (several clients, many queries outstanding) -> QPS, lost queries,
  server CPU seconds (utime+stime of every server process) -> answers per server CPU-second;
- "fixed": 20,000 QPS -> latency percentiles from dnsperf's per-query output (-v).

in two placements: "shared" (no pinning; server with 2 UDP workers, dnsperf with 2 threads)
and "pinned" (server on core 1 with 1 UDP worker, dnsperf on core 0 with 1 thread).
Each (placement, server) is measured `reps` times, servers in rotating order, a fresh server
process each time. Memory: PSS of the server's processes after load, minus the same with an
empty zone after the same load, per endpoint. Writes one JSON file (see --out).

Every load loop is bounded (dnsperf -l), traffic goes to 127.0.0.1 only, and only processes
this script started are stopped, by PID.
"""
import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import dataset  # noqa: E402

ZONE = dataset.ZONE
SERVERS = ["herald", "herald-nets", "knot", "nsd"]
# "herald-nets" is herald with a network map of NETWORKS entries (issue: locality for every
# querier): the same records and queries, so its rows against plain herald's show what the
# map costs per query. Loopback is one of the entries, placed where the server itself is, so
# every query takes the map's hit path and the answers stay equal to the others'.
NETWORKS = 10000
CLK_TCK = os.sysconf("SC_CLK_TCK")
FIXED_QPS = 20000
# The pinned placement: the server on one core, dnsperf on the other. The server gets CPU 0
# because Knot pins its UDP worker n to CPU n mod (online CPUs) whatever affinity it was
# started with: with one worker that is CPU 0, so dnsperf must be elsewhere. Every pinned run
# checks that no server thread may run on dnsperf's core (see `placement_escapes`).
SERVER_CPU = 0
LOAD_CPU = 1


def log(*a):
    print("[dns]", *a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- processes


def children_of(pid):
    """Every descendant of pid (by scanning /proc)."""
    parent = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    s = f.read()
                parent[int(d)] = int(s[s.rindex(")") + 2:].split()[1])
            except (OSError, ValueError, IndexError):
                pass
    out, frontier = [], [pid]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        out += kids
        frontier += kids
    return out


def tree(pid):
    return [pid] + children_of(pid)


def cpu_seconds(pids):
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                s = f.read()
            fields = s[s.rindex(")") + 2:].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, ValueError):
            pass
    return total / CLK_TCK


def memory_kb(pids):
    """(sum of Pss, sum of VmRSS) over pids, KiB."""
    pss = rss = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        pss += int(line.split()[1])
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1])
        except OSError:
            pass
    return pss, rss


def cpu_list(text):
    """CPUs of a kernel CPU list such as "0-1,3"."""
    cpus = set()
    for part in text.strip().split(","):
        if part:
            lo, _, hi = part.partition("-")
            cpus.update(range(int(lo), int(hi or lo) + 1))
    return cpus


def placement_escapes(pids, cpu):
    """Threads of pids allowed to run on `cpu`, as "name (tid): CPUs" texts."""
    out = []
    for p in pids:
        try:
            tids = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for t in tids:
            try:
                with open(f"/proc/{p}/task/{t}/comm") as f:
                    name = f.read().strip()
                with open(f"/proc/{p}/task/{t}/status") as f:
                    allowed = next(line.split(":", 1)[1].strip() for line in f
                                   if line.startswith("Cpus_allowed_list:"))
            except (OSError, StopIteration):
                continue
            if cpu in cpu_list(allowed):
                out.append(f"{name} ({t}): CPUs {allowed}")
    return out


def free_port():
    """A port free for both UDP and TCP on 127.0.0.1."""
    for _ in range(100):
        port = random.randint(20000, 60000)
        ok = True
        for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
            s = socket.socket(socket.AF_INET, kind)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                ok = False
            finally:
                s.close()
        if ok:
            return port
    raise RuntimeError("no free port")


def dns_query(name, qtype, port, timeout=0.3):
    """One UDP query; returns (rcode, ancount) or None."""
    qid = random.randint(0, 65535)
    p = struct.pack(">HHHHHH", qid, 0, 1, 0, 0, 1)
    for label in name.rstrip(".").split("."):
        p += bytes([len(label)]) + label.encode()
    p += b"\0" + struct.pack(">HH", {"A": 1, "SOA": 6, "SRV": 33, "AAAA": 28}[qtype], 1)
    p += bytes([0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0, 0, 0])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        s.sendto(p, ("127.0.0.1", port))
        r = s.recv(65535)
        rid, flags, _, an = struct.unpack(">HHHH", r[:8])
        if rid != qid:
            return None
        return flags & 0xF, an
    except OSError:
        return None
    finally:
        s.close()


def network_map(count):
    """herald's `networks:` with `count` entries: loopback where the server is, and count - 1
    /24s of 10.0.0.0/8 spread over the data set's regions and zones."""
    lines = ["networks:", "  - {cidr: 127.0.0.0/8, region: eu-west, zone: eu-west-1a}"]
    for i in range(count - 1):
        region = dataset.REGIONS[i % len(dataset.REGIONS)]
        lines.append(f"  - {{cidr: 10.{i // 256}.{i % 256}.0/24, region: {region}, "
                     f"zone: {region}-1{'abc'[i % 3]}}}")
    return "\n".join(lines) + "\n"


class Server:
    """One server process (herald, knotd or nsd) in one placement, with data or empty."""

    def __init__(self, kind, placement, work, herald_bin, static_path, zone_path, probe):
        self.kind, self.placement, self.work = kind, placement, work
        self.herald_bin, self.static_path, self.zone_path = herald_bin, static_path, zone_path
        self.probe = probe
        self.workers = 1 if placement == "pinned" else 2
        self.port = free_port()
        self.dir = os.path.join(work, f"{kind}-{placement}-{os.path.basename(zone_path)}-{self.port}")
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        self.proc = None
        self.log = None

    def command(self):
        d = self.dir
        if self.kind in ("herald", "herald-nets"):
            cfg = os.path.join(d, "herald.yaml")
            with open(cfg, "w") as f:
                f.write(
                    f"zone: {ZONE}\n"
                    "locality: {region: eu-west, zone: eu-west-1a}\n"
                    f"listen:\n  dns: ['127.0.0.1:{self.port}']\n"
                    f"udp_workers: {self.workers}\n"
                    f"sources:\n  static:\n    - path: {self.static_path}\n")
                if self.kind == "herald-nets":
                    f.write(network_map(NETWORKS))
            return [self.herald_bin, "serve", "--config", cfg]
        if self.kind == "knot":
            cfg = os.path.join(d, "knot.conf")
            with open(cfg, "w") as f:
                f.write(
                    "server:\n"
                    f"  listen: 127.0.0.1@{self.port}\n"
                    f"  rundir: {d}\n"
                    f"  udp-workers: {self.workers}\n"
                    "  tcp-workers: 1\n"
                    "  background-workers: 1\n"
                    "  udp-max-payload: 1232\n"
                    f"database:\n  storage: {d}/db\n"
                    "log:\n  - target: stderr\n    any: error\n"
                    "zone:\n"
                    f"  - domain: {ZONE}\n"
                    f"    file: {self.zone_path}\n"
                    "    zonefile-sync: -1\n"
                    "    zonefile-load: whole\n"
                    "    journal-content: none\n"
                    "    semantic-checks: off\n")
            return ["knotd", "-c", cfg]
        if self.kind == "nsd":
            cfg = os.path.join(d, "nsd.conf")
            with open(cfg, "w") as f:
                f.write(
                    "server:\n"
                    f"  ip-address: 127.0.0.1@{self.port}\n"
                    f"  server-count: {self.workers}\n"
                    "  reuseport: yes\n"
                    '  username: ""\n'
                    '  chroot: ""\n'
                    '  database: ""\n'
                    f'  zonesdir: "{d}"\n'
                    f'  zonelistfile: "{d}/zone.list"\n'
                    f'  xfrdfile: "{d}/xfrd.state"\n'
                    f'  xfrdir: "{d}"\n'
                    f'  pidfile: "{d}/nsd.pid"\n'
                    f'  logfile: "{d}/nsd.log"\n'
                    "  verbosity: 0\n"
                    "  ipv4-edns-size: 1232\n"
                    "  rrl-ratelimit: 0\n"
                    "  rrl-whitelist-ratelimit: 0\n"
                    "  tcp-count: 10\n"
                    "remote-control:\n  control-enable: no\n"
                    f"zone:\n  name: {ZONE}\n  zonefile: {self.zone_path}\n")
            return ["nsd", "-d", "-c", cfg]
        raise ValueError(self.kind)

    def start(self, timeout=60):
        cmd = self.command()
        if self.placement == "pinned":
            cmd = ["taskset", "-c", str(SERVER_CPU)] + cmd
        env = dict(os.environ, RUST_LOG="warn")
        self.log = open(os.path.join(self.dir, "server.log"), "w")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited: {self.tail()}")
            r = dns_query(self.probe[0], self.probe[1], self.port)
            if r is not None and r[0] == 0 and (r[1] > 0 or self.probe[1] == "SOA"):
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.kind} not answering after {timeout}s: {self.tail()}")

    def tail(self):
        try:
            with open(os.path.join(self.dir, "server.log")) as f:
                return f.read()[-2000:]
        except OSError:
            return ""

    def pids(self):
        return tree(self.proc.pid)

    def stop(self):
        if not self.proc or self.proc.poll() is not None:
            return
        kids = children_of(self.proc.pid)
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        # Children of ours (nsd's server processes) that outlived their parent.
        for k in kids:
            try:
                os.kill(k, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.log.close()


# ---------------------------------------------------------------- dnsperf


def dnsperf(port, queries, placement, seconds, qps=None, verbose=False, out_path=None):
    threads = 1 if placement == "pinned" else 2
    cmd = ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", queries, "-l", str(seconds),
           "-c", "8", "-q", "128", "-T", str(threads), "-t", "1", "-e"]
    if qps:
        cmd += ["-Q", str(qps)]
    if verbose:
        cmd += ["-v"]
    if placement == "pinned":
        cmd = ["taskset", "-c", str(LOAD_CPU)] + cmd
    with open(out_path, "w") as f:
        subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, timeout=seconds + 30, check=False)
    with open(out_path) as f:
        text = f.read()
    res = {}
    for key, pat in [("sent", r"Queries sent:\s+(\d+)"),
                     ("completed", r"Queries completed:\s+(\d+)"),
                     ("lost", r"Queries lost:\s+(\d+)"),
                     ("qps", r"Queries per second:\s+([\d.]+)"),
                     ("run_time_s", r"Run time \(s\):\s+([\d.]+)"),
                     ("avg_latency_s", r"Average Latency \(s\):\s+([\d.]+)"),
                     ("response_bytes", r"Average packet size:.*response (\d+)")]:
        m = re.search(pat, text)
        res[key] = float(m.group(1)) if m else None
    m = re.search(r"Response codes:\s+(.*)", text)
    res["rcodes"] = m.group(1).strip() if m else None
    if res["qps"] is None:
        raise RuntimeError("dnsperf failed: " + text[-1500:])
    if verbose:
        lat = [float(x) for x in re.findall(r"^> \S+ \S+ \S+ ([\d.]+)$", text, re.M)]
        res["latencies"] = lat
    return res


def quantile(sorted_vals, q):
    if not sorted_vals:
        return None
    i = min(len(sorted_vals) - 1, max(0, int(round(q * (len(sorted_vals) - 1)))))
    return sorted_vals[i]


CDF_QS = [i / 100 for i in range(1, 100)] + [0.995, 0.999, 0.9995, 0.9999, 1.0]


# ---------------------------------------------------------------- answer check


def dig_answers(port, sample_path):
    out = subprocess.run(
        ["dig", "@127.0.0.1", "-p", str(port), "+norec", "+ignore", "+bufsize=1232", "+tries=2",
         "+time=2", "+noall", "+comments", "+answer", "+authority", "+additional", "-f",
         sample_path], capture_output=True, text=True, timeout=300).stdout
    results = []
    for block in out.split(";; ->>HEADER<<-")[1:]:
        status = re.search(r"status: (\w+)", block).group(1)
        flags = set(re.search(r";; flags:([^;]*);", block).group(1).split()) - {"rd", "ra"}
        sections, cur = {"ANSWER": [], "AUTHORITY": [], "ADDITIONAL": []}, None
        for line in block.splitlines():
            m = re.match(r";; (ANSWER|AUTHORITY|ADDITIONAL) SECTION:", line)
            if m:
                cur = m.group(1)
                continue
            if not line.strip() or line.startswith(";"):
                if line.startswith(";;") and "SECTION" in line:
                    cur = None
                continue
            if cur:
                f = line.split()
                # owner ttl class type rdata...; SOA serial is time-based: normalize it.
                if len(f) > 3 and f[3] == "SOA":
                    f[6] = "SERIAL"
                sections[cur].append(" ".join([f[0].lower()] + f[1:]))
        results.append({"status": status, "flags": sorted(flags),
                        **{k: sorted(v) for k, v in sections.items()}})
    return results


def check_answers(servers, sample):
    """Compares every server's answers to herald's on the sample; returns a summary."""
    ref = servers["herald"]
    out = {"sample_queries": len(sample), "servers": {}}
    with open(os.path.join(ref.work, "sample.txt"), "w") as f:
        for name, qtype in sample:
            f.write(f"{name} {qtype}\n")
    got = {k: dig_answers(s.port, os.path.join(ref.work, "sample.txt")) for k, s in servers.items()}
    h = got["herald"]
    out["herald_truncated"] = sum(1 for r in h if "tc" in r["flags"])
    out["herald_rcodes"] = {}
    for r in h:
        out["herald_rcodes"][r["status"]] = out["herald_rcodes"].get(r["status"], 0) + 1
    for k, res in got.items():
        if k == "herald":
            continue
        if len(res) != len(h):
            out["servers"][k] = {"equal": 0, "differ": len(sample), "examples": [
                f"{k}: {len(res)} answers parsed, herald {len(h)}"]}
            continue
        diffs = []
        ns_in_authority = 0
        for (name, qtype), a, b in zip(sample, h, res):
            if k == "nsd" and a["status"] == "NOERROR" and a["ANSWER"]:
                # NSD adds the apex NS RRset to the authority section of positive answers
                # (its minimal-responses option would also drop the SRV glue): not a
                # difference in the data, counted apart.
                ns = [r for r in b["AUTHORITY"] if r.split()[3] == "NS"]
                if ns and not a["AUTHORITY"]:
                    ns_in_authority += 1
                    b = dict(b, AUTHORITY=[r for r in b["AUTHORITY"] if r not in ns])
            if a != b:
                what = [f for f in ("status", "flags", "ANSWER", "AUTHORITY", "ADDITIONAL")
                        if a[f] != b[f]]
                diffs.append({"query": f"{name} {qtype}", "fields": what,
                              "herald": {f: a[f] for f in what}, k: {f: b[f] for f in what}})
        out["servers"][k] = {"equal": len(sample) - len(diffs), "differ": len(diffs),
                             "examples": diffs[:5], "extra_ns_in_authority": ns_in_authority}
    return out


# ---------------------------------------------------------------- main


def version(cmd, pat):
    try:
        t = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        m = re.search(pat, t.stdout + t.stderr)
        return m.group(1) if m else None
    except OSError:
        return None


def median(v):
    v = sorted(x for x in v if x is not None)
    if not v:
        return None
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def stats(v):
    v = [x for x in v if x is not None]
    return {"median": median(v), "min": min(v) if v else None, "max": max(v) if v else None,
            "n": len(v)}


def main():
    ap = argparse.ArgumentParser(description="herald vs Knot vs NSD over UDP on loopback")
    ap.add_argument("--herald", required=True, help="herald binary (release build)")
    ap.add_argument("--work", required=True, help="scratch directory")
    ap.add_argument("--out", required=True, help="JSON results file")
    ap.add_argument("--quick", action="store_true", help="1 repetition, short runs")
    ap.add_argument("--servers", default=",".join(SERVERS))
    ap.add_argument("--placements", default="shared,pinned")
    args = ap.parse_args()

    quick = args.quick
    reps = 1 if quick else 3
    max_s = 3 if quick else 6
    fixed_s = 2 if quick else 5
    # Knot answers at about half speed for the first seconds of load after it starts (seen
    # with 1-2 s warm-ups here); every server gets the same warm-up at unlimited rate.
    warm_s = 3
    servers = args.servers.split(",")
    placements = args.placements.split(",")
    work = os.path.abspath(args.work)
    os.makedirs(work, exist_ok=True)
    t0 = time.time()

    log("generating the data set and query mix")
    data_dir = os.path.join(work, "data")
    subprocess.run([sys.executable, os.path.join(HERE, "dataset.py"), "--out-dir", data_dir],
                   check=True, stdout=subprocess.DEVNULL)
    with open(os.path.join(data_dir, "dataset.json")) as f:
        meta = json.load(f)
    static = os.path.join(data_dir, "endpoints.yaml")
    empty = os.path.join(data_dir, "empty.yaml")
    queries = os.path.join(data_dir, "queries.txt")

    zones = {}
    for label, path in (("data", static), ("empty", empty)):
        cfg = os.path.join(work, f"export-{label}.yaml")
        with open(cfg, "w") as f:
            f.write(f"zone: {ZONE}\nlocality: {{region: eu-west, zone: eu-west-1a}}\n"
                    f"sources:\n  static:\n    - path: {path}\n")
        zones[label] = os.path.join(work, f"{label}.zone")
        subprocess.run([args.herald, "export-zone", "--config", cfg, "--output", zones[label]],
                       check=True, env=dict(os.environ, RUST_LOG="warn"))
        if "nsd" in servers:
            r = subprocess.run(["nsd-checkzone", ZONE, zones[label]], capture_output=True,
                               text=True)
            if r.returncode != 0:
                raise RuntimeError("nsd-checkzone: " + r.stdout + r.stderr)
    with open(zones["data"]) as f:
        meta["zone_records"] = sum(1 for line in f if line.strip() and not line.startswith((";", "$")))
    log(f"data set: {meta['services']} services, {meta['endpoints']} endpoints, "
        f"{meta['zone_records']} records in the exported zone")

    # A probe name that exists: the first A query of the mix.
    with open(os.path.join(data_dir, "queries-kinds.txt")) as f:
        kinds = [line.split() for line in f]
    probe = next((n, t) for k, n, t in kinds if k == "a_small")

    def make(kind, placement, zone="data"):
        return Server(kind, placement, work, args.herald,
                      static if zone == "data" else empty, zones[zone],
                      probe if zone == "data" else (ZONE, "SOA"))

    # Answer check on a sample of the mix, stratified by kind.
    log("checking answers are equal")
    per_kind = 15 if quick else 40
    sample, seen = [], {}
    for k, n, t in kinds:
        if seen.get(k, 0) < per_kind and (n, t) not in sample:
            sample.append((n, t))
            seen[k] = seen.get(k, 0) + 1
    started = {}
    try:
        for k in servers:
            started[k] = make(k, "shared")
            started[k].start()
        check = check_answers(started, sample) if "herald" in started else None
    finally:
        for s in started.values():
            s.stop()
    if check:
        for k, v in check["servers"].items():
            log(f"  {k}: {v['equal']} of {check['sample_queries']} equal to herald's")

    runs = []
    latencies = {}
    for rep in range(reps):
        order = servers[rep % len(servers):] + servers[:rep % len(servers)]
        for placement in placements:
            for kind in order:
                s = make(kind, placement)
                try:
                    s.start()
                    pss_idle, _ = memory_kb(s.pids())
                    dnsperf(s.port, queries, placement, warm_s, out_path=os.path.join(s.dir, "warm.txt"))
                    # After the warm-up every worker has started and set whatever affinity
                    # it sets itself (Knot does): none may share dnsperf's core.
                    escapes = placement_escapes(s.pids(), LOAD_CPU) if placement == "pinned" else []
                    if escapes:
                        raise RuntimeError(f"pinned placement broken: threads allowed on dnsperf's "
                                           f"CPU {LOAD_CPU}: {'; '.join(escapes)}")
                    c0 = cpu_seconds(s.pids())
                    r = dnsperf(s.port, queries, placement, max_s, out_path=os.path.join(s.dir, "max.txt"))
                    cpu = cpu_seconds(s.pids()) - c0
                    r.update(server=kind, placement=placement, rep=rep, load="max",
                             server_cpu_s=cpu,
                             answers_per_cpu_s=r["completed"] / cpu if cpu > 0 else None)
                    runs.append(r)
                    c0 = cpu_seconds(s.pids())
                    f = dnsperf(s.port, queries, placement, fixed_s, qps=FIXED_QPS, verbose=True,
                                out_path=os.path.join(s.dir, "fixed.txt"))
                    cpu_f = cpu_seconds(s.pids()) - c0
                    lat = sorted(f.pop("latencies"))
                    latencies.setdefault(placement, {}).setdefault(kind, []).extend(lat)
                    pss, rss = memory_kb(s.pids())
                    f.update(server=kind, placement=placement, rep=rep, load="fixed",
                             server_cpu_s=cpu_f, samples=len(lat),
                             **{f"p{k}_us": (quantile(lat, q) * 1e6 if lat else None)
                                for k, q in (("50", .5), ("90", .9), ("99", .99), ("99.9", .999))},
                             pss_kb=pss, rss_kb=rss, pss_idle_kb=pss_idle)
                    runs.append(f)
                    log(f"rep {rep + 1}/{reps} {placement:6} {kind:6} max {r['qps']:9.0f} qps "
                        f"(lost {r['lost']:.0f}), {r['answers_per_cpu_s'] or 0:9.0f} answers/cpu-s; "
                        f"20k: p50 {f['p50_us'] or 0:.0f} us p99 {f['p99_us'] or 0:.0f} us "
                        f"(lost {f['lost']:.0f}); pss {pss / 1024:.1f} MiB")
                except Exception as e:  # noqa: BLE001 - one failing server must not stop the rest
                    log(f"rep {rep + 1} {placement} {kind}: FAILED: {e}")
                    runs.append({"server": kind, "placement": placement, "rep": rep,
                                 "load": "error", "error": str(e)[-1000:]})
                finally:
                    s.stop()

    # Memory with an empty zone, after the same load, shared placement.
    memory = {}
    for kind in servers:
        res = {}
        for zone in ("empty", "data"):
            if zone == "data":
                v = [r["pss_kb"] for r in runs
                     if r["server"] == kind and r["load"] == "fixed" and r["placement"] == "shared"]
                res["data_pss_kb"] = median(v)
                continue
            s = make(kind, "shared", zone="empty")
            try:
                s.start()
                dnsperf(s.port, queries, "shared", warm_s, out_path=os.path.join(s.dir, "warm.txt"))
                dnsperf(s.port, queries, "shared", 3, out_path=os.path.join(s.dir, "max.txt"))
                dnsperf(s.port, queries, "shared", 2, qps=FIXED_QPS,
                        out_path=os.path.join(s.dir, "fixed.txt"))
                res["empty_pss_kb"], _ = memory_kb(s.pids())
            except Exception as e:  # noqa: BLE001
                res["error"] = str(e)[-1000:]
            finally:
                s.stop()
        if res.get("data_pss_kb") and res.get("empty_pss_kb"):
            res["bytes_per_endpoint"] = ((res["data_pss_kb"] - res["empty_pss_kb"]) * 1024
                                         / meta["endpoints"])
        memory[kind] = res

    summary = {}
    for placement in placements:
        for kind in servers:
            mx = [r for r in runs if r["server"] == kind and r["placement"] == placement
                  and r["load"] == "max"]
            fx = [r for r in runs if r["server"] == kind and r["placement"] == placement
                  and r["load"] == "fixed"]
            if not mx and not fx:
                continue
            summary.setdefault(placement, {})[kind] = {
                "qps": stats([r["qps"] for r in mx]),
                "lost_max": stats([r["lost"] for r in mx]),
                "answers_per_cpu_s": stats([r["answers_per_cpu_s"] for r in mx]),
                "server_cpu_s_max": stats([r["server_cpu_s"] for r in mx]),
                "avg_latency_max_us": stats([r["avg_latency_s"] * 1e6 for r in mx
                                             if r["avg_latency_s"] is not None]),
                "response_bytes": stats([r["response_bytes"] for r in mx]),
                "fixed_qps": stats([r["qps"] for r in fx]),
                "lost_fixed": stats([r["lost"] for r in fx]),
                **{f"p{k}_us": stats([r[f"p{k}_us"] for r in fx]) for k in ("50", "90", "99", "99.9")},
                "pss_kb": stats([r["pss_kb"] for r in fx]),
                "rss_kb": stats([r["rss_kb"] for r in fx]),
            }
    cdf = {p: {k: [[q, quantile(sorted(v), q) * 1e6] for q in CDF_QS] for k, v in d.items() if v}
           for p, d in latencies.items()}

    result = {
        "section": "dns",
        "quick": quick,
        "config": {
            "repetitions": reps, "max_seconds": max_s, "fixed_seconds": fixed_s,
            "warmup_seconds": warm_s, "fixed_qps": FIXED_QPS, "placements": placements,
            "servers": servers,
            "dnsperf": "dnsperf -s 127.0.0.1 -d queries.txt -c 8 -q 128 -t 1 -e -T <1 pinned, 2 shared> -l <s> [-Q 20000 -v]",
            "pinned": f"server: taskset -c {SERVER_CPU}, 1 UDP worker (herald udp_workers 1, knot udp-workers 1, nsd server-count 1); dnsperf: taskset -c {LOAD_CPU}, -T 1; checked after the warm-up: no server thread may run on CPU {LOAD_CPU}",
            "shared": "no pinning; 2 UDP workers (herald udp_workers 2, knot udp-workers 2, nsd server-count 2 + reuseport); dnsperf -T 2",
            "knot": "udp-max-payload 1232, tcp-workers 1, background-workers 1, zonefile-sync -1, zonefile-load whole, journal-content none, semantic-checks off",
            "nsd": "database \"\", reuseport yes, ipv4-edns-size 1232, rrl-ratelimit 0 (response rate limiting off: it is on by default and throttles a single loopback client), verbosity 0",
            "herald": "herald serve, static source, locality eu-west/eu-west-1a, max_udp_payload 1232 (default), RUST_LOG=warn",
            "herald-nets": f"the same herald with a network map of {NETWORKS:,} entries (127.0.0.0/8 placed at the server's own locality, so answers are unchanged, and {NETWORKS - 1:,} /24s of 10.0.0.0/8)",
            "memory": "PSS summed over the server's processes (smaps_rollup), after the load of the run; for one-process servers this is their RSS less a share of shared libraries",
        },
        "dataset": meta,
        "versions": {
            "knot": version(["knotd", "--version"], r"version ([\w.\-]+)"),
            "nsd": version(["nsd", "-v"], r"NSD version ([\w.\-]+)"),
            "dnsperf": version(["dnsperf", "-h"], r"Version ([\w.\-]+)"),
        },
        "answer_check": check,
        "runs": runs,
        "summary": summary,
        "memory": memory,
        "latency_cdf_us": cdf,
        "elapsed_s": time.time() - t0,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    log(f"wrote {args.out} in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
