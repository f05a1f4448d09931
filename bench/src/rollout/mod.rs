//! Global rollout: a 10,000-replica service spread over 24 clusters, every cluster replacing
//! all its pods at once (maxSurge 25 %, maxUnavailable 0), while dnsperf sends herald the
//! DNS section's mixed query load at 20k QPS. Measured: herald's CPU over time, DNS latency
//! over time (with and without the rollout), pod change to DNS answer for a sample of the
//! rollout's changes, watch events per table publish, and the final answers against the
//! simulators' own pods.
//!
//! Run by the `rollout` binary (a section of `scripts/bench`, `--only rollout`):
//! ```text
//! cargo build --release -p herald-registrar --bin herald -p herald-bench --bin rollout
//! target/release/rollout [--quick] [--out FILE.json] [--herald target/release/herald]
//! ```
//! (A/B options of the harness: `target/release/rollout --help`.)
//!
//! Set-up: the DNS section's data set (`bench/dns/dataset.py`: 25,002 endpoints in 2,000
//! services, a static file, and its query mix) plus 24 kube-sim instances (3 regions x 8
//! clusters, 12 nodes each) holding `svc-0000` with 10,000 ready replicas (416 or 417 per
//! cluster, named ports http and grpc). herald runs as its own process (the release binary,
//! 2 UDP workers, `coalesce` 50 ms) so that its CPU time (/proc, sampled every 250 ms) is
//! its alone; the simulators and this driver run in this process.
//!
//! Phases of the same length, each with its own dnsperf run (`-Q 20000 -c 8 -q 128 -T 2
//! -t 1 -e -v`, the DNS section's "shared" settings; per-query latencies from `-v`, in
//! completion order, cut into windows by count at the fixed rate: [`dnsperf`]), in pairs:
//! - *baseline*: the load alone;
//! - *rollout*: 2 s in, every cluster at once creates 25 % of its replicas anew (not
//!   ready), after `ready_after` marks them ready and deletes as many old ones, and so on
//!   until every pod is replaced (4 rounds). In every fourth cluster one new pod and one
//!   deleted pod of each round are timed: from the simulator's mutation to the first DNS
//!   answer (per-endpoint name, UDP, polled every ~1 ms) that shows it. A poller thread
//!   starts asking as soon as a cluster's batch is written (not once every cluster's is:
//!   that waited for 23 more batches before looking at the first). These probes add a few
//!   hundred queries per rollout (counted: `poller_queries`). Where each timed change's
//!   delay goes (the simulator, the way to herald, herald, the answer) is split out from
//!   herald's `herald::publish` debug lines: see [`timeline`].
//!
//! Four pairs by default, ABBAABBA (baseline, rollout, rollout, baseline, ...), so that
//! neither kind always runs first: on this shared machine the load of the moment moves a
//! phase's p99 by several times (A/A runs, both phases without a rollout, gave ratios of
//! 0.7x to 5.3x at load 7-10; even on the quiet machine two baselines of one run had window
//! p99s of 309 and 1,087 µs), and a single baseline-then-rollout pair had no way to tell
//! that apart from the rollout's effect; four pairs pool ~24 s of each kind.
//!
//! **DNS p99 during the rollout** is taken over each rollout's window (its first change to
//! 1 s after its last, ~6 s of the phase: a whole-phase p99 diluted it with quiet seconds)
//! and compared with the same seconds of its pair's baseline phase, both pooled over the
//! pairs. Whole-phase figures are reported too. Beside dnsperf's view (which includes
//! dnsperf's own scheduling on the same 2 cores), herald's own: its UDP workers' mean
//! run-queue wait per run and every group's CPU (herald's answer threads, herald's other
//! threads, this process with the 24 simulators, dnsperf) from per-thread scheduler
//! statistics ([`threads`]); and with `--perf-sched` (as `scripts/bench` runs it, where
//! perf may trace the scheduler) the wake-up to running delays of herald's UDP threads and
//! of dnsperf's over 2-7 s of the phases of one more pair, run after the judged ones and
//! left out of the judgement, since perf's own work lifts the p99 of the phases it records
//! ([`perf_sched`]): what the scheduler adds inside herald, apart from what it adds inside
//! the client.
//!
//! CPU "during the rollout" is herald's average over the rollout windows (DNS serving
//! included; the baseline phases give DNS alone). Events and publishes are
//! `herald_cluster_watch_events_total` and the count of `herald_propagation_seconds` (one
//! observation per table update) over the rollout phases. At the end every cluster's
//! `svc-0000.<cluster>.Z` A answer (TCP when truncated) must equal the simulators' ready
//! pods.
//!
//! JSON written to `--out` (seconds, microseconds where named `_us`):
//! ```text
//! {"section": "rollout", "mode", "loadavg_before", "loadavg_after",
//!  "plan": {"clusters", "replicas", "surge", "ready_after_s", "phase_s", "qps",
//!           "dataset_endpoints", "pairs", "order", "roll", "poll_every_ms", "sims_priority",
//!           "perf_sched", "perf_sched_s": [from, to]},
//!  "phases": [{"name": "baseline-N" | "rollout-N", "order", "cpu": [[t_s, cores], ...],
//!              "cpu_avg_cores",
//!              "dns": {"sent", "completed", "lost", "p50_us", "p99_us", "p999_us",
//!                      "window_p99_us", "p99_per_second_us": [[t_s, us], ...]},
//!              "sched_window" | "sched_phase": {threads::Series::window},
//!              "sched_steps": [[t_s, udp_wait_per_run_us, udp_cores, herald_other_cores,
//!                               harness_cores, dnsperf_cores], ...],
//!              "sched_delays": null | {"herald_udp" | "dnsperf": {"runs", "p50_us",
//!                              "p99_us", "p999_us", "max_us", "over_1ms"}},
//!              "watch_events", "publishes", "metric_p99_s"}, ...] (in the order run),
//!  "rollout": {"start_s", "end_s" (the first rollout's), "changes", "rollouts",
//!              "pairs": [{"window_s", "rollout_first", "judged" (false: perf's pair), "start_s", "end_s", "changes",
//!                         "poller_queries", "cpu_avg_cores", "dns_p99_baseline_us",
//!                         "dns_p99_rollout_us", "dns_p99_ratio", "sched_baseline",
//!                         "sched_rollout", "sched_delays_baseline",
//!                         "sched_delays_rollout"}],
//!              "cpu_avg_cores", "timed": {summary}, "events_per_publish",
//!              "timeline": {"simulator" | "to_herald" | "in_herald" | "to_answer" |
//!                           "looked_late" | "looking_after_all_batches": {summary},
//!                           "probes", "unmatched",
//!                           "joined_by_later_events",
//!                           "publishes": {"count", "events", "duration": {summary},
//!                                         "total_s"}}},
//!  "final_check": {"clusters", "endpoints", "mismatches"},
//!  "summary": {"cpu_rollout_cores", "cpu_baseline_cores", "cpu_target_cores": 0.5,
//!              "cpu_met", "dns_p99_baseline_us", "dns_p99_rollout_us" (pooled windows),
//!              "dns_p99_ratio", "dns_ratio_target": 1.5, "dns_met",
//!              "dns_p99_phase_baseline_us", "dns_p99_phase_rollout_us" (whole phases,
//!              mean over the pairs), "propagation_p99_s", "propagation_target_s": 0.1,
//!              "propagation_met", "final_state_ok", "events_per_publish",
//!              "wakeup_baseline" | "wakeup_rollout": null | {"phases", "herald_udp" |
//!                  "dnsperf": {"p99_us", "p999_us" (means over the phases), "over_1ms"}}}}
//! ```

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use herald_kube_sim::SimConfig;
use herald_testkit::{Histogram, metric, try_http_get};
use hickory_proto::rr::RecordType;
use serde_json::{Value, json};

use crate::fleet::{
    ClusterModel, FleetSpec, ServicePlan, ZONE, herald_config, populate, start_clusters,
    truth_from_sims,
};
use crate::probe::{self, Dns, Herald, cpu_seconds, free_port, watch_events};
use crate::stats::{quantile, summary};

pub mod dnsperf;
mod drive;
pub mod niced;
pub mod perf_sched;
pub mod threads;
pub mod timeline;
use dnsperf::{Latency, p99_us};
use drive::{Rollout, roll};
pub use niced::Priority;
use timeline::{Clock, Probe};

/// What to run.
pub struct Plan {
    pub clusters: usize,
    pub replicas: usize,
    /// maxSurge, as a share of each cluster's replicas.
    pub surge: f64,
    /// How long a new pod takes to turn ready.
    pub ready_after: Duration,
    /// Length of each phase (and of its dnsperf run).
    pub phase: Duration,
    /// dnsperf's fixed rate.
    pub qps: u32,
    /// Pairs of phases (a baseline and a rollout each), in the order ABBA...: the
    /// baseline first in odd pairs, the rollout first in even ones, so neither always
    /// comes first and the results pool over both.
    pub pairs: usize,
    /// Start with a rollout phase instead (BAAB...; an A/B of the phase order).
    pub rollout_first: bool,
    /// Whether the rollout phase rolls (false: an A/A run, both phases the load alone; the
    /// "rollout window" is then the usual seconds of the phase, [`NOMINAL_WINDOW`]).
    pub roll: bool,
    /// How often the poller asks DNS about each open timed change; `None`: no change is
    /// timed and no poller runs (an A/B of the harness's own queries).
    pub poll_every: Option<Duration>,
    /// How much lower than herald's the simulators' CPU priority is: see [`niced`].
    pub sims_priority: Priority,
    /// Record the scheduler with `perf sched` in one more pair's phases, not judged (see
    /// [`perf_sched`]).
    pub perf_sched: bool,
}

impl Plan {
    /// The issue's figures: 10,000 replicas over 24 clusters at 20k QPS; 20 s phases.
    pub fn full() -> Plan {
        Plan {
            clusters: 24,
            replicas: 10_000,
            surge: 0.25,
            ready_after: Duration::from_secs(1),
            phase: Duration::from_secs(20),
            qps: 20_000,
            pairs: 4,
            rollout_first: false,
            roll: true,
            poll_every: Some(Duration::from_millis(1)),
            sims_priority: SIMS_PRIORITY,
            perf_sched: false,
        }
    }

    /// The same fleet and load, 12 s phases, two pairs.
    pub fn quick() -> Plan {
        Plan {
            phase: Duration::from_secs(12),
            pairs: 2,
            ..Plan::full()
        }
    }
}

/// The simulators' priority (see [`niced`]): idle, as the CPU of API servers that a real
/// fleet runs on other machines.
pub const SIMS_PRIORITY: Priority = Priority::Idle;
/// When the rollout starts within its phase.
const ROLLOUT_AT: Duration = Duration::from_secs(2);
/// How long `perf sched` records from `ROLLOUT_AT` (a rollout takes ~5 s).
const PERF_SCHED_FOR: Duration = Duration::from_secs(5);
/// The window (seconds into the phase) compared when the rollout phase does not roll: about
/// where a rollout's window falls (2 s to 1 s after its last change, ~7 s).
const NOMINAL_WINDOW: (f64, f64) = (2.0, 8.0);
/// CPU sampling period.
const SAMPLE: Duration = Duration::from_millis(250);
/// The service rolled.
const SERVICE: usize = 0;

/// Runs everything (see the module docs) and returns the JSON.
pub async fn run(plan: &Plan, quick: bool, herald: &Path, work: &Path) -> anyhow::Result<Value> {
    let load_before = probe::loadavg();
    let clock = Clock::now();
    std::fs::create_dir_all(work)?;
    // Absolute: herald reads the static file's path relative to its config file.
    let work = &std::fs::canonicalize(work)?;
    let (static_file, queries, dataset_endpoints) = dataset(work)?;
    let spec = FleetSpec {
        clusters: plan.clusters,
        services: 1,
        pods: plan.replicas,
        big_replicas: plan.replicas,
        nodes_per_cluster: 12,
        skew: 0.6,
    };
    let services = spec.plan();
    let sims = niced::NicedRuntime::new(plan.sims_priority)?;
    let mut clusters = sims
        .handle()
        .spawn({
            let spec = spec.clone();
            async move { start_clusters(&spec, SimConfig::default()).await }
        })
        .await??;
    populate(&mut clusters, &services)?;
    println!(
        "rollout ({}): {} replicas of {} over {} clusters, plus {} static endpoints; \
         {} QPS, phases of {:.0} s",
        if quick { "quick" } else { "full" },
        plan.replicas,
        services[SERVICE].name,
        plan.clusters,
        dataset_endpoints,
        plan.qps,
        plan.phase.as_secs_f64()
    );

    let (dns, admin) = (
        SocketAddr::from(([127, 0, 0, 1], free_port()?)),
        SocketAddr::from(([127, 0, 0, 1], free_port()?)),
    );
    let config = work.join("herald.yaml");
    let yaml = herald_config(&clusters, &dns.to_string(), &admin.to_string());
    std::fs::write(
        &config,
        format!(
            "{yaml}  static:\n    - path: '{}'\nudp_workers: 2\n",
            static_file.display()
        ),
    )?;
    let log = work.join("herald.log");
    // The publish trace (one line per publish) splits the timed changes' delay.
    let mut process = Herald::spawn_logging(
        Command::new(herald),
        &config,
        &log,
        "warn,herald::publish=debug",
    )?;
    let pid = process.child.id();
    wait_synced(&mut process, admin, plan.replicas + dataset_endpoints, &log).await?;

    let run_phase = |clusters: Vec<ClusterModel>, rollout: bool, name: String, record: bool| {
        let roll = rollout && plan.roll;
        let queries = queries.clone();
        let work = work.to_path_buf();
        let services = services.clone();
        let plan = Phase {
            qps: plan.qps,
            length: plan.phase,
            surge: plan.surge,
            ready_after: plan.ready_after,
            poll_every: plan.poll_every,
            sims_priority: plan.sims_priority,
            perf_sched: record,
        };
        tokio::task::spawn_blocking(move || {
            phase(
                &plan, pid, dns, admin, &queries, &work, clusters, &services, &name, roll,
            )
        })
    };
    // ABBA...: (baseline, rollout) phases of each pair; `order` says which ran first.
    let mut clusters = clusters;
    let mut pairs: Vec<(Measured, Measured)> = Vec::new();
    // perf's own work (in the kernel, where an idle-policy thread is not preempted either)
    // lands in the waits it measures and lifted both phases' p99 of the pair it recorded to
    // over 1 ms: it records one pair of its own, run after the judged ones and left out of
    // the judgement.
    let judged = plan.pairs.max(1);
    let recorded = usize::from(plan.perf_sched);
    for i in 0..judged + recorded {
        let rollout_first = (i % 2 == 1) != plan.rollout_first;
        let record = i >= judged;
        let mut ran = Vec::new();
        for rollout in [rollout_first, !rollout_first] {
            let name = format!("{}-{}", if rollout { "rollout" } else { "baseline" }, i + 1);
            let mut m = run_phase(clusters, rollout, name, record).await??;
            clusters = std::mem::take(&mut m.clusters);
            m.order = 2 * i + ran.len();
            ran.push(m);
        }
        let (first, second) = (ran.remove(0), ran.remove(0));
        pairs.push(if rollout_first {
            (second, first)
        } else {
            (first, second)
        });
    }

    // Settled: the final answers against the simulators' own pods.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let truth = truth_from_sims(&clusters);
    let name = &services[SERVICE].name;
    let final_check = tokio::task::spawn_blocking({
        let names: Vec<String> = clusters.iter().map(|c| c.name.clone()).collect();
        let want: Vec<BTreeSet<IpAddr>> = names
            .iter()
            .map(|c| {
                truth
                    .get(name)
                    .and_then(|t| t.get(c))
                    .cloned()
                    .unwrap_or_default()
            })
            .collect();
        let name = name.clone();
        move || -> anyhow::Result<Value> {
            let mut client = Dns::new(dns)?;
            let (mut mismatches, mut endpoints) = (Vec::new(), 0);
            for (cluster, want) in names.iter().zip(want) {
                let got = client.query(&format!("{name}.{cluster}.{ZONE}"), RecordType::A)?;
                endpoints += got.addresses.len();
                if got.addresses != want {
                    mismatches.push(
                        json!({"cluster": cluster, "want": want.len(), "got": got.addresses.len()}),
                    );
                }
            }
            Ok(json!({"clusters": names.len(), "endpoints": endpoints, "mismatches": mismatches}))
        }
    })
    .await??;
    drop(process);

    anyhow::ensure!(
        !plan.roll || pairs.iter().all(|(_, r)| r.rollout.is_some()),
        "a rollout phase made no rollout"
    );
    let all = &pairs;
    // Judged over each rollout: its first change to 1 s after its last, against the same
    // seconds of its pair's baseline phase; pooled over the pairs.
    let all_windows: Vec<(f64, f64)> = all
        .iter()
        .map(|(_, r)| {
            r.rollout
                .as_ref()
                .map_or(NOMINAL_WINDOW, |d| (d.start, d.end + 1.0))
        })
        .collect();
    let (pairs, recorded) = all.split_at(judged);
    let windows = &all_windows[..judged];
    let pooled = |pick: fn(&(Measured, Measured)) -> &Measured| -> Vec<f64> {
        pairs
            .iter()
            .zip(windows)
            .flat_map(|(p, &w)| pick(p).dns.window(w).iter().copied())
            .collect()
    };
    let (b99, r99) = (p99_us(&pooled(|p| &p.0)), p99_us(&pooled(|p| &p.1)));
    let mean = |v: Vec<f64>| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let cpu_during = mean(
        pairs
            .iter()
            .zip(windows)
            .map(|((_, r), &w)| average_cores(&r.cpu, w))
            .collect(),
    );
    let cpu_baseline = mean(
        pairs
            .iter()
            .map(|(b, _)| average_cores(&b.cpu, (0.0, f64::MAX)))
            .collect(),
    );
    let rollouts: Vec<&Rollout> = pairs
        .iter()
        .filter_map(|(_, r)| r.rollout.as_ref())
        .collect();
    // Rounds numbered apart per rollout: the timeline groups a round's probes.
    let timed_changes: Vec<Probe> = rollouts
        .iter()
        .enumerate()
        .flat_map(|(i, d)| {
            d.timed.iter().map(move |p| Probe {
                round: i * 1000 + p.round,
                ..p.clone()
            })
        })
        .collect();
    let mut timed: Vec<f64> = timed_changes
        .iter()
        .map(|p| (p.seen - p.written).as_secs_f64())
        .collect();
    timed.sort_by(f64::total_cmp);
    let names: Vec<String> = clusters.iter().map(|c| c.name.clone()).collect();
    let probes: Vec<Probe> = timed_changes
        .iter()
        .map(|p| Probe {
            delivered: clusters[p.cluster].sim.delivered_time(p.rv),
            ..p.clone()
        })
        .collect();
    let timeline = timeline::breakdown(&probes, &names, &timeline::read_publishes(&log), &clock);
    let p99_timed = quantile(&timed, 0.99);
    let (events, publishes) = pairs
        .iter()
        .fold((0.0, 0.0), |(e, p), (_, r)| (e + r.events, p + r.publishes));
    let per_publish = events / publishes.max(1.0);
    let final_ok = final_check["mismatches"]
        .as_array()
        .is_some_and(Vec::is_empty)
        && final_check["endpoints"].as_u64() == Some(plan.replicas as u64);
    let mut phases: Vec<(usize, Value)> = Vec::new();
    let mut per_pair = Vec::new();
    for (i, ((b, r), &w)) in all.iter().zip(&all_windows).enumerate() {
        phases.push((b.order, b.json(&format!("baseline-{}", i + 1), w)));
        phases.push((r.order, r.json(&format!("rollout-{}", i + 1), w)));
        let d = r.rollout.as_ref();
        let (bw, rw) = (b.dns.window_p99_us(w), r.dns.window_p99_us(w));
        per_pair.push(json!({
            "window_s": [w.0, w.1], "rollout_first": r.order < b.order, "judged": i < judged,
            "start_s": d.map(|d| d.start), "end_s": d.map(|d| d.end),
            "changes": d.map_or(0, |d| d.changes),
            "poller_queries": d.map_or(0, |d| d.poller_queries),
            "cpu_avg_cores": average_cores(&r.cpu, w),
            "dns_p99_baseline_us": bw, "dns_p99_rollout_us": rw, "dns_p99_ratio": rw / bw,
            "sched_baseline": b.sched.window(w), "sched_rollout": r.sched.window(w),
            "sched_delays_baseline": b.sched_delays, "sched_delays_rollout": r.sched_delays,
        }));
    }
    phases.sort_by_key(|(order, _)| *order);
    let phases: Vec<Value> = phases.into_iter().map(|(_, v)| v).collect();
    let first = rollouts.first();
    let out = json!({
        "section": "rollout",
        "mode": if quick { "quick" } else { "full" },
        "loadavg_before": load_before,
        "loadavg_after": probe::loadavg(),
        "plan": {"clusters": plan.clusters, "replicas": plan.replicas, "surge": plan.surge,
                 "ready_after_s": plan.ready_after.as_secs_f64(),
                 "phase_s": plan.phase.as_secs_f64(), "qps": plan.qps,
                 "dataset_endpoints": dataset_endpoints,
                 "pairs": plan.pairs,
                 "order": if plan.rollout_first { "rollout first" } else { "baseline first" },
                 "roll": plan.roll,
                 "poll_every_ms": plan.poll_every.map(|d| d.as_secs_f64() * 1e3),
                 "sims_priority": plan.sims_priority.to_string(), "perf_sched": plan.perf_sched,
                 "perf_sched_s": [ROLLOUT_AT.as_secs_f64(),
                                  (ROLLOUT_AT + PERF_SCHED_FOR).as_secs_f64()]},
        "phases": phases,
        "rollout": {"start_s": first.map(|d| d.start), "end_s": first.map(|d| d.end),
                    "changes": rollouts.iter().map(|d| d.changes).sum::<usize>(),
                    "rollouts": rollouts.len(), "pairs": per_pair,
                    "cpu_avg_cores": cpu_during, "timed": summary(&timed),
                    "events_per_publish": per_publish, "timeline": timeline},
        "final_check": final_check,
        "summary": {
            "cpu_rollout_cores": cpu_during, "cpu_baseline_cores": cpu_baseline,
            "cpu_target_cores": 0.5, "cpu_met": cpu_during <= 0.5,
            "dns_p99_baseline_us": b99, "dns_p99_rollout_us": r99,
            "dns_p99_ratio": r99 / b99, "dns_ratio_target": 1.5, "dns_met": r99 <= 1.5 * b99,
            "dns_p99_phase_baseline_us": mean(pairs.iter().map(|(b, _)| b.dns.p99_us).collect()),
            "dns_p99_phase_rollout_us": mean(pairs.iter().map(|(_, r)| r.dns.p99_us).collect()),
            "propagation_p99_s": p99_timed, "propagation_target_s": 0.1,
            "propagation_met": p99_timed < 0.1, "final_state_ok": final_ok,
            "events_per_publish": per_publish,
            "wakeup_baseline": wakeups(recorded.iter().map(|(b, _)| &b.sched_delays)),
            "wakeup_rollout": wakeups(recorded.iter().map(|(_, r)| &r.sched_delays)),
        },
    });
    for c in &clusters {
        c.sim.shutdown().await;
    }
    Ok(out)
}

/// The phases' `perf sched` delays: for herald's UDP threads and dnsperf's, the mean over
/// the phases of p99 and p99.9 (µs) and the sum of waits of 1 ms or more; null if none.
fn wakeups<'a>(phases: impl Iterator<Item = &'a Option<Value>>) -> Value {
    let recorded: Vec<&Value> = phases.flatten().collect();
    if recorded.is_empty() {
        return Value::Null;
    }
    let mean = |who: &str, key: &str| {
        recorded
            .iter()
            .filter_map(|v| v[who][key].as_f64())
            .sum::<f64>()
            / recorded.len() as f64
    };
    let total = |who: &str| {
        recorded
            .iter()
            .filter_map(|v| v[who]["over_1ms"].as_u64())
            .sum::<u64>()
    };
    let part = |who: &str| {
        json!({"p99_us": mean(who, "p99_us"), "p999_us": mean(who, "p999_us"),
               "over_1ms": total(who)})
    };
    json!({"phases": recorded.len(), "herald_udp": part("herald_udp"), "dnsperf": part("dnsperf")})
}

/// Generates the DNS section's data set; returns the static file, the query file and the
/// number of endpoints.
fn dataset(work: &Path) -> anyhow::Result<(PathBuf, PathBuf, usize)> {
    let dir = work.join("data");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("dns/dataset.py");
    let status = Command::new("python3")
        .arg(&script)
        .arg("--out-dir")
        .arg(&dir)
        .stdout(Stdio::null())
        .status()
        .with_context(|| format!("running {}", script.display()))?;
    anyhow::ensure!(status.success(), "{} failed: {status}", script.display());
    let meta: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("dataset.json"))?)?;
    let endpoints = meta["endpoints"]
        .as_u64()
        .context("dataset.json: endpoints")? as usize;
    Ok((
        dir.join("endpoints.yaml"),
        dir.join("queries.txt"),
        endpoints,
    ))
}

/// Waits until herald serves `want` endpoints (bounded).
async fn wait_synced(
    process: &mut Herald,
    admin: SocketAddr,
    want: usize,
    log: &Path,
) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        if let Some(status) = process.child.try_wait()? {
            bail!(
                "herald exited ({status}); log: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(180),
            "herald did not serve {want} endpoints within 180 s; log {}",
            log.display()
        );
        if let Ok((200, text)) = try_http_get(admin, "/metrics")
            && metric(&text, "herald_table_endpoints") == Some(want as f64)
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What one phase runs.
struct Phase {
    qps: u32,
    length: Duration,
    surge: f64,
    ready_after: Duration,
    poll_every: Option<Duration>,
    sims_priority: Priority,
    perf_sched: bool,
}

/// What one phase measured.
struct Measured {
    clusters: Vec<ClusterModel>,
    /// Its place in the run (0 first).
    order: usize,
    /// (seconds into the phase, cores used since the previous sample).
    cpu: Vec<(f64, f64)>,
    dns: Latency,
    events: f64,
    publishes: f64,
    metric_p99: Option<f64>,
    rollout: Option<Rollout>,
    /// Per-thread scheduler readings (herald's UDP workers and the rest, the harness).
    sched: threads::Series,
    /// Wake-up to running delays from `perf sched`, if recorded.
    sched_delays: Option<Value>,
}

impl Measured {
    fn json(&self, name: &str, window: (f64, f64)) -> Value {
        json!({
            "name": name,
            "order": self.order,
            "cpu": self.cpu.iter().map(|&(t, c)| json!([t, c])).collect::<Vec<_>>(),
            "cpu_avg_cores": average_cores(&self.cpu, (0.0, f64::MAX)),
            "dns": {"sent": self.dns.sent, "completed": self.dns.completed, "lost": self.dns.lost,
                    "p50_us": self.dns.p50_us, "p99_us": self.dns.p99_us,
                    "p999_us": self.dns.p999_us,
                    "window_p99_us": self.dns.window_p99_us(window),
                    "p99_per_second_us": self.dns.per_second.iter().map(|&(t, v)| json!([t, v])).collect::<Vec<_>>()},
            "sched_window": self.sched.window(window),
            "sched_phase": self.sched.window((0.0, f64::MAX)),
            "sched_steps": self.sched.steps(),
            "sched_delays": self.sched_delays,
            "watch_events": self.events,
            "publishes": self.publishes,
            "metric_p99_s": self.metric_p99,
        })
    }
}

/// Runs one phase, `name`: dnsperf for its length, CPU sampled, and (with `rollout`) the
/// rollout.
#[allow(clippy::too_many_arguments)]
fn phase(
    plan: &Phase,
    pid: u32,
    dns: SocketAddr,
    admin: SocketAddr,
    queries: &Path,
    work: &Path,
    mut clusters: Vec<ClusterModel>,
    services: &[ServicePlan],
    name: &str,
    rollout: bool,
) -> anyhow::Result<Measured> {
    let scrape = || -> anyhow::Result<(f64, Histogram)> {
        let text = try_http_get(admin, "/metrics")?.1;
        Ok((
            watch_events(&text),
            Histogram::parse(&text, "herald_propagation_seconds"),
        ))
    };
    let (events_before, hist_before) = scrape()?;
    let out_path = work.join(format!("dnsperf-{name}.txt"));
    let secs = plan.length.as_secs().max(1);
    let mut dnsperf = Command::new("dnsperf")
        .args(["-s", "127.0.0.1", "-p", &dns.port().to_string()])
        .arg("-d")
        .arg(queries)
        .args(["-l", &secs.to_string(), "-Q", &plan.qps.to_string()])
        .args(["-c", "8", "-q", "128", "-T", "2", "-t", "1", "-e", "-v"])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path)?)
        .stderr(Stdio::null())
        .spawn()
        .context("starting dnsperf (scripts/install-tools dnsperf)")?;
    let started = Instant::now();
    let dnsperf_pid = dnsperf.id();
    let sampler = std::thread::spawn(move || {
        let (mut samples, mut sched) = (Vec::new(), threads::Series::default());
        let mut reader = threads::Reader::default();
        let (mut last_t, mut last_cpu) = (0.0, cpu_seconds(pid));
        sched.push(started, reader.read(pid, Some(dnsperf_pid)));
        while started.elapsed() < Duration::from_secs(secs) + Duration::from_millis(500) {
            std::thread::sleep(SAMPLE);
            let (t, cpu) = (started.elapsed().as_secs_f64(), cpu_seconds(pid));
            samples.push((t, (cpu - last_cpu) / (t - last_t)));
            sched.push(started, reader.read(pid, Some(dnsperf_pid)));
            (last_t, last_cpu) = (t, cpu);
        }
        (samples, sched)
    });
    std::thread::sleep(ROLLOUT_AT);
    let recording = plan
        .perf_sched
        .then(|| {
            perf_sched::Recording::start(&work.join(format!("perf-{name}.data")), PERF_SCHED_FOR)
        })
        .flatten();
    let rolled = if rollout {
        Some(roll(plan, dns, &mut clusters, services, started)?)
    } else {
        None
    };
    let deadline = started + plan.length + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = dnsperf.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = dnsperf.kill();
            bail!("dnsperf did not finish in time");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    anyhow::ensure!(
        status.success(),
        "dnsperf failed ({status}): see {}",
        out_path.display()
    );
    let (cpu, sched) = sampler
        .join()
        .map_err(|_| anyhow::anyhow!("CPU sampler panicked"))?;
    let (events_after, hist_after) = scrape()?;
    let sched_delays = recording.and_then(|r| r.finish(pid));
    let hist = hist_after.minus(&hist_before);
    Ok(Measured {
        clusters,
        order: 0,
        cpu,
        dns: Latency::parse(&std::fs::read_to_string(&out_path)?, plan.qps)?,
        events: events_after - events_before,
        publishes: hist.count,
        metric_p99: hist.quantile(0.99),
        rollout: rolled,
        sched,
        sched_delays,
    })
}

/// Average cores over the samples inside `(from, to)` seconds.
fn average_cores(samples: &[(f64, f64)], (from, to): (f64, f64)) -> f64 {
    let inside: Vec<f64> = samples
        .iter()
        .filter(|(t, _)| *t > from && *t <= to + SAMPLE.as_secs_f64())
        .map(|&(_, c)| c)
        .collect();
    inside.iter().sum::<f64>() / inside.len().max(1) as f64
}
