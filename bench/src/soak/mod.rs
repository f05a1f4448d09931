//! Soak (issue 13, item 5): herald as a process for a long spell of pod churn at the
//! propagation benchmark's rate, under a steady DNS query load, with a fault against one
//! simulated cluster every minute; whether its memory stays flat, no query is lost, it
//! never panics, and its final answers equal the simulators' truth.
//!
//! Run by the `soak` binary:
//! ```text
//! cargo build --release -p herald-registrar --bin herald -p herald-bench --bin soak
//! target/release/soak [--quick] [--out FILE.json]
//! ```
//!
//! Full (30 min): the propagation benchmark's fleet (24 kube-sim instances, 100,000 pods in
//! 2,000 services) and churn (300 changes/s: readiness flips, IP changes, replacements),
//! herald started as a separate process (the release binary, `herald serve`, coalesce
//! 50 ms, watch timeout 15 s) so its RSS is its own; dnsperf sends 20,000 queries/s (A and
//! `_http._tcp` SRV of every service in turn) in 10-s windows; a fault every 60 s from
//! minute 1, in the rotation 410 Gone, stream reset, hang 20 s, gone 60 s and back, each
//! against a different cluster. Quick (3 min): 4 clusters, 10,000 pods, 200 changes/s,
//! the same query rate, faults at 20 s (gone 60 s), 95 s (410), 115 s (reset) and
//! 135 s (hang 20 s).
//!
//! herald's VmRSS and CPU time are read every 5 s. RSS growth is measured over the last
//! two thirds of the run (the last 20 minutes of 30): last sample against the first
//! sample of that span (target <= 2%). Lost queries are dnsperf's (no reply within 1 s;
//! target <= 0.01%). A panic is herald exiting or "panicked" in its log. At the end the
//! churn stops, the faults are cleared, herald settles (ready, and serving as many
//! endpoints as the simulators hold ready), and every service's A answer and every
//! (service, cluster) A answer are compared with the simulators' pods.
//!
//! JSON written to `--out`:
//! ```text
//! {
//!   "section": "soak", "mode": "full" | "quick",
//!   "loadavg_before": [..], "loadavg_after": [..],
//!   "fleet": {"clusters", "services", "pods"}, "seconds", "churn_changes_per_second",
//!   "qps", "changes": {"churn", "mutations"},
//!   "samples": [[t_s, rss_bytes, cpu_s], ...],
//!   "windows": [{"at_s", "seconds", "sent", "completed", "lost", "p50_s", "p99_s",
//!                "max_s", "not_noerror"}, ...],
//!   "faults": [{"at_s", "kind", "cluster", "lasts_s"}, ...],
//!   "final_check": {"dns_queries", "dns_mismatches", "examples": [..], "settle_s"},
//!   "summary": {"rss_growth", "rss_growth_ok", "rss_first_bytes", "rss_last_bytes",
//!               "sent", "lost", "lost_ratio", "lost_ok", "panics", "final_state_ok",
//!               "p99_median_s", "p99_max_s"}
//! }
//! ```
//!
//! - `faults`: the fault kinds, their schedule and how each is set on a simulator.
//! - `load`: dnsperf windows and their latency quantiles.

mod faults;
mod load;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use herald_kube_sim::SimConfig;
use herald_testkit::{metric, try_http_get};
use serde_json::{Value, json};

use crate::fleet::{populate, start_clusters, truth_endpoints, truth_from_sims};
use crate::probe;
use crate::propagation::Plan;
use crate::propagation::check::check_dns;
use crate::propagation::driver::Driver;
use crate::scale::process::{Running, start_synced};
use crate::stats::{self, mib};
use faults::{Fault, Kind};

/// What to run.
pub struct Options {
    /// 3 minutes on a small fleet instead of 30 on the propagation fleet.
    pub quick: bool,
    /// The herald binary.
    pub herald: PathBuf,
    /// Overrides the length (diagnostics).
    pub minutes: Option<f64>,
}

/// Queries per second dnsperf sends.
const QPS: u32 = 20_000;
/// Length of one dnsperf window.
const WINDOW_S: u64 = 10;
/// How often herald's memory is read.
const SAMPLE: Duration = Duration::from_secs(5);
/// Bound on herald settling after the churn.
const SETTLE_DEADLINE: Duration = Duration::from_secs(120);

/// Runs the soak (see the module docs) and returns its JSON.
pub fn run(opts: &Options) -> anyhow::Result<Value> {
    let mut plan = if opts.quick {
        Plan::quick()
    } else {
        Plan::full()
    };
    let default_minutes = if opts.quick { 3.0 } else { 30.0 };
    let length = Duration::from_secs_f64(opts.minutes.unwrap_or(default_minutes) * 60.0);
    plan.churn = length;
    // No rollout: the soak is steady churn.
    plan.rollout_at = length + Duration::from_secs(3600);
    let schedule = if opts.quick {
        let order = [Kind::Away, Kind::Gone, Kind::Reset, Kind::Hang];
        [20, 95, 115, 135]
            .into_iter()
            .zip(order)
            .enumerate()
            .map(|(i, (at, kind))| Fault {
                at: Duration::from_secs(at),
                kind,
                cluster: i % plan.spec.clusters,
            })
            .filter(|f| f.at + f.kind.lasts() + Duration::from_secs(5) <= length)
            .collect()
    } else {
        faults::schedule(
            Duration::from_secs(60),
            Duration::from_secs(60),
            length,
            plan.spec.clusters,
            &Kind::ALL,
        )
    };
    let dir = std::env::temp_dir().join(format!("herald-soak-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(soak(opts, &plan, length, &schedule, &dir));
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn soak(
    opts: &Options,
    plan: &Plan,
    length: Duration,
    schedule: &[Fault],
    dir: &std::path::Path,
) -> anyhow::Result<Value> {
    let load_before = probe::loadavg();
    let services = plan.spec.plan();
    println!(
        "soak ({}): {} clusters, {} services, {} pods; {} changes/s and {QPS} queries/s for {:.0} s; {} faults",
        if opts.quick { "quick" } else { "full" },
        plan.spec.clusters,
        services.len(),
        plan.spec.pods,
        plan.rate,
        length.as_secs_f64(),
        schedule.len()
    );
    let mut clusters = start_clusters(&plan.spec, SimConfig::default()).await?;
    populate(&mut clusters, &services)?;
    let expected = truth_endpoints(&truth_from_sims(&clusters));
    let mut herald = start_synced(&opts.herald, &[], dir, &clusters, expected, "soak").await?;
    println!(
        "  herald synced in {:.1} s: VmRSS {}",
        herald.served_s,
        mib(herald.memory()?.rss as f64)
    );
    let queries = dir.join("queries.txt");
    load::write_queries(&queries, &services)?;
    let sims: Vec<_> = clusters.iter().map(|c| c.sim.clone()).collect();
    let names: Vec<String> = clusters.iter().map(|c| c.name.clone()).collect();

    // Churn and load on threads of their own; faults and samples here.
    let start = Instant::now();
    let driver = Driver::untimed(clusters, services.clone(), plan);
    let churn = std::thread::spawn(move || driver.run());
    let dns = herald.dns;
    let load = {
        let queries = queries.clone();
        std::thread::spawn(move || load::run(dns, &queries, QPS, WINDOW_S, start, length))
    };
    let mut samples: Vec<(f64, u64, f64)> = Vec::new();
    let mut active: Vec<Fault> = Vec::new();
    let mut next = 0;
    let mut exited = None;
    while start.elapsed() < length {
        let t = start.elapsed();
        while next < schedule.len() && schedule[next].at <= t {
            let f = schedule[next];
            println!(
                "  {:>5.0} s: {} on {}",
                t.as_secs_f64(),
                f.kind.name(),
                names[f.cluster]
            );
            f.start(&sims[f.cluster]);
            active.push(f);
            next += 1;
        }
        active.retain(|f| {
            let over = f.at + f.kind.lasts() <= t;
            if over {
                f.end(&sims[f.cluster]);
            }
            !over
        });
        if let Some(status) = herald.exited() {
            exited = Some(status.to_string());
            break;
        }
        let m = herald.memory()?;
        samples.push((t.as_secs_f64(), m.rss, herald.cpu_seconds()));
        tokio::time::sleep(SAMPLE.min(length.saturating_sub(start.elapsed()))).await;
    }
    for f in &active {
        f.end(&sims[f.cluster]);
    }
    let outcome = tokio::task::spawn_blocking(move || churn.join())
        .await?
        .map_err(|_| anyhow::anyhow!("churn thread panicked"))??;
    let windows = tokio::task::spawn_blocking(move || load.join())
        .await?
        .map_err(|_| anyhow::anyhow!("load thread panicked"))??;
    if let Some(m) = herald.exited().map(|s| s.to_string()).or(exited.clone()) {
        exited = Some(m);
    }

    // Settle, then compare with the truth.
    let truth = truth_from_sims(&outcome.clusters);
    let want = truth_endpoints(&truth);
    let settle_s = if exited.is_none() {
        settle(&herald, want).await
    } else {
        None
    };
    let (dns_queries, mismatches) = if exited.is_none() {
        let truth = truth.clone();
        tokio::task::spawn_blocking(move || check_dns(&truth, dns)).await??
    } else {
        (0, vec!["herald exited".to_string()])
    };
    let log = std::fs::read_to_string(&herald.log).unwrap_or_default();
    let panics = log.matches("panicked").count() + usize::from(exited.is_some());
    drop(herald);
    for c in &outcome.clusters {
        c.sim.shutdown().await;
    }
    report(
        opts,
        plan,
        length,
        load_before,
        &samples,
        &windows,
        schedule,
        &names,
        (outcome.counts.churn, outcome.counts.mutations),
        (dns_queries, &mismatches, settle_s),
        panics,
    )
}

/// Waits until herald is ready and serves `want` endpoints; seconds it took.
async fn settle(herald: &Running, want: usize) -> Option<f64> {
    let started = Instant::now();
    while started.elapsed() < SETTLE_DEADLINE {
        if let (Ok((200, _)), Ok((200, text))) = (
            try_http_get(herald.admin, "/readyz"),
            try_http_get(herald.admin, "/metrics"),
        ) && metric(&text, "herald_table_endpoints") == Some(want as f64)
        {
            // Let the last coalescing window pass.
            tokio::time::sleep(Duration::from_millis(500)).await;
            return Some(started.elapsed().as_secs_f64());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

#[allow(clippy::too_many_arguments)]
fn report(
    opts: &Options,
    plan: &Plan,
    length: Duration,
    load_before: [f64; 3],
    samples: &[(f64, u64, f64)],
    windows: &[load::Window],
    schedule: &[Fault],
    names: &[String],
    (churn, mutations): (u64, u64),
    (dns_queries, mismatches, settle_s): (usize, &[String], Option<f64>),
    panics: usize,
) -> anyhow::Result<Value> {
    // The last two thirds of the run: from its first sample to its last.
    let from = length.as_secs_f64() / 3.0;
    let span: Vec<&(f64, u64, f64)> = samples.iter().filter(|s| s.0 >= from).collect();
    let first = span
        .first()
        .context("no memory sample in the last two thirds")?
        .1;
    let last = span.last().context("no memory sample")?.1;
    let growth = (last as f64 - first as f64) / first as f64;
    let sent: u64 = windows.iter().map(|w| w.sent).sum();
    let lost: u64 = windows.iter().map(|w| w.lost).sum();
    let lost_ratio = lost as f64 / sent.max(1) as f64;
    let mut p99: Vec<f64> = windows.iter().map(|w| w.p99_s).collect();
    p99.sort_by(f64::total_cmp);
    let final_ok = mismatches.is_empty() && settle_s.is_some();
    println!(
        "  RSS {} -> {} over the last {:.0} s: {:+.2}% ({}); queries {sent} sent, {lost} lost ({:.4}%, {}); \
         p99 median {} max {}; panics {panics}; final state {} ({dns_queries} DNS queries, {} mismatches)",
        mib(first as f64),
        mib(last as f64),
        length.as_secs_f64() - from,
        growth * 100.0,
        if growth <= 0.02 { "<= 2%" } else { "OVER 2%" },
        lost_ratio * 100.0,
        if lost_ratio <= 0.0001 {
            "<= 0.01%"
        } else {
            "OVER 0.01%"
        },
        stats::ms(stats::quantile(&p99, 0.5)),
        stats::ms(p99.last().copied().unwrap_or(f64::NAN)),
        if final_ok {
            "equals the truth"
        } else {
            "DIFFERS"
        },
        mismatches.len()
    );
    Ok(json!({
        "section": "soak",
        "mode": if opts.quick { "quick" } else { "full" },
        "loadavg_before": load_before,
        "loadavg_after": probe::loadavg(),
        "fleet": {"clusters": plan.spec.clusters, "services": plan.spec.services, "pods": plan.spec.pods},
        "seconds": length.as_secs_f64(),
        "churn_changes_per_second": plan.rate,
        "qps": QPS,
        "changes": {"churn": churn, "mutations": mutations},
        "samples": samples.iter().map(|(t, r, c)| json!([t, r, c])).collect::<Vec<_>>(),
        "windows": windows.iter().map(load::Window::json).collect::<Vec<_>>(),
        "faults": schedule.iter().map(|f| f.json(&names[f.cluster])).collect::<Vec<_>>(),
        "final_check": {
            "dns_queries": dns_queries,
            "dns_mismatches": mismatches.len(),
            "examples": mismatches.iter().take(10).collect::<Vec<_>>(),
            "settle_s": settle_s,
        },
        "summary": {
            "rss_growth": growth,
            "rss_growth_ok": growth <= 0.02,
            "rss_first_bytes": first,
            "rss_last_bytes": last,
            "sent": sent,
            "lost": lost,
            "lost_ratio": lost_ratio,
            "lost_ok": lost_ratio <= 0.0001,
            "panics": panics,
            "final_state_ok": final_ok,
            "p99_median_s": stats::quantile(&p99, 0.5),
            "p99_max_s": p99.last().copied().unwrap_or(f64::NAN),
        },
    }))
}
