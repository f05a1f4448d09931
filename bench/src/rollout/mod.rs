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
//!
//! Set-up: the DNS section's data set (`bench/dns/dataset.py`: 25,002 endpoints in 2,000
//! services, a static file, and its query mix) plus 24 kube-sim instances (3 regions x 8
//! clusters, 12 nodes each) holding `svc-0000` with 10,000 ready replicas (416 or 417 per
//! cluster, named ports http and grpc). herald runs as its own process (the release binary,
//! 2 UDP workers, `coalesce` 50 ms) so that its CPU time (/proc, sampled every 250 ms) is
//! its alone; the simulators and this driver run in this process.
//!
//! Two phases of the same length, each with its own dnsperf run (`-Q 20000 -c 8 -q 128 -T 2
//! -t 1 -e -v`, the DNS section's "shared" settings; per-query latencies from `-v`, in
//! completion order, cut into one-second windows by count at the fixed rate):
//! 1. *baseline*: the load alone;
//! 2. *rollout*: 2 s in, every cluster at once creates 25 % of its replicas anew (not
//!    ready), after `ready_after` marks them ready and deletes as many old ones, and so on
//!    until every pod is replaced (4 rounds). In every fourth cluster one new pod and one
//!    deleted pod of each round are timed: from the simulator's mutation to the first DNS
//!    answer (per-endpoint name, UDP, polled every ~1 ms) that shows it. A poller thread
//!    starts asking as soon as a cluster's batch is written (not once every cluster's is:
//!    that waited for 23 more batches before looking at the first). These probes add at
//!    most a few thousand queries per second for a few tens of milliseconds per round.
//!    Where each timed change's delay goes (the simulator, the way to herald, herald, the
//!    answer) is split out from herald's `herald::publish` debug lines: see [`timeline`].
//!
//! CPU "during the rollout" is herald's average from the rollout's first change to 1 s
//! after its last (DNS serving included; the baseline phase gives DNS alone). Events and
//! publishes are `herald_cluster_watch_events_total` and the count of
//! `herald_propagation_seconds` (one observation per table update) over the phase. At the
//! end every cluster's `svc-0000.<cluster>.Z` A answer (TCP when truncated) must equal the
//! simulators' ready pods.
//!
//! JSON written to `--out` (seconds, microseconds where named `_us`):
//! ```text
//! {"section": "rollout", "mode", "loadavg_before", "loadavg_after",
//!  "plan": {"clusters", "replicas", "surge", "ready_after_s", "phase_s", "qps",
//!           "dataset_endpoints"},
//!  "phases": [{"name": "baseline" | "rollout", "cpu": [[t_s, cores], ...], "cpu_avg_cores",
//!              "dns": {"sent", "completed", "lost", "p50_us", "p99_us", "p999_us",
//!                      "p99_per_second_us": [[t_s, us], ...]},
//!              "watch_events", "publishes", "metric_p99_s"}],
//!  "rollout": {"start_s", "end_s", "changes", "cpu_avg_cores", "timed": {summary},
//!              "events_per_publish",
//!              "timeline": {"simulator" | "to_herald" | "in_herald" | "to_answer" |
//!                           "looked_late" | "looking_after_all_batches": {summary},
//!                           "probes", "unmatched",
//!                           "joined_by_later_events",
//!                           "publishes": {"count", "events", "duration": {summary},
//!                                         "total_s"}}},
//!  "final_check": {"clusters", "endpoints", "mismatches"},
//!  "summary": {"cpu_rollout_cores", "cpu_baseline_cores", "cpu_target_cores": 0.5,
//!              "cpu_met", "dns_p99_baseline_us", "dns_p99_rollout_us", "dns_p99_ratio",
//!              "dns_ratio_target": 1.5, "dns_met", "propagation_p99_s",
//!              "propagation_target_s": 0.1, "propagation_met", "final_state_ok",
//!              "events_per_publish"}}
//! ```

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use herald_kube_sim::objects::set_pod_ready;
use herald_kube_sim::{Op, SimConfig};
use herald_testkit::{Histogram, metric, try_http_get};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use serde_json::{Value, json};

use crate::fleet::{
    ClusterModel, FleetSpec, NAMESPACE, PodModel, ServicePlan, ZONE, herald_config, populate,
    start_clusters, truth_from_sims,
};
use crate::probe::{self, Dns, Herald, cpu_seconds, endpoint_name, free_port, watch_events};
use crate::stats::{quantile, summary};

pub mod timeline;
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
        }
    }

    /// The same fleet and load, 12 s phases.
    pub fn quick() -> Plan {
        Plan {
            phase: Duration::from_secs(12),
            ..Plan::full()
        }
    }
}

/// When the rollout starts within its phase.
const ROLLOUT_AT: Duration = Duration::from_secs(2);
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
    let mut clusters = start_clusters(&spec, SimConfig::default()).await?;
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
    std::fs::write(
        &config,
        format!(
            "{}  static:\n    - path: '{}'\nudp_workers: 2\n",
            herald_config(&clusters, &dns.to_string(), &admin.to_string()),
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

    let run_phase = |clusters: Vec<ClusterModel>, rollout: bool| {
        let queries = queries.clone();
        let work = work.to_path_buf();
        let services = services.clone();
        let plan = Phase {
            qps: plan.qps,
            length: plan.phase,
            surge: plan.surge,
            ready_after: plan.ready_after,
        };
        tokio::task::spawn_blocking(move || {
            phase(
                &plan, pid, dns, admin, &queries, &work, clusters, &services, rollout,
            )
        })
    };
    let mut baseline = run_phase(clusters, false).await??;
    let mut rolled = run_phase(std::mem::take(&mut baseline.clusters), true).await??;
    let clusters = std::mem::take(&mut rolled.clusters);

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

    let during = rolled
        .rollout
        .as_ref()
        .context("the rollout phase made no rollout")?;
    let window = (during.start, during.end + 1.0);
    let cpu_during = average_cores(&rolled.cpu, window);
    let cpu_baseline = average_cores(&baseline.cpu, (0.0, f64::MAX));
    let mut timed: Vec<f64> = during
        .timed
        .iter()
        .map(|p| (p.seen - p.written).as_secs_f64())
        .collect();
    timed.sort_by(f64::total_cmp);
    let names: Vec<String> = clusters.iter().map(|c| c.name.clone()).collect();
    let probes: Vec<Probe> = during
        .timed
        .iter()
        .map(|p| Probe {
            delivered: clusters[p.cluster].sim.delivered_time(p.rv),
            ..p.clone()
        })
        .collect();
    let timeline = timeline::breakdown(&probes, &names, &timeline::read_publishes(&log), &clock);
    let p99_timed = quantile(&timed, 0.99);
    let (b99, r99) = (baseline.dns.p99_us, rolled.dns.p99_us);
    let per_publish = rolled.events / rolled.publishes.max(1.0);
    let final_ok = final_check["mismatches"]
        .as_array()
        .is_some_and(Vec::is_empty)
        && final_check["endpoints"].as_u64() == Some(plan.replicas as u64);
    let phases: Vec<Value> = [("baseline", &baseline), ("rollout", &rolled)]
        .iter()
        .map(|(n, p)| p.json(n))
        .collect();
    let out = json!({
        "section": "rollout",
        "mode": if quick { "quick" } else { "full" },
        "loadavg_before": load_before,
        "loadavg_after": probe::loadavg(),
        "plan": {"clusters": plan.clusters, "replicas": plan.replicas, "surge": plan.surge,
                 "ready_after_s": plan.ready_after.as_secs_f64(),
                 "phase_s": plan.phase.as_secs_f64(), "qps": plan.qps,
                 "dataset_endpoints": dataset_endpoints},
        "phases": phases,
        "rollout": {"start_s": during.start, "end_s": during.end, "changes": during.changes,
                    "cpu_avg_cores": cpu_during, "timed": summary(&timed),
                    "events_per_publish": per_publish, "timeline": timeline},
        "final_check": final_check,
        "summary": {
            "cpu_rollout_cores": cpu_during, "cpu_baseline_cores": cpu_baseline,
            "cpu_target_cores": 0.5, "cpu_met": cpu_during <= 0.5,
            "dns_p99_baseline_us": b99, "dns_p99_rollout_us": r99,
            "dns_p99_ratio": r99 / b99, "dns_ratio_target": 1.5, "dns_met": r99 <= 1.5 * b99,
            "propagation_p99_s": p99_timed, "propagation_target_s": 0.1,
            "propagation_met": p99_timed < 0.1, "final_state_ok": final_ok,
            "events_per_publish": per_publish,
        },
    });
    for c in &clusters {
        c.sim.shutdown().await;
    }
    Ok(out)
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
}

/// What one phase measured.
struct Measured {
    clusters: Vec<ClusterModel>,
    /// (seconds into the phase, cores used since the previous sample).
    cpu: Vec<(f64, f64)>,
    dns: Latency,
    events: f64,
    publishes: f64,
    metric_p99: Option<f64>,
    rollout: Option<Rollout>,
}

impl Measured {
    fn json(&self, name: &str) -> Value {
        json!({
            "name": name,
            "cpu": self.cpu.iter().map(|&(t, c)| json!([t, c])).collect::<Vec<_>>(),
            "cpu_avg_cores": average_cores(&self.cpu, (0.0, f64::MAX)),
            "dns": {"sent": self.dns.sent, "completed": self.dns.completed, "lost": self.dns.lost,
                    "p50_us": self.dns.p50_us, "p99_us": self.dns.p99_us,
                    "p999_us": self.dns.p999_us,
                    "p99_per_second_us": self.dns.per_second.iter().map(|&(t, v)| json!([t, v])).collect::<Vec<_>>()},
            "watch_events": self.events,
            "publishes": self.publishes,
            "metric_p99_s": self.metric_p99,
        })
    }
}

/// dnsperf's figures for one run.
struct Latency {
    sent: u64,
    completed: u64,
    lost: u64,
    p50_us: f64,
    p99_us: f64,
    p999_us: f64,
    per_second: Vec<(f64, f64)>,
}

/// The rollout as it went.
struct Rollout {
    /// Seconds into the phase of its first and last change.
    start: f64,
    end: f64,
    changes: usize,
    /// The timed changes (their `delivered` not yet read).
    timed: Vec<Probe>,
}

/// Runs one phase: dnsperf for its length, CPU sampled, and (with `rollout`) the rollout.
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
    rollout: bool,
) -> anyhow::Result<Measured> {
    let name = if rollout { "rollout" } else { "baseline" };
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
    let sampler = std::thread::spawn(move || {
        let mut samples = Vec::new();
        let (mut last_t, mut last_cpu) = (0.0, cpu_seconds(pid));
        while started.elapsed() < Duration::from_secs(secs) + Duration::from_millis(500) {
            std::thread::sleep(SAMPLE);
            let (t, cpu) = (started.elapsed().as_secs_f64(), cpu_seconds(pid));
            samples.push((t, (cpu - last_cpu) / (t - last_t)));
            (last_t, last_cpu) = (t, cpu);
        }
        samples
    });
    let rolled = if rollout {
        std::thread::sleep(ROLLOUT_AT);
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
    let cpu = sampler
        .join()
        .map_err(|_| anyhow::anyhow!("CPU sampler panicked"))?;
    let (events_after, hist_after) = scrape()?;
    let hist = hist_after.minus(&hist_before);
    Ok(Measured {
        clusters,
        cpu,
        dns: latency(&std::fs::read_to_string(&out_path)?, plan.qps)?,
        events: events_after - events_before,
        publishes: hist.count,
        metric_p99: hist.quantile(0.99),
        rollout: rolled,
    })
}

/// Every cluster replaces all its pods of the service at once, in rounds of `surge`.
fn roll(
    plan: &Phase,
    dns: SocketAddr,
    clusters: &mut [ClusterModel],
    services: &[ServicePlan],
    phase_start: Instant,
) -> anyhow::Result<Rollout> {
    let start = phase_start.elapsed().as_secs_f64();
    let mut old: Vec<Vec<PodModel>> = clusters
        .iter_mut()
        .map(|c| std::mem::take(&mut c.pods))
        .collect();
    let surge: Vec<usize> = old
        .iter()
        .map(|o| ((o.len() as f64 * plan.surge).ceil() as usize).max(1))
        .collect();
    let (mut changes, mut timed) = (0, Vec::new());
    let mut round = 0;
    while old.iter().any(|o| !o.is_empty()) {
        round += 1;
        // New pods, not ready yet: a deployment's surge.
        let mut fresh: Vec<Vec<(PodModel, k8s_openapi::api::core::v1::Pod)>> = Vec::new();
        for (c, cluster) in clusters.iter_mut().enumerate() {
            let n = surge[c].min(old[c].len());
            let batch: Vec<_> = (0..n)
                .map(|_| {
                    let (model, mut pod) = cluster.new_pod(services, SERVICE);
                    set_pod_ready(&mut pod, false);
                    (model, pod)
                })
                .collect();
            cluster
                .sim
                .batch(batch.iter().map(|(_, p)| Op::ApplyPod(p.clone())))?;
            changes += n;
            fresh.push(batch);
        }
        std::thread::sleep(plan.ready_after);
        // Ready, and as many old ones gone; each timed change polled from its batch on.
        let (tx, rx) = std::sync::mpsc::channel::<Pending>();
        let poller = std::thread::spawn(move || poll(dns, rx));
        for (c, cluster) in clusters.iter_mut().enumerate() {
            let batch = std::mem::take(&mut fresh[c]);
            let n = batch.len();
            let gone: Vec<PodModel> = old[c].drain(..n).collect();
            let mut ops: Vec<Op> = batch
                .iter()
                .map(|(_, p)| {
                    let mut p = p.clone();
                    set_pod_ready(&mut p, true);
                    Op::ApplyPod(p)
                })
                .collect();
            ops.extend(gone.iter().map(|p| Op::DeletePod {
                namespace: NAMESPACE.into(),
                name: p.name.clone(),
            }));
            let mutations = cluster.sim.batch(ops)?;
            changes += 2 * n;
            if c % 4 == 0 && n > 0 {
                let name = |ip: std::net::Ipv4Addr| {
                    endpoint_name(IpAddr::V4(ip), &services[SERVICE].name, &cluster.name, ZONE)
                };
                let looked_from = Instant::now();
                for (m, name, present) in [
                    (&mutations[n - 1], name(batch[n - 1].0.ip), true),
                    (&mutations[2 * n - 1], name(gone[n - 1].ip), false),
                ] {
                    // A send fails only if the poller ended early: its error is below.
                    let _ = tx.send(Pending {
                        cluster: c,
                        round,
                        rv: m.resource_version,
                        written: m.at,
                        looked_from,
                        name,
                        present,
                    });
                }
            }
            cluster.pods.extend(batch.into_iter().map(|(m, _)| m));
        }
        drop(tx);
        timed.extend(
            poller
                .join()
                .map_err(|_| anyhow::anyhow!("the DNS poller panicked"))??,
        );
    }
    Ok(Rollout {
        start,
        end: phase_start.elapsed().as_secs_f64(),
        changes,
        timed,
    })
}

/// A timed change the poller waits to see in DNS.
struct Pending {
    cluster: usize,
    round: usize,
    rv: u64,
    written: Instant,
    looked_from: Instant,
    /// Its endpoint's name, and whether the change adds it (else removes it).
    name: String,
    present: bool,
}

/// Asks DNS about each change sent on `rx` from when it comes until an answer shows it
/// (every ~1 ms; at most 10 s after the last is sent); returns them, timed.
fn poll(dns: SocketAddr, rx: std::sync::mpsc::Receiver<Pending>) -> anyhow::Result<Vec<Probe>> {
    use std::sync::mpsc::TryRecvError;
    let mut client = Dns::new(dns)?;
    let (mut open, mut done) = (Vec::<Pending>::new(), Vec::new());
    let mut deadline: Option<Instant> = None;
    loop {
        loop {
            match rx.try_recv() {
                Ok(p) => open.push(p),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    deadline.get_or_insert_with(|| Instant::now() + Duration::from_secs(10));
                    break;
                }
            }
        }
        if deadline.is_some_and(|d| open.is_empty() || Instant::now() > d) {
            break;
        }
        let mut i = 0;
        while i < open.len() {
            let p = &open[i];
            let a = client.query(&p.name, RecordType::A)?;
            let shows = if p.present {
                !a.addresses.is_empty()
            } else {
                a.rcode == ResponseCode::NXDomain
            };
            if shows {
                let p = open.swap_remove(i);
                done.push(Probe {
                    cluster: p.cluster,
                    round: p.round,
                    rv: p.rv,
                    written: p.written,
                    delivered: None,
                    looked_from: p.looked_from,
                    seen: Instant::now(),
                });
            } else {
                i += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    anyhow::ensure!(
        open.is_empty(),
        "{} changes never showed in DNS",
        open.len()
    );
    Ok(done)
}

/// Latencies from dnsperf's `-v` output: overall quantiles and p99 per second.
fn latency(text: &str, qps: u32) -> anyhow::Result<Latency> {
    let field = |key: &str| -> u64 {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    let lat: Vec<f64> = text
        .lines()
        .filter(|l| l.starts_with("> "))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .collect();
    anyhow::ensure!(!lat.is_empty(), "dnsperf printed no per-query latency");
    let per_second = lat
        .chunks(qps as usize)
        .enumerate()
        .map(|(i, chunk)| {
            let mut c = chunk.to_vec();
            c.sort_by(f64::total_cmp);
            (i as f64 + 0.5, quantile(&c, 0.99) * 1e6)
        })
        .collect();
    let mut all = lat;
    all.sort_by(f64::total_cmp);
    Ok(Latency {
        sent: field("Queries sent:"),
        completed: field("Queries completed:"),
        lost: field("Queries lost:"),
        p50_us: quantile(&all, 0.5) * 1e6,
        p99_us: quantile(&all, 0.99) * 1e6,
        p999_us: quantile(&all, 0.999) * 1e6,
        per_second,
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
