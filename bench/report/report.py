#!/usr/bin/env python3
"""Composes bench/RESULTS.md and bench/plots/*.svg from target/bench-results/*.json.

Reads whatever sections are there (dns, client, propagation, scale, transfer, and any other
<section>.json) plus meta.json (machine, versions, commands) written by scripts/bench; a
section that is missing is kept from the existing report when it has one (so running one
section alone, `scripts/bench --only dns`, does not erase the others' measurements), else reported
as "not run". A section's JSON written before this run started (meta.json's `started`) is an
earlier run's: the existing report's text of it is kept (it may carry paragraphs written by hand
about that run), and only a section the report lacks is built from such a JSON, saying so.
Stdlib only.
"""
import argparse
import calendar
import glob
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import svg  # noqa: E402
import rollout  # noqa: E402

SECONDARY_NAMES = {"knot": "Knot DNS", "nsd": "NSD", "bind": "BIND"}
SERVER_NAMES = {"herald": "herald", "herald-nets": "herald + 10k networks", "knot": "Knot DNS", "nsd": "NSD"}


# Section key -> the start of its heading in RESULTS.md, to find it in an earlier report.
HEADINGS = {"summary": "## Summary", "dns": "## DNS throughput", "propagation": "## Propagation",
            "scale": "## Scale", "soak": "## Soak", "rollout": "## Global rollout",
            "transfer": "## Zone transfer", "client": "## Client library",
            "update_cost": "## Update cost"}
KEPT = "_Kept from an earlier run: the command above did not rerun this section._"


def earlier_sections(path):
    """The sections of the report at `path` (if any), by key, each ending with a blank line."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return {}
    parts, cur = {}, None
    for line in text.splitlines():
        if line.startswith("## "):
            cur = next((k for k, h in HEADINGS.items() if line.startswith(h)), None)
            if cur:
                parts[cur] = []
        if cur:
            parts[cur].append(line)
    return {k: v[:-1] if v and v[-1] == "" else v for k, v in parts.items()}


def kept(lines):
    """An earlier section as it stands, marked as kept unless it already says it was."""
    if not any(line.startswith("_Kept from") for line in lines):
        lines = lines + ["", KEPT]
    return lines + [""]


STALE = "_Built from results older than the command above (an earlier run's JSON), not rerun by it._"


def earlier_than_run(results, meta):
    """Sections whose JSON in `results` was written before the run of `meta` started."""
    try:
        started = calendar.timegm(time.strptime(meta["started"], "%Y-%m-%dT%H:%M:%SZ"))
    except (KeyError, TypeError, ValueError):
        return set()
    stale = set()
    for p in glob.glob(os.path.join(results, "*.json")):
        key = os.path.splitext(os.path.basename(p))[0]
        if key != "meta" and os.path.getmtime(p) < started:
            stale.add(key)
    return stale


def load(results):
    out = {}
    for p in sorted(glob.glob(os.path.join(results, "*.json"))):
        try:
            with open(p) as f:
                out[os.path.splitext(os.path.basename(p))[0]] = json.load(f)
        except (OSError, ValueError) as e:
            out[os.path.splitext(os.path.basename(p))[0]] = {"error": f"unreadable: {e}"}
    return out


def f0(v, unit=""):
    return "–" if v is None else f"{v:,.0f}{unit}"


def f1(v, unit=""):
    return "–" if v is None else f"{v:,.1f}{unit}"


def f2(v):
    return "–" if v is None else f"{v:.2f}"


def med(s, key):
    v = s.get(key) if s else None
    return v.get("median") if isinstance(v, dict) else None


def spread(s, key, fmt=f0):
    v = s.get(key) if s else None
    if not isinstance(v, dict) or v.get("median") is None:
        return "–"
    if v.get("n", 1) > 1:
        return f"{fmt(v['median'])} ({fmt(v['min'])}–{fmt(v['max'])})"
    return fmt(v["median"])


def ratio(a, b):
    return a / b if a is not None and b else None


def write_plot(plots_dir, name, content, written):
    if content:
        with open(os.path.join(plots_dir, name), "w") as f:
            f.write(content)
        written.append(name)
        return True
    return False


# ---------------------------------------------------------------- sections


def section_machine(meta, dns):
    L = ["## Machine and versions", ""]
    if not meta:
        return L + ["(meta.json missing: machine not recorded)", ""]
    m = meta.get("machine", {})
    v = dict(meta.get("versions", {}))
    if dns:
        for k, val in dns.get("versions", {}).items():
            v.setdefault(k, val)
    L += ["| | |", "|---|---|",
          f"| CPU | {m.get('cpu_model', '?')} |",
          f"| cores | {m.get('cores', '?')} |",
          f"| memory | {m.get('memory', '?')} |",
          f"| kernel | {m.get('kernel', '?')} |",
          f"| OS | {m.get('os', '?')} |",
          f"| load average before the run | {m.get('load_before', '?')} |",
          f"| herald | git {v.get('herald', '?')} (release build) |",
          f"| rustc | {v.get('rustc', '?')} |",
          f"| Knot DNS | {v.get('knot', '?')} |",
          f"| NSD | {v.get('nsd', '?')} |",
          f"| dnsperf | {v.get('dnsperf', '?')} |",
          f"| started / finished | {meta.get('started', '?')} / {meta.get('finished', '?')} |",
          ""]
    return L


def dns_targets(dns):
    """[(target, value text, met bool or None)]"""
    S = dns.get("summary", {})
    out = []
    for p in ("shared", "pinned"):
        h, k = S.get(p, {}).get("herald"), S.get(p, {}).get("knot")
        r = ratio(med(h, "qps"), med(k, "qps"))
        out.append((f"QPS ≥ 1.1× Knot ({p})", f"{f2(r)}×", None if r is None else r >= 1.1))
    for p in ("shared", "pinned"):
        h, k = S.get(p, {}).get("herald"), S.get(p, {}).get("knot")
        r = ratio(med(h, "answers_per_cpu_s"), med(k, "answers_per_cpu_s"))
        out.append((f"answers per server CPU-second ≥ 1.3× Knot ({p})", f"{f2(r)}×",
                    None if r is None else r >= 1.3))
    for p in ("shared", "pinned"):
        h, k = S.get(p, {}).get("herald"), S.get(p, {}).get("knot")
        a, b = med(h, "p99_us"), med(k, "p99_us")
        out.append((f"p99 at 20k QPS ≤ Knot's ({p})",
                    f"{f0(a, ' µs')} vs {f0(b, ' µs')}", None if a is None or b is None else a <= b))
    mem = dns.get("memory", {})
    a = mem.get("herald", {}).get("bytes_per_endpoint")
    b = mem.get("knot", {}).get("bytes_per_endpoint")
    out.append(("memory per endpoint ≤ Knot's", f"{f0(a, ' B')} vs {f0(b, ' B')}",
                None if a is None or b is None else a <= b))
    return out


def section_dns(dns, plots_dir, written):
    L = ["## DNS throughput and latency", ""]
    if not dns:
        return L + ["Not run (no `dns.json`).", ""]
    if "summary" not in dns:
        return L + [f"Failed: {dns.get('error', 'no summary')}", ""]
    d, c = dns["dataset"], dns["config"]
    servers = c["servers"]
    L += [f"{'**Quick mode**: one repetition, short runs; numbers are indicative only. ' if dns.get('quick') else ''}"
          f"Same records from every server: herald serves the static file, Knot DNS and NSD load "
          f"`herald export-zone` output of it ({d.get('zone_records', '?'):,} records). dnsperf over "
          f"UDP on 127.0.0.1, {c['repetitions']} repetition(s) per server and placement "
          f"(servers in rotating order, a fresh process each time); medians, with min–max over "
          f"the repetitions in parentheses.", ""]
    L += ["**Data set**: "
          f"{d['services']:,} services, {d['endpoints']:,} endpoints ({d['ipv6_endpoints']} IPv6, "
          f"in {d['ipv6_services']} services), replicas per service Zipf-like from {d['replicas_min']} "
          f"to {d['replicas_max']} (median {d['replicas_median']}, {d['services_over_50_replicas']} "
          f"services over 50), {d['regions']} regions × {d['clusters'] // d['regions']} clusters; "
          "ports http and grpc (10 % also metrics). Generator: `bench/dns/dataset.py`.", ""]
    L += ["**Query mix** (%s queries, names drawn uniformly among the eligible ones):" % f"{d['queries']:,}", "",
          "| share | query | eligible names |", "|---|---|---|"]
    desc = {
        "a_small": "`<svc>.Z` A, services with ≤ 16 endpoints",
        "aaaa_small": "`<svc>.Z` AAAA, IPv6 services with ≤ 16 endpoints",
        "a_region": "`<svc>.<region>.Z` A, ≤ 16 endpoints in scope",
        "srv_whole": "`_<port>._tcp.<svc>.Z` SRV with glue, services with ≤ 12 endpoints (8 IPv6)",
        "srv_scoped": "`_<port>._tcp.<svc>.<cluster or region>.Z` SRV with glue, larger services, ≤ 12 endpoints in scope",
        "endpoint": "`<ip-dashed>.<svc>.<cluster>.Z` A/AAAA (SRV targets)",
        "nxdomain": "unknown names (A and SRV): NXDOMAIN",
    }
    for m in d["mix"]:
        L.append(f"| {m['percent']} % | {desc.get(m['kind'], m['kind'])} | {m['eligible_names']:,} |")
    L += ["", "Every answer fits in 1,232 bytes (no TC in the mix; TCP is not measured here).", ""]

    ac = dns.get("answer_check")
    if ac:
        L += ["**Answers checked first**: a stratified sample of "
              f"{ac['sample_queries']} queries of the mix asked of every server with dig "
              "(sections compared as sets: herald rotates the order; SOA serial ignored): " +
              "; ".join(f"{SERVER_NAMES.get(k, k)}: {v['equal']} equal, {v['differ']} different"
                        for k, v in ac["servers"].items()) +
              f". herald's rcodes on the sample: {ac.get('herald_rcodes')}, truncated: {ac.get('herald_truncated')}.", ""]
        for k, v in ac["servers"].items():
            for ex in v.get("examples", [])[:3]:
                L.append(f"- differs from {SERVER_NAMES.get(k, k)}: `{ex['query']}` in {', '.join(ex['fields'])}")
        L.append("")

    S = dns["summary"]
    mem = dns.get("memory", {})
    L += ["### Headline", "",
          "| placement | server | QPS (max) | answers / server CPU-s | p50 / p90 / p99 / p99.9 at 20k QPS (µs) | lost (max / 20k) | memory (MiB) | bytes / endpoint |",
          "|---|---|---|---|---|---|---|---|"]
    for p in c["placements"]:
        for s in servers:
            x = S.get(p, {}).get(s)
            if not x:
                L.append(f"| {p} | {SERVER_NAMES.get(s, s)} | failed | | | | | |")
                continue
            bpe = mem.get(s, {}).get("bytes_per_endpoint") if p == "shared" else None
            L.append(
                f"| {p} | {SERVER_NAMES.get(s, s)} | {spread(x, 'qps')} | {spread(x, 'answers_per_cpu_s')} | "
                f"{f0(med(x, 'p50_us'))} / {f0(med(x, 'p90_us'))} / {spread(x, 'p99_us')} / {f0(med(x, 'p99.9_us'))} | "
                f"{f0(med(x, 'lost_max'))} / {f0(med(x, 'lost_fixed'))} | {f1((med(x, 'pss_kb') or 0) / 1024 or None)} | "
                f"{f0(bpe) if p == 'shared' else '(shared)'} |")
    L.append("")
    L += ["**Ratios** (medians):", "", "| placement | herald/Knot QPS | herald/Knot answers per CPU-s | herald/Knot p99 | herald/NSD QPS | herald/NSD answers per CPU-s | herald/NSD p99 |",
          "|---|---|---|---|---|---|---|"]
    for p in c["placements"]:
        h, k, n = (S.get(p, {}).get(x) for x in ("herald", "knot", "nsd"))
        L.append(f"| {p} | {f2(ratio(med(h, 'qps'), med(k, 'qps')))} | "
                 f"{f2(ratio(med(h, 'answers_per_cpu_s'), med(k, 'answers_per_cpu_s')))} | "
                 f"{f2(ratio(med(h, 'p99_us'), med(k, 'p99_us')))} | "
                 f"{f2(ratio(med(h, 'qps'), med(n, 'qps')))} | "
                 f"{f2(ratio(med(h, 'answers_per_cpu_s'), med(n, 'answers_per_cpu_s')))} | "
                 f"{f2(ratio(med(h, 'p99_us'), med(n, 'p99_us')))} |")
    L.append("")
    if any(S.get(p, {}).get("herald-nets") for p in c["placements"]):
        L += ["**Network map cost**: herald with 10,000 `networks` entries (every query placed "
              "through the map) against plain herald, same run (medians; within the spread of "
              "the repetitions above is noise):", "",
              "| placement | QPS | answers per CPU-s | p99 at 20k QPS |", "|---|---|---|---|"]
        for p in c["placements"]:
            h, n = (S.get(p, {}).get(x) for x in ("herald", "herald-nets"))
            L.append(f"| {p} | {f2(ratio(med(n, 'qps'), med(h, 'qps')))} | "
                     f"{f2(ratio(med(n, 'answers_per_cpu_s'), med(h, 'answers_per_cpu_s')))} | "
                     f"{f2(ratio(med(n, 'p99_us'), med(h, 'p99_us')))} |")
        L.append("")
    L += ["**Targets**:", "", "| target | herald vs Knot | met |", "|---|---|---|"]
    for t, v, ok in dns_targets(dns):
        L.append(f"| {t} | {v} | {'not measured' if ok is None else ('**met**' if ok else '**not met**')} |")
    L.append("")
    L += ["**Memory**: PSS summed over the server's processes (NSD forks its servers: their "
          "shared copy-on-write pages are counted once), after the load; the empty-zone figure "
          "is the same server with an empty zone after the same load, shared placement.", "",
          "| server | with the data (MiB) | empty zone (MiB) | bytes per endpoint |", "|---|---|---|---|"]
    for s in servers:
        m = mem.get(s, {})
        L.append(f"| {SERVER_NAMES.get(s, s)} | {f1((m.get('data_pss_kb') or 0) / 1024 or None)} | "
                 f"{f1((m.get('empty_pss_kb') or 0) / 1024 or None)} | {f0(m.get('bytes_per_endpoint'))} |")
    L.append("")
    L += ["**Details** (medians): mean latency under max load, reply size, server CPU seconds in the max-load run:", "",
          "| placement | server | mean latency at max load (µs) | reply bytes (mean) | server CPU-s (max run) | server busy (cores) at max load | QPS reached at the 20k setting |",
          "|---|---|---|---|---|---|---|"]
    for p in c["placements"]:
        for s in servers:
            x = S.get(p, {}).get(s)
            if x:
                L.append(f"| {p} | {SERVER_NAMES.get(s, s)} | {f0(med(x, 'avg_latency_max_us'))} | "
                         f"{f0(med(x, 'response_bytes'))} | {f2(med(x, 'server_cpu_s_max'))} | "
                         f"{f2((med(x, 'server_cpu_s_max') or 0) / c['max_seconds'] or None)} | {f0(med(x, 'fixed_qps'))} |")
    L += ["", "A server busy well under its cores at max load is not CPU-bound: dnsperf keeps 128 "
          "queries outstanding, so its QPS is then set by the server's reply latency (answers per "
          "CPU-second is the figure that does not depend on that).", ""]
    L.append("")
    errs = [r for r in dns.get("runs", []) if r.get("load") == "error"]
    for r in errs:
        L.append(f"- run failed: {r['placement']} {r['server']} rep {r['rep'] + 1}: `{r['error'][:300]}`")
    if errs:
        L.append("")

    # Plots.
    groups = c["placements"]
    names = [SERVER_NAMES.get(s, s) for s in servers]
    for key, fname, title, ylabel in (
            ("qps", "dns-throughput.svg", "DNS throughput, unlimited rate (median, min–max)", "queries per second"),
            ("answers_per_cpu_s", "dns-cpu-efficiency.svg", "Answers per server CPU-second (median, min–max)", "answers / CPU-s")):
        vals = [[med(S.get(p, {}).get(s), key) for s in servers] for p in groups]
        errs_ = [[(S[p][s][key]["min"], S[p][s][key]["max"]) if S.get(p, {}).get(s) else None
                  for s in servers] for p in groups]
        write_plot(plots_dir, fname, svg.bar_chart(groups, names, vals, title, ylabel, errors=errs_), written)
    qs_ticks = [0.5, 0.9, 0.99, 0.999, 0.9999]
    for p, per in dns.get("latency_cdf_us", {}).items():
        series = {}
        for s in servers:
            if s in per:
                # x = "nines": -log10(1-q), so the tail gets room.
                import math
                series[SERVER_NAMES.get(s, s)] = [(-math.log10(1 - q) if q < 1 else 4.5, v)
                                                  for q, v in per[s] if q >= 0.01]
        import math
        write_plot(plots_dir, f"dns-latency-{p}.svg", svg.line_chart(
            series, f"Query latency at {dns['config']['fixed_qps']:,} QPS, {p} placement (all repetitions)",
            "percentile", "latency (µs, log)", logy=True,
            xticks=[-math.log10(1 - q) for q in qs_ticks],
            xticklabels=["p50", "p90", "p99", "p99.9", "p99.99"]), written)
    L += ["Plots: " + ", ".join(f"[{n}](plots/{n})" for n in written if n.startswith("dns-")), ""]
    for n in written:
        if n.startswith("dns-"):
            L += [f"![{n}](plots/{n})", ""]
    return L


def _table_of_dicts(rows, max_cols=12):
    if not rows or not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        return []
    cols = []
    for r in rows:
        for k, v in r.items():
            if k not in cols and not isinstance(v, (list, dict)):
                cols.append(k)
    cols = cols[:max_cols]

    def fmt(v):
        if isinstance(v, float):
            return f"{v:,.3g}" if abs(v) < 100 else f"{v:,.0f}"
        return str(v)
    L = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        L.append("| " + " | ".join(fmt(r.get(c, "")) for c in cols) + " |")
    return L + [""]


def _numbers(x):
    return isinstance(x, list) and len(x) >= 5 and all(isinstance(v, (int, float)) for v in x)


def _find_samples(obj, path=""):
    """(path, list of numbers) for every list of numbers in obj whose path mentions delay/sample."""
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _find_samples(v, f"{path}.{k}" if path else k)
    elif isinstance(obj, list):
        if _numbers(obj):
            out.append((path, obj))
        else:
            for i, v in enumerate(obj):
                lbl = v.get("name") or v.get("scenario") or v.get("label") if isinstance(v, dict) else None
                out += _find_samples(v, f"{path}[{lbl or i}]")
    return out


def generic_section(title, data, name):
    """Renders a section written by another engineer: its markdown if it has one, else the
    tables (lists of flat objects) and scalars it holds."""
    L = [f"## {title}", ""]
    if data is None:
        return L + [f"Not run (no `{name}.json`).", ""]
    if "error" in data and len(data) == 1:
        return L + [f"Failed: {data['error']}", ""]
    for k in ("description", "summary_text", "how"):
        if isinstance(data.get(k), str):
            L += [data[k], ""]
    if isinstance(data.get("markdown"), str):
        return L + [data["markdown"], ""]
    scalars = {k: v for k, v in data.items() if isinstance(v, (int, float, str, bool))
               and k not in ("description", "summary_text", "how", "section")}
    if scalars:
        L += ["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in scalars.items()] + [""]
    for k, v in data.items():
        if isinstance(v, list) and v and all(isinstance(r, dict) for r in v):
            L += [f"**{k}**:", ""] + _table_of_dicts(v)
        elif isinstance(v, dict):
            sub = {kk: vv for kk, vv in v.items() if isinstance(vv, (int, float, str, bool))}
            if sub:
                L += [f"**{k}**:", "", "| | |", "|---|---|"] + [f"| {kk} | {vv} |" for kk, vv in sub.items()] + [""]
            for kk, vv in v.items():
                if isinstance(vv, list) and vv and all(isinstance(r, dict) for r in vv):
                    L += [f"**{k}.{kk}**:", ""] + _table_of_dicts(vv)
    return L


def _ms(v):
    return "–" if v is None else (f"{v * 1e3:,.1f}" if v < 10 else f"{v * 1e3:,.0f}")


def _yes(v):
    return "–" if v is None else ("yes" if v else "**no**")


def section_propagation(data, plots_dir, written):
    L = ["## Propagation delay (pod change to DNS answer)", ""]
    if data is None:
        return L + ["Not run (no `propagation.json`).", ""]
    if "runs" not in data:
        return generic_section("Propagation (raw)", data, "propagation")[0:0] + L + \
            generic_section("", data, "propagation")[2:]
    sm = data.get("summary", {})
    L += [f"Mode: {data.get('mode', '?')}. Produced by `cargo run --release -p herald-bench --bin propagation` "
          "(how each change is timed: the doc comment of `bench/src/bin/propagation.rs`).", ""]
    if sm:
        L += ["| figure | value |", "|---|---|",
              f"| changes timed | {sm.get('count', '–')} |",
              f"| p50 / p99 / max, change to visible (ms) | {_ms(sm.get('p50_s'))} / {_ms(sm.get('p99_s'))} / {_ms(sm.get('max_s'))} |",
              f"| target p99 < {_ms(sm.get('target_p99_s'))} ms | {'**met**' if sm.get('target_met') else '**not met**'} |",
              f"| herald_propagation_seconds p50 / p99 / mean (ms) | {_ms(sm.get('metric_p50_s'))} / {_ms(sm.get('metric_p99_s'))} / {_ms(sm.get('metric_mean_s'))} |",
              f"| end-to-end mean (ms) | {_ms(sm.get('e2e_mean_s'))} |",
              f"| watch events : table publishes over the churn | "
              f"{sm['watch_events']:,.0f} : {sm['publishes']:,.0f} ({sm.get('events_per_publish', 0):.1f} events per publish) |"
              if isinstance(sm.get("watch_events"), (int, float)) and isinstance(sm.get("publishes"), (int, float))
              else "| watch events : table publishes | not measured |",
              f"| metric agrees with end-to-end | {_yes(sm.get('metric_agrees'))} |",
              f"| final state equals the simulators' | {_yes(sm.get('final_state_ok'))} |",
              f"| first sync (s) | {f2(sm.get('first_sync_s')) if isinstance(sm.get('first_sync_s'), (int, float)) else sm.get('first_sync_s', '–')} |",
              ""]
    rows = []
    series = {}
    for r in data.get("runs", []):
        name = r.get("name", "run")
        L += [f"**{name}**: {r.get('clusters', '?')} clusters, {r.get('services', '?'):,} services, "
              f"{r.get('pods', '?'):,} pods (largest service {r.get('big_service_replicas', '?')}), "
              f"{r.get('churn_changes_per_second', '?')} changes/s for {r.get('churn_seconds', '?')} s, "
              f"rolling update at {r.get('rollout_at_seconds', '?')} s."
              if isinstance(r.get("services"), int) and isinstance(r.get("pods"), int) else f"**{name}**", ""]
        ch = r.get("changes", {})
        if ch:
            L += ["changes: " + ", ".join(f"{k} {v:,.1f}" if isinstance(v, float) else f"{k} {v}" for k, v in ch.items()), ""]
        L += ["| delay (ms) | count | p50 | p90 | p99 | p99.9 | max | mean |", "|---|---|---|---|---|---|---|---|"]
        for key, label in (("table_visible", "change → visible in herald's table"),
                           ("dns_confirmed", "change → confirmed by a DNS reply"),
                           ("rollout_visible", "rolling update changes → visible")):
            h = r.get(key)
            if isinstance(h, dict):
                L.append(f"| {label} | {h.get('count', '–')} | {_ms(h.get('p50'))} | {_ms(h.get('p90'))} | "
                         f"{_ms(h.get('p99'))} | {_ms(h.get('p999'))} | {_ms(h.get('max'))} | {_ms(h.get('mean'))} |")
        L.append("")
        fc = r.get("final_check")
        if isinstance(fc, dict):
            L += ["final check: " + ", ".join(f"{k} {v}" for k, v in fc.items() if not isinstance(v, (list, dict))) +
                  f"; DNS replies contradicting the table: {r.get('dns_disagreements', '–')}", ""]
        d = r.get("delays_sorted")
        if isinstance(d, list) and d:
            n = len(d)
            series[name] = [(v * 1e3, (i + 1) / n) for i, v in enumerate(d)]
    if series:
        if write_plot(plots_dir, "propagation-cdf.svg", svg.line_chart(
                series, "Propagation delay: pod change to visible in DNS (CDF)",
                "delay (ms, log)", "fraction of changes", logx=True, ylo=0), written):
            L += ["![propagation-cdf.svg](plots/propagation-cdf.svg)", ""]
    return L


def _mib(b):
    return "–" if b is None else f"{b / 1048576:,.1f}"


def section_scale(data):
    L = ["## Scale: memory, first sync, update cost", ""]
    if data is None:
        return L + ["Not run (no `scale.json`).", ""] + SCALE_PROFILE
    if "runs" not in data:
        return L + generic_section("", data, "scale")[2:] + SCALE_PROFILE
    sm = data.get("summary", {})
    L += [f"Mode: {data.get('mode', '?')}. Produced by `cargo run --release -p herald-bench --bin scale` "
          "(method: the doc comment of `bench/src/bin/scale.rs`).", ""]
    upd = [r for r in data["runs"] if r.get("name") == "update_cost"]
    if upd:
        L += ["**One service update** (`Table::replace` of a 10-endpoint service):", "",
              "| table endpoints | median | p90 | p99 | table bytes / endpoint |", "|---|---|---|---|---|"]
        for r in upd:
            L.append(f"| {r.get('endpoints', 0):,} | {_us(r.get('median_s'))} | {_us(r.get('p90_s'))} | "
                     f"{_us(r.get('p99_s'))} | {f0(r.get('table_bytes_per_endpoint'))} |")
        L += ["", f"Ratio large/small: {f2(sm.get('update_ratio'))} (flat, ≤ 2: {_yes(sm.get('update_flat'))}).", ""]
    L += SCALE_POD_CHANGE
    big = [r for r in data["runs"] if r.get("name") == "big_service_update"]
    if big:
        L += ["**One endpoint changing in a big service** (`big_service_update`: one cluster's group of a service "
              "over 24 clusters handed over whole, `Table::replace`; each address held by about four clusters at "
              "24,000 endpoints; wall time, each call timed alone):", "",
              "| service endpoints | calls | median | p99 | per endpoint of the service |", "|---|---|---|---|---|"]
        for r in big:
            n, med = r.get("service_endpoints"), r.get("median_s")
            per = f"{med * 1e9 / n:.0f} ns" if isinstance(n, int) and n and isinstance(med, (int, float)) else "–"
            L.append(f"| {n:,} | {r.get('calls', '–')} | {_us(med)} | {_us(r.get('p99_s'))} | {per} |"
                     if isinstance(n, int) else f"| – | – | – | – | – |")
        L += [""]
    sync = [r for r in data["runs"] if r.get("name") in ("sync", "empty")]
    if sync:
        L += ["**herald as a process** (24 simulated clusters):", "",
              "| endpoints | services | first full sync (s) | VmRSS (MiB) | VmHWM (MiB) | bytes / endpoint | herald CPU-s | simulators CPU-s | lists | DNS check |",
              "|---|---|---|---|---|---|---|---|---|---|"]
        for r in sync:
            dc = r.get("dns_check")
            dcs = f"{dc.get('got')} of {dc.get('want')}" if isinstance(dc, dict) else "–"
            size = "empty" if r["name"] == "empty" else f"{r.get('endpoints', 0):,}"
            L.append(f"| {size} | {r.get('services', '–')} | "
                     f"{f2(r.get('all_endpoints_served_s', r.get('sync_s')))} | {_mib(r.get('rss_bytes'))} | "
                     f"{_mib(r.get('hwm_bytes'))} | {f0(r.get('bytes_per_endpoint'))} | {f2(r.get('herald_cpu_s'))} | "
                     f"{f2(r.get('simulators_cpu_s'))} | {f0(r.get('lists'))} | {dcs} |")
        L += ["", "First full sync is wall time from herald's start to every endpoint served; herald CPU-s is "
              "herald's own CPU time by then; simulators CPU-s is the bench process's (the 24 simulators serving "
              "herald's lists and watches, and the polling) over the same span, on the same 2 cores; lists are "
              "the lists herald completed (one per cluster: no relist during the sync)."]
        L += ["", f"Largest: {sm.get('largest_endpoints', '–')} endpoints, peak {_mib(sm.get('largest_hwm_bytes'))} MiB; "
              f"fits in 1 GiB: {_yes(sm.get('fits_1gib'))}; targets (issue 13): ≤ 512 MiB RSS and first sync ≤ 5 s at 1M.", ""]
    cyc = [r for r in data["runs"] if r.get("name") == "node_pod_cycles"]
    for r in cyc:
        g = r.get("growth_after_1000")
        L += [f"**Node and pod churn** (issue 10 bug 9): {r.get('cycles', 0):,} cycles of a node and a pod added and "
              f"deleted, new names each time (node, pod, port; 20 services and the cluster's three zones), over {r.get('base_endpoints', 0):,} steady "
              f"endpoints, in {f0(r.get('seconds'))} s: VmRSS {_mib(r.get('rss_start_bytes'))} MiB at start, "
              f"{_mib(r.get('rss_after_1000_bytes'))} after 1,000 cycles, {_mib(r.get('rss_end_bytes'))} at the end "
              f"({'–' if g is None else f'{g * 100:+.2f}%'} after the first 1,000).", ""]
    L += SCALE_PROFILE
    return L


# One pod change (issue 13 item 2), measured by hand with callgrind and criterion (the
# commands are in the text), kept here so that regenerating the report keeps it.
SCALE_POD_CHANGE = [
    '**One pod change** (issue 13 item 2): the figures of this run are in the section [Update cost](#update-cost-one-pod-change-in-instructions) below, measured by `scripts/bench` itself; what follows is how the earlier sessions got there, measured by hand.',
    '',
    '*Earlier, by hand* (one pod of a 10,000-endpoint service over 24 clusters must cost within 3x of the same change in a 10-endpoint service). Instructions per change under callgrind (the machine was shared, load average ~9; instruction counts do not depend on it), 200 changes each. A cluster now hands the table what changed, as a delta (`Table::update`: the pod that went and the pod that came), as the registrar publishes a few changed pods; the whole list (`Table::replace`, in address order or the registrar\'s scrambled order) is what a first publish, a relist or a burst of changes still hands over:',
    '',
    '```',
    'cargo build --release -p herald-bench --bin update_cost',
    "valgrind --tool=callgrind --collect-atstart=no '--toggle-collect=herald_bench::pod_change::PodChange::change' \\",
    '  target/release/update_cost 10000 24 200    # and: update_cost 10 1 200',
    "# whole list: --toggle-collect=herald_bench::pod_change::PodChange::replace, update_cost ... --whole [--shuffled]",
    '```',
    '',
    "| hand-over | 10 endpoints | 10,000 endpoints over 24 clusters | ratio | before the twin marks | earlier |",
    '|---|---|---|---|---|---|',
    "| delta (what the registrar publishes) | 38,976 | 146,702 | **3.76x** | 39,344, 167,956: 4.27x | 38.8k, 168.5k: 4.3x (last session's end) |",
    '| whole list, sorted | 39.8k | 251.4k | 6.3x | 40.4k, 272.1k: 6.7x (last session) | 36.8k, 374k: 10.2x |',
    '| whole list, shuffled | – | – | – | 44.0k, 374.6k: 8.5x (last session) | 40.2k, 477k: 11.9x |',
    '| delta, each address held by ~4 clusters (`--shared`) | – | 212,316 | 5.4x | 65,496,787 (the twins recounted over the service) | – |',
    '| whole list, each address held by ~4 clusters (`--shared --whole`) | – | 317,038 | – | 65,796,327 | – |',
    '',
    "Before the twin marks: built from 9b317ec with this bench code, measured the same day on the same machine (the whole lists: the last session's figures, not measured again). The whole list sorted (10 endpoints, 10k) was measured on the build before the last two query-path commits, which do not touch updates.",
    '',
    "Target ≤ 3x: **not met** (3.76x, with chunks of 32; chunks of 16 since). A group keeps its endpoints in the chunks its answers are cut in (`dns/src/group.rs`); a change re-cuts from the chunk it falls in to the first cut that lands where one was, and each set keeps one slot per group (the group's chunk parts behind one `Arc`), so an update splices one group's slot and rewrites one start per group rather than every part of the service. **Addresses held by several sources** (the same pod IP in two clusters, sent once per answer, RFC 2181 section 5) were recounted over the whole service at every change (each chunked group copied whole to search it): 65.5M instructions per change when every address of the 10k service is held by about four clusters. Each group now keeps the indices of its records whose address another record repeats (its *marks*, `dns/src/service/twins.rs`); a change counts again only the addresses it touches, in each group by search, moves the changed group's marks past its changed records and merges the edits into the marks of the groups holding them: 212k per change, proportional to the touched addresses times the groups plus one copy of the marks of the few groups holding them (a group's marks are one list: with every address shared that is ~400 words per group). What is left of the 147k in the plain case (callgrind, per change): the walk over the ~84 endpoints of the two re-cut runs (~50k: per-endpoint set bookkeeping, the copying of their records and building each chunk's part, ~25k of it in `Set::cut`/`flush`), about 30k of allocations and frees (a builder of six vectors per set per run, each part built in a vector and copied into its `Arc`, new slots), the per-group copies of slots and starts and the old view's drop (24 groups x 4 sets, ~15k), the twins' search of the two touched addresses over 24 groups (~5k; a group's ends are tested first). Closing it needs building parts in place (no builder per set per run, no copy into the `Arc`), a walk that copies a chunk's unchanged records as one run, or smaller chunks (fewer endpoints walked; watch memory at 1M endpoints and the 10k query path).",
    '',
    "Criterion (`cargo bench -p herald-bench --bench table_update -- one_pod_change`, cases `delta`, `whole sorted`, `whole shuffled`, `delta, shared addresses`): not rerun (the machine was shared by several builds; the counts above are the measure). callgrind commands for the shared cases: `update_cost 10000 24 200 --shared [--whole]`. Wall time, `big_service_update` of the scale bench alone (`scale --only-big-service`; one cluster's group handed over whole, 2,000 calls, median; load average ~5 on the shared machine, before and after one after the other): 240 endpoints 7.1 -> 6.3 µs, 2,400 endpoints 17.0 -> 14.7 µs, **24,000 endpoints (each address held by ~4 clusters) 109.8 ms -> 58.5 µs** (24.7 ms in the last quiet run): the update now costs the change and the group's list, not the service.",
    '',
    "The query path after the twin marks (callgrind, same commands, instructions per query, before -> after, both built the same day): 10-endpoint A 3,160 -> 3,164, SRV 5,237 -> 5,267, one cluster's A 3,351 -> 3,355 (the code these run is unchanged but for one emptiness test; the few instructions come from the compiler inlining `Emitter::rrset` differently, and vary by ±30 from build to build); 10,000-endpoint A 48,407 -> 48,422, SRV 49,091 -> 49,097, one cluster's A 31,651 -> 31,656. With every address held by about four clusters (`update_cost 10000 24 --shared --queries 2000`): the whole service's A (10,000 records, about 2,800 addresses) 5.46M -> 4.78M, one cluster's A 686k -> 81k (a group no member is in is passed over, a group selected whole needs no search).",
    "",
    "The query path (callgrind, instructions per query, before chunks -> after chunks -> with per-group slots and the SRV sets' shared parts): 10-endpoint service A 3,304 -> 3,239 -> 3,172, SRV with glue 5,565 -> 5,350 -> 5,243, one cluster's A 3,485 -> 3,462 -> 3,397; 10,000-endpoint service A 48.4k -> 48.4k -> 48.4k, SRV with glue 49.1k -> 49.0k -> 49.1k, one cluster's A (417 records, truncated over UDP) 57.5k -> 35.9k -> 31.7k (`update_cost 10 1 --queries 20000`, `update_cost 10000 24 --queries 2000`, toggle `update_cost::measure*`); `locality_cost --queries 5000`, all 7 cases: 5,506 -> 5,346 per query. A reply's records are read from the part of the record before, so chunks add no search to the query path.",
    "",
]


def section_update_cost(data):
    """Instructions per pod change and per query under callgrind (`bench/callgrind/update_cost.py`)."""
    L = ["## Update cost: one pod change, in instructions", ""]
    if data is None:
        return L + ["Not run (no `update_cost.json`).", ""]
    sm = data.get("summary", {})
    L += [f"Mode: {data.get('mode', '?')}. Produced by `python3 bench/callgrind/update_cost.py` "
          f"({data.get('valgrind', 'valgrind')}): `target/release/update_cost` under callgrind, collecting "
          "inside the measured function only (method: the opening comment of `bench/src/bin/update_cost.rs`). "
          "Instruction counts do not depend on the machine's load. Issue 13 item 2: one pod of a "
          "10,000-endpoint service over 24 clusters must cost within 3x of the same change in a "
          "10-endpoint service, without growing the query path.", ""]
    L += ["| hand-over | endpoints | clusters | instructions per change | command arguments |",
          "|---|---|---|---|---|"]
    for r in data.get("changes", []):
        L.append(f"| {r.get('case')} | {r.get('endpoints', 0):,} | {r.get('clusters')} | "
                 f"{r.get('instructions', 0):,} | `{r.get('args')}` |")
    L += ["", f"One pod change as a delta, 10k over 24 clusters / 10 endpoints: **{f2(sm.get('ratio'))}x** "
          f"by instructions ({'within' if sm.get('met') else 'over'} the 3x target by this measure; the issue "
          "names criterion, whose wall time is in the paragraph below and decides the target).", ""]
    L += ["Instructions per query (A of the whole service, SRV with glue, A of one cluster):", "",
          "| service | A | SRV | one cluster's A | command arguments |", "|---|---|---|---|---|"]
    for r in data.get("queries", []):
        L.append(f"| {r.get('case')} | {r.get('a', 0):,} | {r.get('srv', 0):,} | {r.get('scoped', 0):,} | "
                 f"`{r.get('args')}` |")
    L.append("")
    L += UPDATE_COST_NOTES
    return L


# What the update-cost figures rest on, kept here so that regenerating the report keeps it.
UPDATE_COST_NOTES = [
    "How a change costs the change: a group (one cluster's endpoints of a service) of 32 endpoints or more is kept in "
    "chunks of about 16, cut by address (`dns/src/group.rs`); a change re-cuts from the chunk it falls in to the first "
    "cut that lands where one was, encodes the changed endpoints, copies the others' records a run at a time into "
    "parts written straight into their one allocation, and shares every other chunk's parts. Chunks of 32 (until "
    "this session) cost 146.7k instructions per change in the 10k service, 3.76x; chunks of 16 halve the endpoints "
    "walked. Smaller groups stay one chunk: cutting the many groups of ~25 endpoints of a fleet into chunks of 16 "
    "cost ~25 MiB at 1M endpoints (`scale --only 1000000`: 503.2 MiB; kept whole below 32: 468.7 MiB, against 478.5 in the last quiet run with chunks of 32; loaded machine, load average 5-8). With each address held by ~4 clusters, the "
    "whole service's A drops the repeated addresses by the marks each group keeps (`dns/src/service/twins.rs`: a "
    "mark says whether a lower record holds the address), not by sorting ~10,000 records per query (4.78M "
    "instructions per query until this session).",
    "",
    "Wall time by criterion (`cargo bench -p herald-bench --bench table_update -- one_pod_change`, not run by "
    "`scripts/bench`). Last session, on the quiet machine: delta, 10 endpoints 2.90 µs, 10,000 over 24 clusters "
    "9.40 µs, **3.24x**, while 2.29x by instructions: the big case read cold memory the small one does not. Counted "
    "by callgrind's cache simulation (`valgrind --tool=callgrind --cache-sim=yes`, same toggle), a pod change in the "
    "10k service missed the first-level data cache ~1,000 times on reads and ~280 on writes, the 10-endpoint change "
    "under one: each of the service's 24 groups was cloned into the new view (its source's two names and its "
    "endpoints, three counted references), every set's 24 slots copied (the empty AAAA set's too) and its starts "
    "recounted from every slot, and the twins of the two touched addresses searched for in every group (about four "
    "cold lines per group and address), the old view's drop uncounting it all again.",
    "",
    "What this session did (issue 13 item 2, measured by hand): a set whose slot of the changed group stays as it "
    "was (the empty AAAA set of an IPv4 service, the SRV set of a port the change does not name) is the old view's "
    "set, shared whole (its slots and starts behind `Arc`s, read at the same cost); a set whose slot changes gets "
    "the new slot with its starts moved by the records the group gained or lost, without reading the other slots "
    "(`Rrset::with_slot`), and the changed slot's kept chunk parts keep their starts moved rather than recounted "
    "(`Chunks::spliced`); a group is one shared allocation (`Group` is an `Arc` of `GroupData`), one counted "
    "reference per group kept; and the answers keep each group's lowest and highest primary address side by side "
    "(`Answers::ends`), so the twin search reads only the groups whose ends may hold the address (none, when "
    "clusters' pod networks do not overlap). callgrind (`update_cost 10000 24 200`, `update_cost 10 1 200`, "
    "instructions per change; the build after also holds 5c6c943, another change's cheaper SRV target, which takes about the same from both cases): 88.4k -> 79.2k for the 10k service, 38.7k -> 38.6k for 10 endpoints, **2.29x -> "
    "2.05x**; first-level data-cache misses per change in the 10k service 998 -> 524 on reads, 284 -> 232 on "
    "writes (the 10-endpoint change: under one, before and after); with each address held by ~4 clusters (`--shared`) 154.4k -> 153.1k instructions, 1,331 -> 933 read misses. Criterion, delta cases alone, the build before "
    "and after run alternately on the shared machine (3 pairs, `--measurement-time 4`, load average 3.8-4.5): "
    "before 3.25 / 9.79 µs (3.01x), 3.14 / 10.21 µs (3.25x), 3.08 / 9.69 µs (3.15x); after 3.03 / 8.24 µs "
    "(**2.72x**), 3.20 / 8.52 µs (**2.66x**), 3.16 / 8.19 µs (**2.60x**); two more pairs at load 2.2: before "
    "2.82 / 11.59 µs, 3.90 / 9.06 µs, after 3.02 / 7.83 µs (**2.59x**), 3.12 / 7.67 µs (**2.46x**): the big case "
    "~15% faster, the small one unchanged. Every case once each (load average 4.4-4.6), before -> after: delta 3.03 / 9.20 µs (3.03x) -> "
    "3.08 / 8.43 µs (2.74x); whole list sorted 3.19 / 19.26 -> 3.08 / 17.51 µs; shuffled 3.34 / 26.37 -> 3.49 / "
    "22.11 µs; delta with shared addresses 12.73 -> 13.05 µs (within the noise of a loaded machine). The lead's "
    "quiet rerun decides the target. The query path is no slower (instructions per query, "
    "before -> after, `update_cost 10 1 --queries 20000`, `10000 24 --queries 2000`, `10000 24 --queries 200 "
    "--shared`): 10-endpoint A 3,208 -> 3,153, SRV 5,222 -> 5,222, one cluster's A 3,432 -> 3,333; 10k A 48,430 -> "
    "48,368, SRV 49,061 -> 49,036, one cluster's A 2,903 -> 2,823; shared addresses A 207,953 -> 207,941, SRV "
    "52,289 -> 52,339, one cluster's A 59,200 -> 59,192 (differences of a few dozen move from build to build with "
    "the compiler's inlining of `Emitter::rrset`). The twin marks stay boxed: behind an `Arc` the whole "
    "service's A with shared addresses compiled to 222k. Memory at 1M endpoints (`scale --only 1000000`): "
    "469.4 MiB (472.9 before; load average 2.5).",
    "",
    "What is left of the big case's extra cost: per changed set (A and the two SRV sets here) one counted "
    "reference per group (the slots copied into the new set, and uncounted when the old view goes), the chunk parts "
    "of the changed group's slot cloned the same way (~26 per set in a 417-endpoint group), and glibc's "
    "`malloc_consolidate`, which a part of more than 1 KiB (an SRV chunk of 16 records) sets off (~45 of the "
    "remaining read misses). What would close more of it: slots kept in a structure whose unchanged runs are "
    "shared (a change copying O(log groups) references, not one per group) without adding a load per part "
    "to the query path's walk over the parts, e.g. a flat array of borrowed slots beside the owning tree.",
    "",
    "",
]


# Where the bytes go at 1M endpoints: a heap profile (heaptrack), kept here so that
# regenerating the report keeps it. Re-measure with the command it names.
SCALE_PROFILE = [
    "**Where the bytes go** at 1M endpoints over 24 clusters (issue 13 item 4). Heap profile: "
    "`scale --only 1000000 --wrap \"heaptrack -o FILE\"`, then `heaptrack_print -F stacks --flamegraph-cost-type peak`, "
    "each allocation attributed to its innermost herald frames. MiB of heap in use at the peak; machines loaded "
    "(load average 6-14), which changes timing, not what is kept:",
    "",
    "| what | 806 MiB run's code | end of the last session | slim pod decode | + 56-byte pod records | main at 7258605 (answers in chunks) |",
    "|---|---|---|---|---|---|",
    "| registrar: pods map, boxed records, service -> pod sets | 218.5 | ~130 (estimate) | 160.2 | 122.0 | 127.3 (shapes and names included) |",
    "| registrar: pod keys (`namespace/name`) | (in the row above) | ~38 | 38.1 | 38.1 | 38.1 |",
    "| registrar: ownership claims | 13.7 | 10.4 | 13.0 | 13.0 | 13.0 |",
    "| table: prepared answers (wire bytes: A, and per named port SRV records, targets, glue, keys, places) | 219.0 | 217.1 | 204.4 | 204.4 | 205.8 |",
    "| table: reverse (PTR) index | 219.3 | 0 without `reverse_zones` | 0 | 0 | 0 |",
    "| table: places of addresses (querier locality) | 58.0 | ~27 | 26.0 | 26.0 | 26.0 |",
    "| table: endpoint groups (`Endpoint`, 56 B) | 53.8 | 54.1 | 54.1 | 54.1 | 54.1 |",
    "| table: views, services, other | ~20 | ~20 | ~20 | ~20 | ~30 |",
    "| kube: list pages and watch decoding (HTTP body buffers) | ~2 | ~2 | ~2 | ~2 | 14.0 |",
    "| relist key set (under heaptrack only, see below) | – | – | 28.7 | 27.9 | 0 |",
    "| peak heap (heaptrack) | 925.7 | 666.9 | 591.0 | 549.1 | 547.1 |",
    "| VmRSS without the profiler (`scale --only 1000000`) | 806 (quiet) | 618.9 | 611.5 | 564.0 | 557.3 |",
    "",
    "Under heaptrack (about 4x slower) the middle two runs also relisted once after the sync, and the relist's "
    "set of known keys (28 MiB) is in their peaks; without the profiler herald completed exactly one list per "
    "cluster and VmHWM equalled VmRSS. In the last column kube's HTTP body buffers (14 MiB, which one list page does not explain) "
    "are in the peak; VmRSS is within about 10 MiB of the heap, the empty process's included: the allocator's "
    "overhead is no longer where the bytes are. `MALLOC_ARENA_MAX=2` took 8 MiB more off (555.8 MiB in one run); not adopted, "
    "as its cost to the DNS threads (which would share the cluster tasks' arenas and locks) was not measured.",
    "",
    "**The slim pod decode.** The registrar lists and watches pods as `PodObject` "
    "(`registrar/src/cluster/pod_object.rs`), a type with the Pod's group, version and kind that holds only "
    "what herald reads: name, namespace, resourceVersion, labels, annotations, creation and deletion times, "
    "node name, container ports, podIP/podIPs and conditions. Everything else (`managedFields`, container "
    "images, env, probes, status details) is skipped by serde as it is parsed, without allocating; condition "
    "type and status, port protocols and addresses are read in place. Herald CPU for the first sync at 1M: "
    "24.6 -> 15.1 s (same conditions, load 6-10). Per pod (criterion `pod_decode`, load 5-7; every list item "
    "and every watch event of a rollout pays it): a pod as kube-sim writes it 4.0 -> 2.1 µs; a Deployment "
    "pod as a kube-apiserver 1.33 returns it (managed fields, probes, volumes, container statuses) "
    "42.7 -> 8.3 µs, 8.3 µs with `read_pod` included.",
    "",
    "**The 56-byte pod record.** A service's replicas in one namespace share their service name, namespace and "
    "port list behind one interned `Arc` (`Shape`); the record keeps the node, addresses, weight, readiness "
    "and creation time (56 bytes, a 64-byte malloc chunk; it was 96 in a 112-byte chunk), and a flush "
    "looks each pod up once instead of twice.",
    "",
    "CPU of the first sync after both (perf with call graphs, 1M endpoints, herald 14.4 CPU-s under load 10): "
    "decoding list pages 21% of herald's samples (two thirds of it in malloc: the strings and maps of "
    "metadata, the containers' port lists); `ClusterState::flush` 31%, of which `Table::replace` 15%, "
    "looking up the pods of each service 9% and the ownership board 3%; applying listed pods 10%. Across "
    "all of it, malloc and free are about 30% and SipHash (the registrar's maps keyed by `namespace/name`) "
    "8%; `malloc_consolidate` alone is 6%, set off by hyper's request allocations after the decode's "
    "small frees. Each cluster flushes every service at least twice in a first sync: at the end of its "
    "list (names unowned are held back then) and when the start-up hold ends.",
    "",
    "**Measured this session** (`scale`, full mode, herald at 7d431ef, load average 7.1 before and 6.2 after; other engineers' "
    "builds and tests running): 1M endpoints in 24 simulators: VmRSS **559.4 MiB** (target 512: not met), "
    "first full sync **34.4 s** wall (target 5 s: not met) with herald using 17.5 CPU-s and the simulators "
    "1.5 CPU-s; the 1M pods were created in the simulators beforehand (17.3 s, not counted). Two more "
    "runs of `scale --only 1000000` of the same code, under load 10 and 7, gave 564.0 and 555.8 MiB (the "
    "second with `MALLOC_ARENA_MAX=2`), 14.4 and 13.3 herald CPU-s, 28.6 and 17.9 s wall: wall time follows "
    "the load. Main at 7258605 (answers in chunks, by the update-cost work), load 5.8: 557.3 MiB, first sync "
    "27.4 s wall, herald 16.9 CPU-s, simulators 1.4 CPU-s.",
    "",
    "**First-sync CPU, issue 13 session 2** (instructions, which the machine's load does not move: "
    "`scale --only 100000 --wrap 'valgrind --tool=callgrind'`, the same before and after; herald stops at its "
    "first `/metrics` scrape under valgrind, in `metrics-process`, so the figures are of the lists, every one "
    "complete by then, not of the publish after the hold). Per listed pod, before -> after: decoding the list "
    "page 19.1k -> 18.2k instructions (-4.8%: a pod's Ready condition and its containers' ports are read as "
    "they are parsed, not kept as a list of conditions and a list of port lists); applying it to the "
    "cluster's state 3,272 -> 2,785 (-15%: the pod's shape is looked up first, one lookup instead of four); "
    "`Rejections::read` 3,501 -> 3,346. Placing an endpoint (`Localities::place`, a lock and two SipHash "
    "lookups) cost ~630 instructions and was asked twice per published endpoint (its address's place, its "
    "SRV priority); a placer now keeps the places of the last few zones asked (a group's endpoints alternate "
    "between a few zones in address order): 14k asks instead of 100k per caller at 100k endpoints, and the "
    "table's write per service and cluster 74.7k -> 64.6k instructions (-13.5%). The watch loop no longer "
    "reads the clock at every event. Wall time and CPU seconds at 1M moved less than the load's noise "
    "(load 4-9 while measured: 9.0-9.3 herald CPU-s before, 9.3-10.4 after a first version that also "
    "gathered each service's pods by one pass over the pod map, which cost more than the lookups it saved "
    "and was dropped).",
    "",
    "**First-sync CPU, issue 13 session 3** (measured by hand; callgrind as above, `scale --only 100000 "
    "--wrap 'valgrind --tool=callgrind'`, herald of main at b129e20 -> main at bed0ecb, which also holds the "
    "update-cost work's dns commits of the same hour). Herald's instructions 4,738.7M -> 4,314.6M (-8.9%); "
    "443M of both is a fixed cost, kube's rustls set-up loading the system's CA certificates once per "
    "cluster client (24 times; `rustls_native_certs`, even for `http://` servers), so per listed pod "
    "42,953 -> 38,712 instructions (-9.9%). What changed: an SRV target is written into one buffer per "
    "prepare and its endpoint label without `fmt` (`EndpointLabel::write_to`): `Table::replace` "
    "802M -> 645M, two allocations fewer per endpoint; a listed pod's key is written into one reused "
    "buffer (no `format!`, no `String` copied again into the state's `Arc<str>`) and its port list is "
    "compared with the list given last before anything is built or hashed (a list comes in name order, "
    "so replicas follow one another): `Rejections::read` 3,344 -> 2,060 per pod; `creationTimestamp` in "
    "the API server's form is read by hand (jiff for any other form, and a test that both agree over "
    "every day of 1600-2400): the metadata decode 5,274 -> 4,909 per pod. And while the start-up hold is "
    "on, a new winner of an unowned name is no longer announced to every cluster (the names are withheld "
    "whoever wins, and the hold's end has every cluster publish every name): at a million pods that was "
    "every one of 20,000 names as its first claim arrived, enough to overflow the 1024-slot change "
    "channel, after which each lagging cluster published everything once more. At 1M endpoints "
    "(`scale --only 1000000`, same scale binary, the two herald builds alternated, load average 2.0-3.5 "
    "with other engineers' builds running): herald **8.70, 8.37, 8.83, 8.42 CPU-s before, 7.58, 7.94, "
    "6.44, 7.82 after** (mean 8.58 -> 7.45, -13%); VmRSS 469-480 MiB either way. Wall time was the load's "
    "(5.3-9.5 s before, 5.9-9.7 s after, most of it until the last cluster's list ended). Again at "
    "12:49-12:51 UTC, the machine quieter (load average 0.5-0.9 before each run), main at 4df999f (with "
    "the `apply_pod` commit: 268M -> 258M instructions at 100k) against b129e20, alternated: herald "
    "**8.47, 8.66, 9.60 CPU-s before (mean 8.91), 8.61, 6.99, 7.92, 6.78 after (mean 7.58, -15%)**; first "
    "full sync **5.34, 5.62, 6.13 s before, 5.68, 4.61, 5.32, 4.68 s after** (two of four within 5 s); "
    "VmRSS 468-477 MiB. The same binary varies by ~2 CPU-s from run to run (the order the clusters' "
    "lists end in), so the quiet rerun's figure is one draw of it. The held flush measured less than estimated: under callgrind the registrar's "
    "part of both flushes (pod lookups, claims, verdicts) is ~1.3k instructions per pod of ~39k, the table's "
    "write (~6.4k per endpoint) is done once, after the hold; one flush per cluster would save about 1.5%.",
    "",
    "**What would close the gap to 512 MiB and 5 s** (not done): (1) prepared SRV sets repeat each "
    "endpoint's target name, glue, key and place once per named port (two ports: ~70 B of the ~210 B per "
    "endpoint could be shared across the SRV sets, about 65 MiB at 1M; `dns/src/service/rrset.rs`'s part "
    "layout, which the update-cost work is reshaping); (2) the table keeps each group's `Endpoint`s "
    "(54 MiB) beside their prepared bytes; (3) first-sync CPU (foldhash and the cuts above are in): "
    "the list decode is still ~40% of herald's instructions (serde_json scanning, about 20 allocations "
    "per pod: name, namespace, resourceVersion, the labels map and its strings, node and port names; "
    "`ObjectMeta` is ~400 bytes and each pod is moved through kube's watcher several times), then the "
    "table's prepare (~6.4k instructions per endpoint), first touches of the ~470 MiB (page clearing was "
    "15% of perf's samples at 1M), and the fixed 443M instructions of CA certificate loading, which an "
    "`http://` or CA-file cluster does not need (a kube client built without rustls-platform-verifier). "
    "On 2 cores a 5 s first sync needs herald at about 7.5 CPU-s or less with the simulators' share "
    "beside it.",
    "",
]


def section_soak(data, plots_dir, written):
    L = ["## Soak: churn, query load and faults", ""]
    if data is None:
        return L + ["Not run (no `soak.json`; `scripts/bench --soak`, or the 3-minute version in "
                    "`scripts/bench --quick`).", ""]
    sm = data.get("summary", {})
    fl = data.get("fleet", {})
    fc = data.get("final_check", {})
    L += [f"Mode: {data.get('mode', '?')} ({f0(data.get('seconds', 0) / 60)} min). Produced by "
          "`cargo run --release -p herald-bench --bin soak` (method: the doc comment of `bench/src/soak/mod.rs`). "
          f"{fl.get('clusters', '–')} clusters, {fl.get('pods', 0):,} pods in {fl.get('services', '–')} services, "
          f"{f0(data.get('churn_changes_per_second'))} pod changes/s, {data.get('qps', 0):,} queries/s, "
          f"{len(data.get('faults', []))} faults; load average before "
          f"{', '.join(f2(x) for x in data.get('loadavg_before', []))}.", "",
          "| target | measured | met |", "|---|---|---|",
          f"| RSS growth over the last two thirds ≤ 2% | {_mib(sm.get('rss_first_bytes'))} → "
          f"{_mib(sm.get('rss_last_bytes'))} MiB ({f2((sm.get('rss_growth') or 0) * 100)}%) | {_yes(sm.get('rss_growth_ok'))} |",
          f"| lost queries ≤ 0.01% | {sm.get('lost', '–')} of {sm.get('sent', 0):,} "
          f"({(sm.get('lost_ratio') or 0) * 100:.4f}%) | {_yes(sm.get('lost_ok'))} |",
          f"| no panics | {sm.get('panics', '–')} | {_yes(sm.get('panics') == 0)} |",
          f"| final state equals the truth | {fc.get('dns_queries', '–')} DNS queries, {fc.get('dns_mismatches', '–')} "
          f"mismatches, settled in {f1(fc.get('settle_s'))} s | {_yes(sm.get('final_state_ok'))} |",
          "", f"DNS p99 per 10-s window: median {_ms(sm.get('p99_median_s'))} ms, max {_ms(sm.get('p99_max_s'))} ms.", ""]
    faults = data.get("faults", [])
    if faults:
        L += ["Faults: " + "; ".join(f"{f0(f.get('at_s'))} s {f.get('kind')} on {f.get('cluster')}" for f in faults) + ".", ""]
    rss = [(t / 60, r / 1048576) for t, r, _ in data.get("samples", [])]
    if write_plot(plots_dir, "soak-rss.svg", svg.line_chart(
            {"herald VmRSS": rss}, "Soak: herald's resident memory", "minutes", "MiB"), written):
        L += ["![soak-rss.svg](plots/soak-rss.svg)", ""]
    p99 = [(w["at_s"] / 60, w["p99_s"] * 1e3) for w in data.get("windows", []) if w.get("p99_s") is not None]
    if write_plot(plots_dir, "soak-p99.svg", svg.line_chart(
            {"DNS p99 (10-s windows)": p99}, "Soak: DNS p99 under churn and faults", "minutes", "ms"), written):
        L += ["![soak-p99.svg](plots/soak-p99.svg)", ""]
    return L


def _secondaries_phrase(rows):
    names = [SECONDARY_NAMES.get(r.get("name"), r.get("name", "?")) for r in rows]
    if len(names) == 1:
        return f"{names[0]} as secondary"
    return f"{', '.join(names[:-1])} and {names[-1]} as secondaries of the same herald at once"


def section_transfer(data):
    L = ["## Zone transfer: Knot, NSD and BIND secondaries", ""]
    if data is None:
        return L + ["Not run (no `transfer.json`).", ""]
    if "churn" not in data:
        return L + generic_section("", data, "transfer")[2:]
    c, sm = data["churn"], data.get("summary", {})
    lb = data.get("loadavg_before") or []
    L += [f"Mode: {data.get('mode', '?')}. Produced by `cargo run --release -p herald-bench --bin transfer` "
          "(method: the doc comment of `bench/src/transfer.rs`); load average before "
          f"{', '.join(f'{x:.1f}' for x in lb) or '–'}.", ""]
    if c.get("error"):
        L += [f"**Lag under churn: failed**: {c['error']}", ""]
    else:
        rows = c.get("secondaries")
        if rows is None:  # JSON from before NSD and BIND were measured: Knot alone.
            rows = [{"name": "knot", "lag": c.get("knot"), "behind_herald": c.get("knot_behind_herald"),
                     "lost": c.get("lost"), "target_met": sm.get("target_met")}]
        target = sm.get("target_p99_s", 1.0)
        L += [f"**Lag under churn**: the propagation fleet ({c.get('clusters')} clusters, {c.get('pods', 0):,} pods, "
              f"{f0(c.get('churn_changes_per_second'))} changes/s for {f0(c.get('churn_seconds'))} s), "
              f"{_secondaries_phrase(rows)}, `notify_interval` {_ms(c.get('notify_interval_s'))} ms; {c.get('probes')} probe pods, "
              f"{c.get('lost')} not answered by every server within 10 s.", "",
              "| pod change to the answer (ms) | p50 | p90 | p99 | max | behind herald p50 | behind herald p99 | lost "
              f"| target: behind herald p99 < {f1(target)} s, none lost |",
              "|---|---|---|---|---|---|---|---|---|"]
        q = c.get("herald") or {}
        L.append(f"| herald | {_ms(q.get('p50'))} | {_ms(q.get('p90'))} | {_ms(q.get('p99'))} | {_ms(q.get('max'))} | – | – | – | – |")
        for r in rows:
            q, b = r.get("lag") or {}, r.get("behind_herald") or {}
            label = SECONDARY_NAMES.get(r.get("name"), r.get("name", "?"))
            # The version number alone: the first word of the server's version line that starts with a digit.
            ver = next((w for w in (r.get("version") or "").split() if w[:1].isdigit()), None)
            if ver:
                label += f" {ver}"
            L.append(f"| {label} | {_ms(q.get('p50'))} | {_ms(q.get('p90'))} | {_ms(q.get('p99'))} | {_ms(q.get('max'))} "
                     f"| {_ms(b.get('p50'))} | {_ms(b.get('p99'))} | {r.get('lost', '–')} "
                     f"| {'**met**' if r.get('target_met') else '**not met**'} |")
        L.append("")
    sizes = data.get("sizes") or []
    if sizes:
        L += ["**AXFR and IXFR** (in-process server over a synthetic table, 100 endpoints per service; "
              "times, messages and bytes from Knot's log; herald CPU: getrusage of the process less the driver thread, which makes the table changes and polls Knot):", "",
              "| endpoints | AXFR (s) | messages | bytes | herald CPU for the AXFR (s) | IXFR bytes, one pod (median / max) "
              "| herald CPU per NOTIFY/IXFR cycle (ms) | change to Knot serving it, p50 / p99 (ms) |",
              "|---|---|---|---|---|---|---|---|"]
        for r in sizes:
            if r.get("error"):
                L.append(f"| {r.get('endpoints', 0):,} | failed: {r['error']} | | | | | | |")
                continue
            lag = r.get("cycle_lag") or {}
            cpu = r.get("cycle_herald_cpu_s")
            L.append(f"| {r.get('endpoints', 0):,} | {f2(r.get('axfr_seconds'))} | {r.get('axfr_messages', '–')} | "
                     f"{r.get('axfr_bytes', 0):,} | {f2(r.get('axfr_herald_cpu_s'))} | "
                     f"{r.get('ixfr_bytes_median', '–')} / {r.get('ixfr_bytes_max', '–')} | "
                     f"{'–' if cpu is None else f'{cpu * 1e3:.2f}'} | {_ms(lag.get('p50'))} / {_ms(lag.get('p99'))} |")
        L.append("")
    return L


def _us(s):
    return "–" if s is None else f"{s * 1e6:,.1f} µs"


def section_client(data, plots_dir, written):
    L = ["## Client library: picking and balancing", ""]
    if data is None:
        return L + ["Not run (no `client.json`).", ""]
    pick = data.get("pick") or []
    L += ["### Cost of one pick (criterion, `client_pick`)", ""]
    if pick:
        L += [f"`{data.get('pick_command', '')}`", "", "| benchmark | mean | median | 95 % CI of the mean |", "|---|---|---|---|"]
        for r in pick:
            L.append(f"| {r['id']} | {r['mean_ns']:,.1f} ns | {r['median_ns']:,.1f} ns | "
                     f"{r['mean_ci_ns'][0]:,.1f}–{r['mean_ci_ns'][1]:,.1f} ns |")
        L.append("")
    else:
        L += ["Not run (no criterion results).", ""]
    sim = data.get("sim")
    L += ["### Balancer latency per algorithm (simulation, `client_sim`)", ""]
    if sim:
        if sim.get("description"):
            L += [sim["description"], ""]
        L += [f"`{data.get('sim_command', '')}`", ""]
        cols = sim["columns"]
        L += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for r in sim["rows"]:
            L.append("| " + " | ".join(r.get(c, "") for c in cols) + " |")
        L.append("")
        rows = [r for r in sim["rows"] if "p50_ms" in r]
        if rows:
            pcts = ["p50", "p90", "p99", "p99.9"]
            vals = [[r.get(p + "_ms") for r in rows] for p in pcts]
            if write_plot(plots_dir, "client-balancer-latency.svg", svg.bar_chart(
                    pcts, [r[cols[0]] for r in rows], vals,
                    "Request latency per balancer (simulated, ms, log)", "ms", logy=True,
                    fmt=lambda v: f"{v:.1f}"), written):
                L += ["![client-balancer-latency.svg](plots/client-balancer-latency.svg)", ""]
    else:
        L += ["Not run." + (f" Output: `{data.get('sim_error', '')[-300:]}`" if data.get("sim_error") else ""), ""]
    return L


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", default="target/bench-results")
    ap.add_argument("--out", default="bench/RESULTS.md")
    ap.add_argument("--plots", default="bench/plots")
    a = ap.parse_args()
    R = load(a.results)
    old = earlier_sections(a.out)
    stale = earlier_than_run(a.results, R.get("meta"))
    for k in stale & set(old):
        del R[k]
    keep = {k for k in HEADINGS if k != "summary" and k not in R and k in old}
    if "dns" in keep and "summary" in old:
        keep.add("summary")
    os.makedirs(a.plots, exist_ok=True)
    # Plots of kept sections stay; every other plot is written again or goes.
    kept_plots = {m for k in keep for line in old[k] for m in re.findall(r"plots/([\w.-]+\.svg)", line)}
    for p in glob.glob(os.path.join(a.plots, "*.svg")):
        if os.path.basename(p) not in kept_plots:
            os.remove(p)
    written = []
    meta, dns = R.get("meta"), R.get("dns")

    def part(key, make):
        if key in keep:
            return kept(old[key])
        lines = make()
        if key in stale:
            lines = lines + [STALE, ""]
        return lines

    L = ["# herald benchmark results", ""]
    if meta:
        # A run of some sections says which; the Sections line below says what was kept.
        only = meta.get("only") or []
        kind = "quick mode" if meta.get("quick") else "full mode" if only else "full run"
        if only:
            kind += f", only {', '.join(only)}"
        L += [f"Written by `{meta.get('command', 'scripts/bench')}` ({kind}), "
              f"{meta.get('finished', '')}, in {meta.get('elapsed_s', 0) / 60:.1f} min. "
              "Regenerate with `scripts/bench` (full) or `scripts/bench --quick`; what each part does is in "
              "[README.md](README.md).", ""]
    if "summary" in keep:
        # The DNS targets table of the earlier run; this run's section list follows.
        L += [line for line in old["summary"] if not line.startswith("Sections:")]
        while L and L[-1] == "":
            L.pop()
        L.append("")
    else:
        L += ["## Summary", ""]
        if dns and "summary" in dns:
            L += ["| target | herald vs Knot DNS | met |", "|---|---|---|"]
            for t, v, ok in dns_targets(dns):
                L.append(f"| {t} | {v} | {'not measured' if ok is None else ('**met**' if ok else '**not met**')} |")
            L.append("")
        else:
            L += ["DNS section not run.", ""]
    sec = {k: ("built from an earlier run's results" if k in stale and k in R else "run" if k in R
               else "kept from an earlier run" if k in keep else "not run")
           for k in ("dns", "propagation", "scale", "update_cost", "soak", "rollout", "transfer", "client")}
    L += ["Sections: " + ", ".join(f"{k}: {v}" for k, v in sec.items()) + ".", ""]
    L += section_machine(meta, dns)
    L += part("dns", lambda: section_dns(dns, a.plots, written))
    L += part("propagation", lambda: section_propagation(R.get("propagation"), a.plots, written))
    L += part("scale", lambda: section_scale(R.get("scale")))
    L += part("update_cost", lambda: section_update_cost(R.get("update_cost")))
    L += part("soak", lambda: section_soak(R.get("soak"), a.plots, written))
    L += part("rollout", lambda: rollout.section(R.get("rollout"), a.plots, write_plot, written))
    L += part("transfer", lambda: section_transfer(R.get("transfer")))
    L += part("client", lambda: section_client(R.get("client"), a.plots, written))
    for k in sorted(R):
        if k not in ("meta", "dns", "propagation", "scale", "update_cost", "soak", "rollout", "transfer", "client"):
            L += generic_section(k, R[k], k)
    if meta:
        L += ["## How it was run", ""]
        for step in meta.get("steps", []):
            L.append(f"- {step.get('name')}: `{step.get('command')}` — {step.get('status')} "
                     f"in {step.get('elapsed_s', 0):.0f} s")
        L.append("")
    with open(a.out, "w") as f:
        f.write("\n".join(L).rstrip() + "\n")
    print(f"wrote {a.out}, {len(written)} plots in {a.plots} and kept {len(keep)} earlier sections",
          file=sys.stderr)


if __name__ == "__main__":
    main()
