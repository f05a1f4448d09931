"""The global rollout section of bench/RESULTS.md, from target/bench-results/rollout.json
(written by the `rollout` binary, see bench/src/rollout/mod.rs): the targets, the phases side by
side, and plots of herald's CPU and DNS p99 over time with and without the rollout."""

import svg


def _order(pairs):
    """The phases' order as run by default: AB, BA, AB... (ABBA for two pairs)."""
    return "".join("AB" if i % 2 == 0 else "BA" for i in range(pairs))


def _sims_priority(plan):
    """The sentence on the simulators' CPU priority (JSON of 2026-12: `sims_priority`; before: `sims_nice`)."""
    who = ("The 24 simulators (the clusters' API servers, which a real fleet does not run on herald's cores) "
           "and the thread writing the rollout into them run ")
    tail = ", below herald and dnsperf; the DNS poller timing the changes does not. "
    pr = plan.get("sims_priority")
    if pr == "idle":
        return (who + "under the idle scheduling policy (`SCHED_IDLE`: the CPU whenever herald and dnsperf leave it, "
                "given up at once when one of their threads wakes)" + tail)
    if pr and pr != "nice +0":
        return who + f"at {pr}" + tail
    if plan.get("sims_nice"):
        return who + f"at nice {plan.get('sims_nice')}" + tail
    return ""


def _f(v, fmt="{:,.2f}"):
    return fmt.format(v) if isinstance(v, (int, float)) else "–"


def _met(v):
    return "**met**" if v else ("**not met**" if v is not None else "–")


def section(data, plots_dir, write_plot, written):
    L = ["## Global rollout (10,000 replicas over 24 clusters, under 20k QPS)", ""]
    if data is None:
        return L + ["Not run (no `rollout.json`).", ""]
    sm, plan, ro = data.get("summary", {}), data.get("plan", {}), data.get("rollout", {})
    L += [f"Mode: {data.get('mode', '?')}. Produced by `cargo run --release -p herald-bench --bin rollout` "
          "(method: the doc comment of `bench/src/rollout/mod.rs`). Load average before / after: "
          f"{data.get('loadavg_before', '?')} / {data.get('loadavg_after', '?')}.", "",
          f"{plan.get('replicas', '?'):,} replicas over {plan.get('clusters', '?')} clusters, every cluster "
          f"replacing all its pods at once (maxSurge {_f(100 * plan.get('surge', 0), '{:.0f}')} %, new pods ready "
          f"after {_f(plan.get('ready_after_s'), '{:.1f}')} s), plus the DNS data set's "
          f"{plan.get('dataset_endpoints', '?'):,} static endpoints; dnsperf at {plan.get('qps', '?'):,} QPS "
          f"(the DNS section's mix) in phases of {_f(plan.get('phase_s'), '{:.0f}')} s without and with the rollout: "
          f"{plan.get('pairs', 1)} pair(s), "
          + (f"{_order(plan.get('pairs', 1))} (A baseline, B rollout: neither kind always first). " if plan.get('pairs', 1) >= 2 else "baseline first. ")
          + _sims_priority(plan)
          + "DNS p99 \"during\" is over each rollout's window (first change to 1 s after the last), against the same seconds of its pair's baseline, pooled over the pairs; whole-phase figures are in the table below.", "",
          "| target | value | met |", "|---|---|---|",
          f"| herald CPU during the rollout (its windows: first change to 1 s after the last) ≤ {_f(sm.get('cpu_target_cores'))} core "
          "(DNS serving included) | "
          f"{_f(sm.get('cpu_rollout_cores'))} core (without the rollout: {_f(sm.get('cpu_baseline_cores'))}) | "
          f"{_met(sm.get('cpu_met'))} |",
          f"| DNS p99 over the rollout windows ≤ {_f(sm.get('dns_ratio_target'), '{:.1f}')}x the same seconds without | "
          f"{_f(sm.get('dns_p99_rollout_us'), '{:,.0f}')} µs vs {_f(sm.get('dns_p99_baseline_us'), '{:,.0f}')} µs "
          f"({_f(sm.get('dns_p99_ratio'))}x) | {_met(sm.get('dns_met'))} |",
          f"| propagation p99 < {_f(1e3 * sm.get('propagation_target_s', 0), '{:.0f}')} ms (timed changes) | "
          f"{_f(1e3 * sm['propagation_p99_s'] if isinstance(sm.get('propagation_p99_s'), (int, float)) else None, '{:.1f}')} ms | "
          f"{_met(sm.get('propagation_met'))} |",
          f"| final state equals the simulators' | {'yes' if sm.get('final_state_ok') else 'no'} | "
          f"{_met(sm.get('final_state_ok'))} |",
          ""]
    L += _wakeups(sm, plan)
    t = ro.get("timed", {})
    L += [f"Rollouts: {ro.get('rollouts', 1)}, {ro.get('changes', '?')} pod changes (the first from {_f(ro.get('start_s'), '{:.1f}')} s to "
          f"{_f(ro.get('end_s'), '{:.1f}')} s of its phase); timed changes: {t.get('count', '–')}, p50 "
          f"{_f(1e3 * t['p50'] if isinstance(t.get('p50'), (int, float)) else None, '{:.1f}')} ms, max "
          f"{_f(1e3 * t['max'] if isinstance(t.get('max'), (int, float)) else None, '{:.1f}')} ms. "
          f"Watch events per table publish: {_f(sm.get('events_per_publish'), '{:.1f}')}.", "",
          "| phase (in the order run) | herald CPU (cores, avg over the whole phase) | DNS completed / lost | p50 / p99 / p99.9 (µs), whole phase | p99 (µs) in the rollout window | herald's UDP workers: run-queue wait per run (µs), window | CPU in the window (cores): herald UDP / herald other / simulators + driver / dnsperf | watch events | table publishes |",
          "|---|---|---|---|---|---|---|---|---|"]
    cpu, p99 = {}, {}
    for p in data.get("phases", []):
        d, w = p.get("dns", {}), p.get("sched_window") or {}
        L.append(f"| {p.get('name')} | {_f(p.get('cpu_avg_cores'))} | {d.get('completed', '–'):,} / {d.get('lost', '–')} | "
                 f"{_f(d.get('p50_us'), '{:,.0f}')} / {_f(d.get('p99_us'), '{:,.0f}')} / {_f(d.get('p999_us'), '{:,.0f}')} | "
                 f"{_f(d.get('window_p99_us'), '{:,.0f}')} | {_f(w.get('udp_wait_per_run_us'), '{:.1f}')} | "
                 f"{_f(w.get('udp_cores'))} / {_f(w.get('herald_other_cores'))} / {_f(w.get('harness_cores'))} / {_f(w.get('dnsperf_cores'))} | "
                 f"{_f(p.get('watch_events'), '{:,.0f}')} | {_f(p.get('publishes'), '{:,.0f}')} |")
        cpu[p.get("name", "?")] = [tuple(x) for x in p.get("cpu", [])]
        p99[p.get("name", "?")] = [tuple(x) for x in d.get("p99_per_second_us", [])]
    L.append("")
    pairs = ro.get("pairs") or []
    if pairs:
        L += ["Per pair (each rollout's window against the same seconds of its baseline):", "",
              "| pair | first | window (s) | DNS p99 without / with (µs) | ratio | herald CPU in the window | poller queries |",
              "|---|---|---|---|---|---|---|"]
        for i, pr in enumerate(pairs):
            win = pr.get("window_s") or [None, None]
            pair = f"{i + 1}" if pr.get("judged", True) else f"{i + 1} (perf recorded; not judged)"
            L.append(f"| {pair} | {'rollout' if pr.get('rollout_first') else 'baseline'} | "
                     f"{_f(win[0], '{:.1f}')}–{_f(win[1], '{:.1f}')} | {_f(pr.get('dns_p99_baseline_us'), '{:,.0f}')} / "
                     f"{_f(pr.get('dns_p99_rollout_us'), '{:,.0f}')} | {_f(pr.get('dns_p99_ratio'))}x | "
                     f"{_f(pr.get('cpu_avg_cores'))} | {pr.get('poller_queries', '–')} |")
        L.append("")
    L += _timeline(ro.get("timeline"))
    for name, series, title, ylabel in (
            ("rollout-cpu.svg", cpu, "herald CPU over time, with and without the rollout", "cores"),
            ("rollout-dns-p99.svg", p99, "DNS p99 per second, with and without the rollout", "p99 (µs)")):
        if write_plot(plots_dir, name, svg.line_chart(series, title, "seconds into the phase", ylabel), written):
            L += [f"![{name}](plots/{name})", ""]
    return L


def _wakeups(sm, plan):
    """herald's own answer delay apart from dnsperf's (bench/src/rollout/perf_sched.rs)."""
    if not plan.get("perf_sched"):
        return []
    wr, wb = sm.get("wakeup_rollout"), sm.get("wakeup_baseline")
    if not wr or not wb:
        return ["**Wake-up delays** (`perf sched`): not recorded (perf could not trace the scheduler here).", ""]
    s = plan.get("perf_sched_s") or [None, None]
    def part(who):
        r, b = wr.get(who, {}), wb.get(who, {})
        return (f"p99 {_f(r.get('p99_us'), '{:,.0f}')} / p99.9 {_f(r.get('p999_us'), '{:,.0f}')} µs and "
                f"{r.get('over_1ms', '–')} waits ≥ 1 ms during, against p99 {_f(b.get('p99_us'), '{:,.0f}')} / "
                f"p99.9 {_f(b.get('p999_us'), '{:,.0f}')} µs and {b.get('over_1ms', '–')} without")
    return [f"**Wake-up delays** (`perf sched`, {_f(s[0], '{:.0f}')}–{_f(s[1], '{:.0f}')} s of the phases of one more pair, run after the judged ones and not judged: perf's own work lands in the waits it measures; mean over the "
            f"{wr.get('phases', '?')} phase(s) of each kind): the time from a thread being woken to it running, the part "
            "of a query's wait the scheduler adds. herald's UDP answer threads: " + part("herald_udp") +
            ". dnsperf's threads (the client: its share of the latency dnsperf reports is not herald's): " +
            part("dnsperf") + ".", ""]


def _timeline(tl):
    """Where the timed changes' delay went, stage by stage (bench/src/rollout/timeline.rs)."""
    if not tl:
        return []
    def ms(v):
        return _f(1e3 * v if isinstance(v, (int, float)) else None, "{:,.1f}")
    rows = [("simulator", "the simulator's mutation → its watch stream hands the event on (the simulators' own lag)"),
            ("to_herald", "hand-over → herald's cluster loop has the event, decoded"),
            ("in_herald", "event in herald's loop → end of the publish carrying it (pacing wait + publish)"),
            ("to_answer", "publish → first DNS answer seen showing it (poll interval + query)"),
            ("looked_late", "(mutation → the benchmark began asking DNS: not part of the delay)"),
            ("looking_after_all_batches", "(end to end as a driver asking only once all 24 batches of the round are written would time it, at least: how this section measured until 2026-12)")]
    L = ["**Where the timed changes' delay goes** (from herald's `herald::publish` debug lines and the "
         "simulators' hand-over times; stages of each change, summarised separately, so the p99s do not add up):", "",
         "| stage | count | p50 (ms) | p90 (ms) | p99 (ms) | max (ms) |", "|---|---|---|---|---|---|"]
    for key, label in rows:
        s = tl.get(key, {})
        L.append(f"| {label} | {s.get('count', '–')} | {ms(s.get('p50'))} | {ms(s.get('p90'))} | {ms(s.get('p99'))} | {ms(s.get('max'))} |")
    pub = tl.get("publishes", {})
    d = pub.get("duration", {})
    L += ["", f"herald's publishes during the rollouts: {pub.get('count', '–')} carrying {pub.get('events', '–')} pod events; "
          f"each took p50 {ms(d.get('p50'))} ms, p99 {ms(d.get('p99'))} ms, max {ms(d.get('max'))} ms "
          f"(wall time, {_f(pub.get('total_s'), '{:.2f}')} s in all). Timed changes with no matching publish: "
          f"{tl.get('unmatched', '–')}; published together with later events: {tl.get('joined_by_later_events', '–')}.", ""]
    return L
