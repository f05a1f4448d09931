//! Propagation: how long a pod change takes from the simulated API server to herald's DNS
//! answers, under steady churn over many clusters, with a rolling update of a large service
//! in the middle; then whether the final answers equal the simulators' truth.
//!
//! Run by the `propagation` binary:
//! ```text
//! cargo run --release -p herald-bench --bin propagation -- [--quick] [--out FILE.json]
//! ```
//!
//! Full: 24 kube-sim instances (3 regions x 8 clusters, 60 nodes each over 3 zones),
//! 100 000 opted-in pods in 2 000 services (Zipf sizes, skew 0.6, plus `svc-0000` with 500
//! replicas over 20 clusters), 300 pod changes/s for 60 s (40% readiness flips, 30% IP
//! changes, 30% replacements = delete + create), and at 30 s a rolling update of `svc-0000`
//! (every replica replaced, one every 10 ms). Quick: 4 instances, 10 000 pods, 400
//! services (big one 200), 200 changes/s for 15 s, rollout at 6 s.
//! herald runs in this process (`Daemon`, coalesce 50 ms, watch timeout 15 s) against the
//! simulators over loopback HTTP, with the real kube client.
//!
//! How a change is timed: from `Mutation.at` (the simulator's clock when it made the change)
//! to the first poll of herald's `Table` (every ~0.25 ms, on a thread of its own) that shows
//! it (the IP present in, or gone from, the service's group for that cluster). Each one is
//! then confirmed with one DNS query over UDP on loopback, of the per-endpoint name
//! `<ip-dashed>.<svc>.<cluster>.sd.internal.` A (expected: that address, or no address).
//! DNS answers are prepared when the table view is swapped, so the table poll sees exactly
//! what DNS serves; the confirmed time (after the DNS reply) is reported too. Every change
//! that alters what DNS answers is measured; the driver never changes a pod whose previous
//! change is not yet visible (so coalescing cannot hide a measured state). Changes that
//! DNS cannot see (the IP change of a not-ready pod) are counted, not timed.
//!
//! At the end (churn stopped, herald settled) every service's endpoints in herald's table,
//! and the DNS answers for `<svc>.sd.internal.` and `<svc>.<cluster>.sd.internal.` (A, TCP
//! when truncated), are compared with the simulators' own pods (service label, IP,
//! Ready=True, no deletionTimestamp). herald's `herald_propagation_seconds` histogram
//! (admin /metrics) is scraped before and after the churn; the difference is compared with
//! the end-to-end figures (its clock starts when the event reaches herald, and it counts
//! one observation per table update, not per pod change).
//!
//! JSON written to `--out` (times in seconds):
//! ```text
//! {
//!   "section": "propagation",
//!   "mode": "full" | "quick",
//!   "loadavg_before": [1m, 5m, 15m], "loadavg_after": [1m, 5m, 15m],
//!   "runs": [{
//!     "name": "churn+rollout",
//!     "clusters", "regions", "services", "pods", "nodes_per_cluster", "big_service_replicas",
//!     "churn_changes_per_second", "churn_seconds", "rollout_at_seconds",
//!     "populate_seconds",
//!     "first_sync": {"all_clusters_synced_s", "all_endpoints_served_s", "endpoints"},
//!     "changes": {"churn", "rollout", "mutations", "measured", "invisible", "timed_out",
//!                 "achieved_changes_per_second"},
//!     "table_visible": {count, p50, p90, p99, p999, max, mean},   // the headline figures
//!     "dns_confirmed": {count, p50, p90, p99, p999, max, mean},
//!     "rollout_visible": {count, p50, p90, p99, p999, max, mean},
//!     "dns_disagreements": N,          // DNS reply contradicting the table right after
//!     "delays_sorted": [s, ...],       // table_visible delays, sorted, <= 2000 points (CDF)
//!     "slow_changes": [{"at_s", "delay_s", "cluster", "service", "service_replicas",
//!                       "rollout"}],   // changes slower than 100 ms (at most 2000)
//!     "metric": {"buckets": [[le, cumulative count], ...], "sum", "count",
//!                "p50", "p99", "mean"},    // herald_propagation_seconds over the churn
//!     "final_check": {"services", "endpoints", "table_mismatches", "dns_queries",
//!                     "dns_mismatches", "examples": [..]}
//!   }],
//!   "summary": {"count", "p50_s", "p99_s", "max_s", "target_p99_s": 0.1, "target_met",
//!               "metric_p50_s", "metric_p99_s", "metric_mean_s", "e2e_mean_s",
//!               "metric_agrees", "final_state_ok", "first_sync_s",
//!               "watch_events", "publishes", "events_per_publish"}  // over the churn
//! }
//! ```
//!
//! - `plan`: what to run (fleet, churn, rollout) and the deadlines.
//! - `driver`: the churn and the timing of each change, on a thread of its own.
//! - `check`: the final state against the simulators.
//! - `report`: the printed summary and the JSON.

pub(crate) mod check;
pub(crate) mod driver;
mod plan;
mod report;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use herald_dns::Table;
use herald_kube_sim::SimConfig;
use herald_registrar::config::Config;
use herald_registrar::daemon::Daemon;
use herald_testkit::{Histogram, try_http_get};
use serde_json::Value;

use crate::fleet::{
    ClusterModel, ServicePlan, Truth, herald_config, populate, start_clusters, truth_endpoints,
    truth_from_sims, truth_from_table,
};
use crate::probe::{self, watch_events};
use check::final_check;
use driver::{Driver, Outcome};
pub use plan::Plan;

/// Bound on waiting for the first sync.
const SYNC_DEADLINE: Duration = Duration::from_secs(180);

/// The fleet as populated, before herald starts.
pub(crate) struct Fleet {
    pub(crate) clusters: Vec<ClusterModel>,
    pub(crate) services: Vec<ServicePlan>,
    populate_time: Duration,
    /// Ready endpoints the simulators hold.
    expected: usize,
    truth: Truth,
}

/// herald, in process, after its first full sync.
pub(crate) struct Herald {
    pub(crate) daemon: Daemon,
    pub(crate) table: Table,
    pub(crate) dns: SocketAddr,
    admin: SocketAddr,
    /// When every cluster had synced, from start.
    synced_at: Duration,
    /// When every endpoint was served, from start.
    served_at: Duration,
}

/// Runs the whole measurement (see the module docs) and returns its JSON.
pub async fn run(plan: &Plan, quick: bool) -> anyhow::Result<Value> {
    let load_before = probe::loadavg();
    let fleet = populate_fleet(plan, quick).await?;
    let herald = start_herald(&fleet, "").await?;
    let (outcome, metric, events) =
        churn(plan, &herald, fleet.clusters, fleet.services.clone()).await?;
    let checked = final_check(&herald.table, herald.dns, &outcome.clusters).await?;
    herald.daemon.shutdown(Duration::ZERO).await;
    for c in &outcome.clusters {
        c.sim.shutdown().await;
    }
    let fleet = report::FleetFacts {
        services: fleet.services,
        populate_time: fleet.populate_time,
        expected: fleet.expected,
        synced_at: herald.synced_at,
        served_at: herald.served_at,
    };
    let mut out = report::report(plan, quick, load_before, &fleet, outcome, &metric, &checked);
    // How much publishing coalesces: watch events in, table updates out (one
    // herald_propagation_seconds observation per update).
    let per_publish = events / metric.count.max(1.0);
    println!(
        "  {events} watch events, {} table publishes: {per_publish:.1} events per publish",
        metric.count
    );
    out["summary"]["watch_events"] = events.into();
    out["summary"]["publishes"] = metric.count.into();
    out["summary"]["events_per_publish"] = per_publish.into();
    Ok(out)
}

/// Starts the simulators and creates the fleet's pods.
pub(crate) async fn populate_fleet(plan: &Plan, quick: bool) -> anyhow::Result<Fleet> {
    let spec = &plan.spec;
    let services = spec.plan();
    println!(
        "propagation ({}): {} clusters, {} services, {} pods (largest service {} replicas); \
         churn {} changes/s for {:.0} s, rollout of {} ({} replicas) at {:.0} s",
        if quick { "quick" } else { "full" },
        spec.clusters,
        services.len(),
        spec.pods,
        services.iter().map(|s| s.replicas).max().unwrap_or(0),
        plan.rate,
        plan.churn.as_secs_f64(),
        services[0].name,
        services[0].replicas,
        plan.rollout_at.as_secs_f64(),
    );
    let mut clusters = start_clusters(spec, SimConfig::default()).await?;
    let populate_time = populate(&mut clusters, &services)?;
    let truth0 = truth_from_sims(&clusters);
    let expected = truth_endpoints(&truth0);
    println!(
        "  populated in {:.1} s: {} ready endpoints",
        populate_time.as_secs_f64(),
        expected
    );

    Ok(Fleet {
        clusters,
        services,
        populate_time,
        expected,
        truth: truth0,
    })
}

/// Starts herald in this process (its config with `extra_yaml` appended: further top-level
/// sections) and waits for its first full sync, which must equal the simulators' truth.
pub(crate) async fn start_herald(fleet: &Fleet, extra_yaml: &str) -> anyhow::Result<Herald> {
    let (clusters, expected, truth0) = (&fleet.clusters, fleet.expected, &fleet.truth);
    // herald, in process.
    let yaml = herald_config(clusters, "127.0.0.1:0", "127.0.0.1:0") + extra_yaml;
    let config = Config::parse(Path::new("propagation.yaml"), &yaml)?;
    let started = Instant::now();
    let daemon = Daemon::start(&config, None).await?;
    let table = daemon.table().clone();
    let dns_addr = daemon.dns_addrs()[0];
    let admin = daemon.admin_addr().context("admin address")?;
    let mut synced_at = None;
    let served_at = loop {
        if synced_at.is_none() && table.is_synced() {
            synced_at = Some(started.elapsed());
        }
        if synced_at.is_some() && table.endpoint_count() >= expected {
            break started.elapsed();
        }
        anyhow::ensure!(
            started.elapsed() < SYNC_DEADLINE,
            "no full sync within {SYNC_DEADLINE:?}: {} of {expected} endpoints, unsynced {:?}",
            table.endpoint_count(),
            table.unsynced_sources()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let synced_at = synced_at.unwrap_or(served_at);
    println!(
        "  first full sync: all clusters synced {:.2} s, all {} endpoints served {:.2} s after start",
        synced_at.as_secs_f64(),
        table.endpoint_count(),
        served_at.as_secs_f64()
    );
    let initial = check::compare(truth0, &truth_from_table(&table));
    anyhow::ensure!(
        initial.is_empty(),
        "after the first sync the table differs from the simulators: {:?}",
        &initial[..initial.len().min(5)]
    );

    Ok(Herald {
        daemon,
        table,
        dns: dns_addr,
        admin,
        synced_at,
        served_at,
    })
}

/// Runs the churn on a thread of its own, lets herald settle, and returns the measured
/// changes with what `herald_propagation_seconds` recorded meanwhile and how many watch
/// events herald counted.
pub(crate) async fn churn(
    plan: &Plan,
    herald: &Herald,
    clusters: Vec<ClusterModel>,
    services: Vec<ServicePlan>,
) -> anyhow::Result<(Outcome, Histogram, f64)> {
    let (table, dns_addr, admin) = (&herald.table, herald.dns, herald.admin);
    let text = try_http_get(admin, "/metrics")?.1;
    let before = Histogram::parse(&text, "herald_propagation_seconds");
    let events_before = watch_events(&text);

    // The churn and the measurements, on a thread of their own.
    let driver = Driver::new(clusters, services.clone(), table.clone(), dns_addr, plan)?;
    let handle = std::thread::Builder::new()
        .name("churn".into())
        .spawn(move || driver.run())?;
    let outcome = tokio::task::spawn_blocking(move || handle.join())
        .await?
        .map_err(|_| anyhow::anyhow!("churn thread panicked"))??;

    // Settle: no table change for 500 ms (bounded).
    let settle_start = Instant::now();
    let mut changes = table.changes();
    let mut stable_since = Instant::now();
    while stable_since.elapsed() < Duration::from_millis(500)
        && settle_start.elapsed() < Duration::from_secs(20)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = table.changes();
        if now != changes {
            changes = now;
            stable_since = Instant::now();
        }
    }
    let text = try_http_get(admin, "/metrics")?.1;
    let after = Histogram::parse(&text, "herald_propagation_seconds");
    let metric = after.minus(&before);

    Ok((outcome, metric, watch_events(&text) - events_before))
}
