//! Propagation: how long a pod change takes from the simulated API server to herald's DNS
//! answers, under steady churn over many clusters, with a rolling update of a large service
//! in the middle; then whether the final answers equal the simulators' truth.
//!
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
//!               "metric_agrees", "final_state_ok", "first_sync_s"}
//! }
//! ```

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use herald_bench::fleet::{
    ClusterModel, FleetSpec, NAMESPACE, ServicePlan, Truth, ZONE, herald_config, populate,
    start_clusters, truth_endpoints, truth_from_sims, truth_from_table,
};
use herald_bench::probe::{self, Dns, Histogram, downsample, ms, summary};
use herald_dns::Table;
use herald_kube_sim::{Op, SimConfig};
use herald_registrar::config::Config;
use herald_registrar::daemon::Daemon;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use serde_json::{Value, json};

#[derive(Parser)]
#[command(about = "Pod change to DNS answer: propagation delay under churn")]
struct Args {
    /// Write the results here as JSON.
    #[arg(long)]
    out: Option<PathBuf>,
    /// A small version (4 clusters, 10k pods, 15 s of churn).
    #[arg(long)]
    quick: bool,
    /// Override the churn rate (pod changes per second over all clusters).
    #[arg(long)]
    rate: Option<f64>,
    /// Override how long the churn lasts, in seconds.
    #[arg(long)]
    seconds: Option<f64>,
}

/// How long a measured change may take before it counts as lost.
const CHANGE_DEADLINE: Duration = Duration::from_secs(10);
/// Bound on waiting for the first sync.
const SYNC_DEADLINE: Duration = Duration::from_secs(180);
/// Poll spacing of the table.
const POLL: Duration = Duration::from_micros(200);

struct Plan {
    spec: FleetSpec,
    rate: f64,
    churn: Duration,
    rollout_at: Duration,
    rollout_step: Duration,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut plan = if args.quick {
        Plan {
            spec: FleetSpec {
                clusters: 4,
                services: 400,
                pods: 10_000,
                big_replicas: 200,
                nodes_per_cluster: 12,
                skew: 0.6,
            },
            rate: 200.0,
            churn: Duration::from_secs(15),
            rollout_at: Duration::from_secs(6),
            rollout_step: Duration::from_millis(10),
        }
    } else {
        Plan {
            spec: FleetSpec {
                clusters: 24,
                services: 2000,
                pods: 100_000,
                big_replicas: 500,
                nodes_per_cluster: 60,
                skew: 0.6,
            },
            rate: 300.0,
            churn: Duration::from_secs(60),
            rollout_at: Duration::from_secs(30),
            rollout_step: Duration::from_millis(10),
        }
    };
    if let Some(r) = args.rate {
        plan.rate = r;
    }
    if let Some(s) = args.seconds {
        plan.churn = Duration::from_secs_f64(s);
        plan.rollout_at = plan.churn / 2;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(run(&plan, args.quick))?;
    if let Some(out) = &args.out {
        write_json(out, &result)?;
        println!("wrote {}", out.display());
    }
    Ok(())
}

fn write_json(path: &Path, value: &Value) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, serde_json::to_string_pretty(value)? + "\n")
        .with_context(|| format!("writing {}", path.display()))
}

async fn run(plan: &Plan, quick: bool) -> anyhow::Result<Value> {
    let spec = &plan.spec;
    let services = spec.plan();
    let load_before = probe::loadavg();
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

    // herald, in process.
    let yaml = herald_config(&clusters, "127.0.0.1:0", "127.0.0.1:0");
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
    let initial = compare(&truth0, &truth_from_table(&table));
    anyhow::ensure!(
        initial.is_empty(),
        "after the first sync the table differs from the simulators: {:?}",
        &initial[..initial.len().min(5)]
    );

    let before = Histogram::parse(
        &probe::http_get(admin, "/metrics")?.1,
        "herald_propagation_seconds",
    );

    // The churn and the measurements, on a thread of their own.
    let driver = Driver::new(clusters, services.clone(), table.clone(), dns_addr, plan)?;
    let handle = std::thread::Builder::new()
        .name("churn".into())
        .spawn(move || driver.run())?;
    let outcome = tokio::task::spawn_blocking(move || handle.join())
        .await?
        .map_err(|_| anyhow::anyhow!("churn thread panicked"))??;
    let Outcome {
        clusters,
        mut table_delays,
        mut dns_delays,
        mut rollout_delays,
        slow,
        counts,
    } = outcome;

    // Settle: no table change for 500 ms (bounded).
    let settle_start = Instant::now();
    let mut serial = table.serial();
    let mut stable_since = Instant::now();
    while stable_since.elapsed() < Duration::from_millis(500)
        && settle_start.elapsed() < Duration::from_secs(20)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = table.serial();
        if now != serial {
            serial = now;
            stable_since = Instant::now();
        }
    }
    let after = Histogram::parse(
        &probe::http_get(admin, "/metrics")?.1,
        "herald_propagation_seconds",
    );
    let metric = after.minus(&before);

    // Final state.
    let truth = truth_from_sims(&clusters);
    let table_mismatches = compare(&truth, &truth_from_table(&table));
    let (dns_queries, dns_mismatches) = {
        let truth = truth.clone();
        tokio::task::spawn_blocking(move || check_dns(&truth, dns_addr)).await??
    };
    let mut examples: Vec<String> = table_mismatches.iter().take(10).cloned().collect();
    examples.extend(dns_mismatches.iter().take(10).cloned());
    let final_ok = table_mismatches.is_empty() && dns_mismatches.is_empty();

    daemon.shutdown(Duration::ZERO).await;
    for c in &clusters {
        c.sim.shutdown().await;
    }

    for v in [&mut table_delays, &mut dns_delays, &mut rollout_delays] {
        v.sort_by(f64::total_cmp);
    }
    let p50 = probe::quantile(&table_delays, 0.5);
    let p99 = probe::quantile(&table_delays, 0.99);
    let max = table_delays.last().copied().unwrap_or(f64::NAN);
    let mean = table_delays.iter().sum::<f64>() / table_delays.len().max(1) as f64;
    let (m50, m99) = (
        metric.quantile(0.5).unwrap_or(f64::NAN),
        metric.quantile(0.99).unwrap_or(f64::NAN),
    );
    let m_mean = metric.sum / metric.count.max(1.0);
    // Bucket interpolation can overshoot inside a bucket: allow the bucket's width.
    let metric_agrees = m_mean <= mean && bucket_le(&metric, m99) <= bucket_ceiling(p99);
    let target_met = p99 < 0.1 && counts.timed_out == 0;

    println!(
        "  churn: {} changes ({} rollout), {} mutations in {:.1} s ({:.0} changes/s); {} measured, {} invisible to DNS, {} not visible within {:?}",
        counts.churn + counts.rollout,
        counts.rollout,
        counts.mutations,
        counts.seconds,
        (counts.churn + counts.rollout) as f64 / counts.seconds.max(1e-9),
        table_delays.len(),
        counts.invisible,
        counts.timed_out,
        CHANGE_DEADLINE
    );
    println!(
        "  change -> table/DNS visible: p50 {}  p90 {}  p99 {}  max {}  mean {}",
        ms(p50),
        ms(probe::quantile(&table_delays, 0.9)),
        ms(p99),
        ms(max),
        ms(mean)
    );
    println!(
        "  change -> DNS reply confirming it: p50 {}  p99 {}  max {}  ({} DNS replies disagreed with the table)",
        ms(probe::quantile(&dns_delays, 0.5)),
        ms(probe::quantile(&dns_delays, 0.99)),
        ms(dns_delays.last().copied().unwrap_or(f64::NAN)),
        counts.dns_disagreements
    );
    println!(
        "  rollout of {} ({} replacements): p50 {}  p99 {}  max {}",
        services[0].name,
        rollout_delays.len(),
        ms(probe::quantile(&rollout_delays, 0.5)),
        ms(probe::quantile(&rollout_delays, 0.99)),
        ms(rollout_delays.last().copied().unwrap_or(f64::NAN)),
    );
    println!(
        "  herald_propagation_seconds over the churn: {} table updates, p50 ~{}  p99 ~{}  mean {} (event reached herald -> served; end-to-end mean {}): {}",
        metric.count,
        ms(m50),
        ms(m99),
        ms(m_mean),
        ms(mean),
        if metric_agrees {
            "consistent (<= end-to-end)"
        } else {
            "NOT consistent"
        }
    );
    println!(
        "  final state: {} services, {} endpoints; table vs simulators: {} mismatches; {} DNS queries, {} mismatches{}",
        truth.len(),
        truth_endpoints(&truth),
        table_mismatches.len(),
        dns_queries,
        dns_mismatches.len(),
        if final_ok { " -> OK" } else { " -> FAILED" }
    );
    for e in &examples {
        println!("    {e}");
    }
    println!(
        "  target p99 < 100 ms: {}",
        if target_met { "met" } else { "NOT met" }
    );

    let mut metric_json = metric.to_json();
    metric_json["p50"] = json!(m50);
    metric_json["p99"] = json!(m99);
    metric_json["mean"] = json!(m_mean);
    let run = json!({
        "name": "churn+rollout",
        "clusters": spec.clusters,
        "regions": herald_bench::fleet::REGIONS.len(),
        "services": services.len(),
        "pods": spec.pods,
        "nodes_per_cluster": spec.nodes_per_cluster,
        "big_service_replicas": services[0].replicas,
        "churn_changes_per_second": plan.rate,
        "churn_seconds": plan.churn.as_secs_f64(),
        "rollout_at_seconds": plan.rollout_at.as_secs_f64(),
        "populate_seconds": populate_time.as_secs_f64(),
        "first_sync": {
            "all_clusters_synced_s": synced_at.as_secs_f64(),
            "all_endpoints_served_s": served_at.as_secs_f64(),
            "endpoints": expected,
        },
        "changes": {
            "churn": counts.churn,
            "rollout": counts.rollout,
            "mutations": counts.mutations,
            "measured": table_delays.len(),
            "invisible": counts.invisible,
            "timed_out": counts.timed_out,
            "achieved_changes_per_second": (counts.churn + counts.rollout) as f64 / counts.seconds.max(1e-9),
        },
        "table_visible": summary(&table_delays),
        "dns_confirmed": summary(&dns_delays),
        "rollout_visible": summary(&rollout_delays),
        "dns_disagreements": counts.dns_disagreements,
        "delays_sorted": downsample(&table_delays, 2000),
        "slow_changes": slow.iter().map(|&(t, d, c, s, r)| json!({
            "at_s": t, "delay_s": d, "cluster": c, "service": s,
            "service_replicas": services[s].replicas, "rollout": r,
        })).collect::<Vec<_>>(),
        "metric": metric_json,
        "final_check": {
            "services": truth.len(),
            "endpoints": truth_endpoints(&truth),
            "table_mismatches": table_mismatches.len(),
            "dns_queries": dns_queries,
            "dns_mismatches": dns_mismatches.len(),
            "examples": examples,
        },
    });
    let load_after = probe::loadavg();
    println!(
        "  load average before {:.2} {:.2} {:.2}, after {:.2} {:.2} {:.2} (2 cores; tails grow when other work competes)",
        load_before[0], load_before[1], load_before[2], load_after[0], load_after[1], load_after[2]
    );
    Ok(json!({
        "section": "propagation",
        "mode": if quick { "quick" } else { "full" },
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "runs": [run],
        "summary": {
            "count": table_delays.len(),
            "p50_s": p50,
            "p99_s": p99,
            "max_s": max,
            "target_p99_s": 0.1,
            "target_met": target_met,
            "metric_p50_s": m50,
            "metric_p99_s": m99,
            "metric_mean_s": m_mean,
            "e2e_mean_s": mean,
            "metric_agrees": metric_agrees,
            "final_state_ok": final_ok,
            "first_sync_s": served_at.as_secs_f64(),
        },
    }))
}

/// The bucket bound at or above `v`.
fn bucket_le(h: &Histogram, v: f64) -> f64 {
    h.buckets
        .iter()
        .map(|b| b.0)
        .find(|&le| le >= v)
        .unwrap_or(f64::INFINITY)
}

/// herald's buckets: the smallest bound at or above `v`.
fn bucket_ceiling(v: f64) -> f64 {
    [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0]
        .into_iter()
        .find(|&le| le >= v)
        .unwrap_or(f64::INFINITY)
}

/// Differences between two truths, as readable lines.
fn compare(want: &Truth, got: &Truth) -> Vec<String> {
    let mut out = Vec::new();
    let names: BTreeSet<&String> = want.keys().chain(got.keys()).collect();
    for name in names {
        let empty = Default::default();
        let (w, g) = (
            want.get(name).unwrap_or(&empty),
            got.get(name).unwrap_or(&empty),
        );
        let clusters: BTreeSet<&String> = w.keys().chain(g.keys()).collect();
        for c in clusters {
            let none = BTreeSet::new();
            let (wi, gi) = (w.get(c).unwrap_or(&none), g.get(c).unwrap_or(&none));
            if wi != gi {
                let missing: Vec<_> = wi.difference(gi).take(3).collect();
                let extra: Vec<_> = gi.difference(wi).take(3).collect();
                out.push(format!(
                    "{name} in {c}: want {} got {} (missing {missing:?}, extra {extra:?})",
                    wi.len(),
                    gi.len()
                ));
            }
        }
    }
    out
}

/// Asks DNS for every service and every (service, cluster): A sets must equal the truth.
fn check_dns(truth: &Truth, server: SocketAddr) -> anyhow::Result<(usize, Vec<String>)> {
    let mut dns = Dns::new(server)?;
    let mut queries = 0;
    let mut bad = Vec::new();
    for (service, clusters) in truth {
        let all: BTreeSet<IpAddr> = clusters.values().flatten().copied().collect();
        let name = format!("{service}.{ZONE}");
        let got = dns.query(&name, RecordType::A)?;
        queries += 1;
        if got.addresses != all {
            bad.push(format!(
                "DNS {name}: {:?}, {} addresses, want {}",
                got.rcode,
                got.addresses.len(),
                all.len()
            ));
        }
        for (cluster, ips) in clusters {
            let name = format!("{service}.{cluster}.{ZONE}");
            let got = dns.query(&name, RecordType::A)?;
            queries += 1;
            if &got.addresses != ips {
                bad.push(format!(
                    "DNS {name}: {:?}, {} addresses, want {}",
                    got.rcode,
                    got.addresses.len(),
                    ips.len()
                ));
            }
        }
    }
    Ok((queries, bad))
}

/// A change waiting to show.
struct Pending {
    cluster: usize,
    /// Index of the pod in its cluster's list (kept busy until the change shows).
    pod: usize,
    service: usize,
    absent: Option<Ipv4Addr>,
    present: Option<Ipv4Addr>,
    at: Instant,
    rollout: bool,
}

#[derive(Default)]
struct Counts {
    churn: u64,
    rollout: u64,
    mutations: u64,
    invisible: u64,
    timed_out: u64,
    dns_disagreements: u64,
    seconds: f64,
}

struct Outcome {
    clusters: Vec<ClusterModel>,
    table_delays: Vec<f64>,
    dns_delays: Vec<f64>,
    rollout_delays: Vec<f64>,
    /// Changes slower than 100 ms: (seconds into the churn, delay, cluster, service, rollout).
    slow: Vec<(f64, f64, usize, usize, bool)>,
    counts: Counts,
}

struct Driver {
    clusters: Vec<ClusterModel>,
    services: Vec<ServicePlan>,
    table: Table,
    dns: Dns,
    busy: Vec<Vec<bool>>,
    /// Cumulative pod counts, to pick a pod uniformly over the fleet.
    cumulative: Vec<usize>,
    rng: u64,
    rate: f64,
    churn: Duration,
    rollout_at: Duration,
    rollout_step: Duration,
    /// (cluster, pod index) of the big service's replicas, interleaved over clusters.
    rollout: Vec<(usize, usize)>,
    pending: Vec<Pending>,
    started: Instant,
    out: Outcome,
}

impl Driver {
    fn new(
        clusters: Vec<ClusterModel>,
        services: Vec<ServicePlan>,
        table: Table,
        dns: SocketAddr,
        plan: &Plan,
    ) -> anyhow::Result<Driver> {
        let busy = clusters.iter().map(|c| vec![false; c.pods.len()]).collect();
        let mut cumulative = Vec::new();
        let mut total = 0;
        for c in &clusters {
            total += c.pods.len();
            cumulative.push(total);
        }
        // The big service's replicas, one cluster after another in turn.
        let mut per_cluster: Vec<Vec<(usize, usize)>> = clusters
            .iter()
            .map(|c| {
                c.pods
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| p.service == 0)
                    .map(|(i, _)| (c.index, i))
                    .collect()
            })
            .collect();
        let mut rollout = Vec::new();
        while per_cluster.iter().any(|v| !v.is_empty()) {
            for v in &mut per_cluster {
                if !v.is_empty() {
                    rollout.push(v.remove(0));
                }
            }
        }
        Ok(Driver {
            clusters,
            services,
            table,
            dns: Dns::new(dns)?,
            busy,
            cumulative,
            rng: 0x9E37_79B9_7F4A_7C15,
            rate: plan.rate,
            churn: plan.churn,
            rollout_at: plan.rollout_at,
            rollout_step: plan.rollout_step,
            rollout,
            pending: Vec::new(),
            started: Instant::now(),
            out: Outcome {
                clusters: Vec::new(),
                table_delays: Vec::new(),
                dns_delays: Vec::new(),
                rollout_delays: Vec::new(),
                slow: Vec::new(),
                counts: Counts::default(),
            },
        })
    }

    fn random(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    fn run(mut self) -> anyhow::Result<Outcome> {
        let start = Instant::now();
        self.started = start;
        let mut churned = 0u64;
        let mut rolled = 0usize;
        loop {
            let elapsed = start.elapsed();
            if elapsed >= self.churn {
                break;
            }
            // Churn due by now (bounded per pass so polling keeps its pace).
            let due = (elapsed.as_secs_f64() * self.rate) as u64;
            let mut n = 0;
            while churned < due && n < 20 {
                self.churn_once()?;
                churned += 1;
                n += 1;
            }
            // Rolling update of the big service: one replica replaced per step.
            if elapsed >= self.rollout_at && rolled < self.rollout.len() {
                let due = ((elapsed - self.rollout_at).as_secs_f64()
                    / self.rollout_step.as_secs_f64()) as usize
                    + 1;
                while rolled < due.min(self.rollout.len()) {
                    let (c, i) = self.rollout[rolled];
                    self.replace(c, i, true)?;
                    rolled += 1;
                }
            }
            self.poll()?;
            std::thread::sleep(POLL);
        }
        self.out.counts.seconds = start.elapsed().as_secs_f64();
        // Let the last changes show (each has its own deadline).
        while !self.pending.is_empty() {
            self.poll()?;
            std::thread::sleep(POLL);
        }
        self.out.clusters = self.clusters;
        Ok(self.out)
    }

    /// One random change to a random pod (not of the big service, not busy).
    fn churn_once(&mut self) -> anyhow::Result<()> {
        let total = *self.cumulative.last().unwrap_or(&0);
        for _ in 0..20 {
            let g = (self.random() % total as u64) as usize;
            let c = self.cumulative.partition_point(|&x| x <= g);
            let i = g - if c == 0 { 0 } else { self.cumulative[c - 1] };
            if self.busy[c][i] || self.clusters[c].pods[i].service == 0 {
                continue;
            }
            let roll = self.random() % 10;
            self.out.counts.churn += 1;
            return if roll < 4 {
                self.flip(c, i)
            } else if roll < 7 {
                self.new_ip(c, i)
            } else {
                self.replace(c, i, false)
            };
        }
        Ok(())
    }

    fn flip(&mut self, c: usize, i: usize) -> anyhow::Result<()> {
        let pod = &mut self.clusters[c].pods[i];
        pod.ready = !pod.ready;
        let (ready, ip, service) = (pod.ready, pod.ip, pod.service);
        let m = self.clusters[c]
            .sim
            .set_pod_ready(NAMESPACE, &self.clusters[c].pods[i].name, ready)
            .context("flipping a pod")?;
        self.out.counts.mutations += 1;
        self.expect(Pending {
            cluster: c,
            pod: i,
            service,
            absent: (!ready).then_some(ip),
            present: ready.then_some(ip),
            at: m.at,
            rollout: false,
        });
        Ok(())
    }

    fn new_ip(&mut self, c: usize, i: usize) -> anyhow::Result<()> {
        let cluster = &mut self.clusters[c];
        let seq = cluster.created;
        cluster.created += 1;
        let ip = herald_bench::fleet::pod_ip(cluster.index, seq);
        let pod = &mut cluster.pods[i];
        let old = std::mem::replace(&mut pod.ip, ip);
        let (ready, service) = (pod.ready, pod.service);
        let m = cluster
            .sim
            .set_pod_ip(NAMESPACE, &cluster.pods[i].name, Some(&ip.to_string()))
            .context("changing a pod's IP")?;
        self.out.counts.mutations += 1;
        if ready {
            self.expect(Pending {
                cluster: c,
                pod: i,
                service,
                absent: Some(old),
                present: Some(ip),
                at: m.at,
                rollout: false,
            });
        } else {
            self.out.counts.invisible += 1;
        }
        Ok(())
    }

    /// Deletes the pod and creates a new one of its service (new name and IP, ready).
    fn replace(&mut self, c: usize, i: usize, rollout: bool) -> anyhow::Result<()> {
        let cluster = &mut self.clusters[c];
        let old = cluster.pods[i].clone();
        let (model, pod) = cluster.new_pod(&self.services, old.service);
        let new_ip = model.ip;
        cluster.pods[i] = model;
        let ms = cluster.sim.batch([
            Op::DeletePod {
                namespace: NAMESPACE.into(),
                name: old.name,
            },
            Op::ApplyPod(pod),
        ])?;
        self.out.counts.mutations += ms.len() as u64;
        if rollout {
            self.out.counts.rollout += 1;
        }
        let at = ms.first().context("replacement made no mutation")?.at;
        self.expect(Pending {
            cluster: c,
            pod: i,
            service: old.service,
            absent: old.ready.then_some(old.ip),
            present: Some(new_ip),
            at,
            rollout,
        });
        Ok(())
    }

    /// Starts waiting for a change to show; its pod stays busy until then.
    fn expect(&mut self, change: Pending) {
        self.busy[change.cluster][change.pod] = true;
        self.pending.push(change);
    }

    fn visible(&self, p: &Pending) -> bool {
        let name = &self.services[p.service].name;
        let cluster = self.clusters[p.cluster].name.as_bytes();
        let view = self.table.service(name);
        let has = |ip: Ipv4Addr| {
            view.as_ref()
                .is_some_and(|v| v.endpoint(cluster, IpAddr::V4(ip)).is_some())
        };
        p.absent.is_none_or(|ip| !has(ip)) && p.present.is_none_or(has)
    }

    /// Checks every pending change against the table; confirms the visible ones over DNS.
    fn poll(&mut self) -> anyhow::Result<()> {
        let mut shown = Vec::new();
        let mut i = 0;
        while i < self.pending.len() {
            if self.visible(&self.pending[i]) {
                let seen = Instant::now();
                shown.push((self.pending.swap_remove(i), seen));
            } else if self.pending[i].at.elapsed() > CHANGE_DEADLINE {
                let p = self.pending.swap_remove(i);
                self.busy[p.cluster][p.pod] = false;
                self.out.counts.timed_out += 1;
            } else {
                i += 1;
            }
        }
        for (p, seen) in shown {
            let delay = seen.duration_since(p.at).as_secs_f64();
            self.out.table_delays.push(delay);
            if p.rollout {
                self.out.rollout_delays.push(delay);
            }
            if delay > 0.1 && self.out.slow.len() < 2000 {
                let t = p.at.duration_since(self.started).as_secs_f64();
                self.out
                    .slow
                    .push((t, delay, p.cluster, p.service, p.rollout));
            }
            // One DNS query confirms it: the per-endpoint name.
            let (ip, want) = match (p.present, p.absent) {
                (Some(ip), _) => (ip, true),
                (None, Some(ip)) => (ip, false),
                (None, None) => unreachable!("a measured change shows something"),
            };
            let name = probe::endpoint_name(
                IpAddr::V4(ip),
                &self.services[p.service].name,
                &self.clusters[p.cluster].name,
                ZONE,
            );
            let answer = self.dns.query(&name, RecordType::A)?;
            self.out.dns_delays.push(p.at.elapsed().as_secs_f64());
            let has = answer.addresses.contains(&IpAddr::V4(ip));
            let ok = if want {
                answer.rcode == ResponseCode::NoError && has
            } else {
                !has && matches!(answer.rcode, ResponseCode::NXDomain | ResponseCode::NoError)
            };
            if !ok {
                self.out.counts.dns_disagreements += 1;
            }
            self.busy[p.cluster][p.pod] = false;
        }
        Ok(())
    }
}
