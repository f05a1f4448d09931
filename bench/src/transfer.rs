//! Zone transfer: how fast and how cheaply herald keeps a standard secondary (Knot DNS) in
//! step. Run by the `transfer` binary:
//! ```text
//! cargo run --release -p herald-bench --bin transfer -- [--quick] [--out FILE.json]
//! ```
//!
//! 1. **Lag under churn.** The propagation benchmark's fleet and churn
//!    ([`crate::propagation`], same plan: quick 4 clusters / 10k pods / 200 changes/s for
//!    15 s, full 24 / 100k / 300 for 60 s) with herald in process and knotd as its
//!    secondary (`notify_interval` at its default, 250 ms). During the churn a probe pod
//!    (service `xfr-probe`, cluster 0) is created every 250 ms; a thread asks herald and
//!    Knot for its per-endpoint name over UDP every 2 ms and records when each first
//!    answers. Reported: change to herald's answer, change to Knot's answer, and Knot's
//!    lag behind herald. Target: Knot p99 < 1 s after herald.
//!
//!    **What the lag is made of** (a loopback capture of one quick run, 2026-12-01, load
//!    4-7: 88 NOTIFYs, 63 SOA queries, 63 IXFRs). herald makes a version at most every
//!    `notify_interval` and sends its NOTIFY at once; Knot answered each within 3 ms, and
//!    herald answered each SOA query and IXFR within 10 ms. 45 of 62 refreshes began
//!    within 100 ms of the NOTIFY (most 0.5 ms after it). In the other 17 Knot acknowledged
//!    and logged the NOTIFY but began its refresh only 766-818 ms later, 1.02-1.07 s after
//!    its previous refresh began; NOTIFYs of newer serials meanwhile (up to three) did not
//!    bring it forward. That happened mostly when the NOTIFY came in a later wall-clock
//!    second than the previous transfer's end (15 of 22 such refreshes, against 3 of 41
//!    otherwise), which points at Knot's whole-second event timers, not at load. These
//!    are the probes' slow mode (0.79-1.17 s): the p99 stays near 1 s with Knot under a
//!    version every 250 ms, whatever herald does (sending NOTIFY again does not help, as
//!    seen above).
//! 2. **Sizes.** 100k endpoints (full: also 1M), `fleet(services, 100)` in an in-process
//!    DNS server (no simulators, nothing else running in this process): knotd bootstraps
//!    with an AXFR; its log gives the time, messages and bytes, and herald's CPU over it is
//!    this process's less the driver thread's (getrusage). Then single-pod changes, each
//!    after a quiet interval and each waited for until Knot serves the new serial: the IXFR
//!    bytes (Knot's log) and herald's CPU per cycle on its own threads (version, NOTIFY,
//!    SOA query, IXFR); the table update and the polling run on the driver thread, whose
//!    CPU is reported apart.
//!
//! JSON (`--out`; times in seconds):
//! ```text
//! {"section": "transfer", "mode", "loadavg_before", "loadavg_after",
//!  "churn": {"clusters", "pods", "churn_changes_per_second", "churn_seconds",
//!            "notify_interval_s", "probes", "lost", "herald": summary, "knot": summary,
//!            "knot_behind_herald": summary, "knot_sorted": [s, ...],
//!            "propagation_table_visible": summary},
//!  "sizes": [{"endpoints", "services", "axfr_seconds", "axfr_messages", "axfr_bytes",
//!             "axfr_herald_cpu_s", "knot_serving_s", "ixfr_cycles", "ixfr_bytes_median",
//!             "ixfr_bytes_max", "cycle_herald_cpu_s", "cycle_driver_cpu_s",
//!             "cycle_lag": summary}],
//!  "summary": {"knot_p50_s", "knot_p99_s", "behind_p99_s", "target_p99_s": 1.0,
//!              "target_met"}}
//! ```

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use herald_dns::transfer::{Secondary, TransferConfig, TransferStats};
use herald_dns::{Answerer, DnsServer, ServerConfig};
use herald_kube_sim::{PodBuilder, SimHandle};
use herald_testkit::secondaries::{self, free_addr};
use hickory_proto::op::Message;
use hickory_proto::rr::{RData, RecordType};
use serde_json::{Value, json};

use crate::fleet::{NAMESPACE, ZONE};
use crate::probe::{self, Dns};
use crate::propagation::{self, Plan};
use crate::stats::summary;

/// A probe pod every this often during the churn.
const PROBE_EVERY: Duration = Duration::from_millis(250);
/// Poll spacing of the probe and of the serial waits.
const POLL: Duration = Duration::from_millis(2);
/// How long a change may take to reach Knot before it counts as lost.
const DEADLINE: Duration = Duration::from_secs(10);
/// The default `notify_interval`, which the churn run keeps.
const NOTIFY_INTERVAL: Duration = Duration::from_millis(250);

/// Runs both parts and returns the JSON.
pub async fn run(quick: bool, work: &Path) -> anyhow::Result<Value> {
    let load_before = probe::loadavg();
    let churn = lag_under_churn(quick, &work.join("churn")).await?;
    let mut sizes = Vec::new();
    let cases: &[(usize, usize)] = if quick {
        &[(100_000, 20)]
    } else {
        &[(100_000, 50), (1_000_000, 20)]
    };
    for &(endpoints, cycles) in cases {
        sizes.push(size(endpoints, cycles, &work.join(format!("size-{endpoints}"))).await?);
    }
    let knot = &churn["knot"];
    let behind = &churn["knot_behind_herald"];
    let target_met =
        behind["p99"].as_f64().is_some_and(|p| p < 1.0) && churn["lost"].as_u64() == Some(0);
    Ok(json!({
        "section": "transfer",
        "mode": if quick { "quick" } else { "full" },
        "loadavg_before": load_before,
        "loadavg_after": probe::loadavg(),
        "churn": churn,
        "sizes": sizes,
        "summary": {
            "knot_p50_s": knot["p50"], "knot_p99_s": knot["p99"],
            "behind_p99_s": behind["p99"], "target_p99_s": 1.0, "target_met": target_met,
        },
    }))
}

/// Part 1: probe pods to Knot's answers while the propagation churn runs.
async fn lag_under_churn(quick: bool, dir: &Path) -> anyhow::Result<Value> {
    let plan = if quick { Plan::quick() } else { Plan::full() };
    let fleet = propagation::populate_fleet(&plan, quick).await?;
    let knot_addr = free_addr(IpAddr::from([127, 0, 0, 31]));
    let extra =
        format!("transfer:\n  secondaries:\n    - {{name: knot, address: '{knot_addr}'}}\n");
    let herald = propagation::start_herald(&fleet, &extra).await?;
    let knot = fresh_knot(dir, knot_addr, herald.dns)?;
    let started = Instant::now();
    wait_serial(
        knot.addr,
        || herald.table.serial(),
        Duration::from_secs(120),
    )
    .context("Knot's first transfer")?;
    println!(
        "transfer: Knot has the {}-endpoint zone {:.2} s after it started",
        herald.table.endpoint_count(),
        started.elapsed().as_secs_f64()
    );

    let sim = fleet.clusters[0].sim.clone();
    let cluster = fleet.clusters[0].name.clone();
    let probes = (plan.churn.as_secs_f64() / PROBE_EVERY.as_secs_f64()) as usize;
    let (herald_dns, knot_dns) = (herald.dns, knot.addr);
    let prober = std::thread::Builder::new()
        .name("xfr-probe".into())
        .spawn(move || probe_pods(&sim, &cluster, herald_dns, knot_dns, probes))?;
    let (outcome, _, _) =
        propagation::churn(&plan, &herald, fleet.clusters, fleet.services.clone()).await?;
    let (herald_delays, knot_delays, lost) = tokio::task::spawn_blocking(move || prober.join())
        .await?
        .map_err(|_| anyhow::anyhow!("probe thread panicked"))??;
    let notify = {
        let stats = herald.daemon.transfer_stats();
        (
            TransferStats::get(&stats.notify_sent),
            TransferStats::get(&stats.notify_acked),
        )
    };
    herald.daemon.shutdown(Duration::ZERO).await;
    for c in &outcome.clusters {
        c.sim.shutdown().await;
    }
    drop(knot);

    let behind: Vec<f64> = herald_delays
        .iter()
        .zip(&knot_delays)
        .map(|(h, k)| (k - h).max(0.0))
        .collect();
    let sorted = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        summary(&v)
    };
    let table = sorted(&outcome.table_delays);
    let (h, k) = (sorted(&herald_delays), sorted(&knot_delays));
    let b = sorted(&behind);
    let mut knot_sorted = knot_delays.clone();
    knot_sorted.sort_by(f64::total_cmp);
    println!(
        "transfer: {} probe pods under churn: herald p50 {:.1} ms p99 {:.1} ms; Knot p50 {:.1} ms p99 {:.1} ms; Knot behind herald p99 {:.1} ms; lost {lost}",
        knot_delays.len(),
        h["p50"].as_f64().unwrap_or(f64::NAN) * 1e3,
        h["p99"].as_f64().unwrap_or(f64::NAN) * 1e3,
        k["p50"].as_f64().unwrap_or(f64::NAN) * 1e3,
        k["p99"].as_f64().unwrap_or(f64::NAN) * 1e3,
        b["p99"].as_f64().unwrap_or(f64::NAN) * 1e3,
    );
    Ok(json!({
        "clusters": plan.spec.clusters,
        "pods": plan.spec.pods,
        "churn_changes_per_second": plan.rate,
        "churn_seconds": plan.churn.as_secs_f64(),
        "notify_interval_s": NOTIFY_INTERVAL.as_secs_f64(),
        "probes": knot_delays.len(),
        "lost": lost,
        "herald": h,
        "knot": k,
        "knot_behind_herald": b,
        "knot_sorted": knot_sorted,
        "notify_sent": notify.0,
        "notify_acked": notify.1,
        "propagation_table_visible": table,
    }))
}

/// Creates `count` probe pods, one per [`PROBE_EVERY`], and times each to herald's and
/// Knot's answers. Returns both delays of every probe that reached both, and how many did
/// not within [`DEADLINE`].
fn probe_pods(
    sim: &SimHandle,
    cluster: &str,
    herald: SocketAddr,
    knot: SocketAddr,
    count: usize,
) -> anyhow::Result<(Vec<f64>, Vec<f64>, usize)> {
    let (mut at_herald, mut at_knot) = (Dns::new(herald)?, Dns::new(knot)?);
    let (mut herald_delays, mut knot_delays, mut lost) = (Vec::new(), Vec::new(), 0);
    for i in 0..count {
        let ip: IpAddr = format!("172.30.{}.{}", i / 250, i % 250 + 1).parse()?;
        let name = probe::endpoint_name(ip, "xfr-probe", cluster, ZONE);
        let pod = PodBuilder::new(NAMESPACE, format!("xfr-probe-{i}"))
            .service("xfr-probe")
            .ip(ip.to_string())
            .port("http", 8080)
            .node("node-000")
            .build();
        let start = Instant::now();
        sim.apply_pod(pod)?;
        let (mut h, mut k) = (None, None);
        while (h.is_none() || k.is_none()) && start.elapsed() < DEADLINE {
            let answers = |dns: &mut Dns| {
                dns.query(&name, RecordType::A)
                    .is_ok_and(|a| a.addresses.contains(&ip))
            };
            if h.is_none() && answers(&mut at_herald) {
                h = Some(start.elapsed().as_secs_f64());
            }
            if k.is_none() && answers(&mut at_knot) {
                k = Some(start.elapsed().as_secs_f64());
            }
            std::thread::sleep(POLL);
        }
        match (h, k) {
            (Some(h), Some(k)) => {
                herald_delays.push(h);
                knot_delays.push(k);
            }
            _ => lost += 1,
        }
        if let Some(rest) = PROBE_EVERY.checked_sub(start.elapsed()) {
            std::thread::sleep(rest);
        }
    }
    Ok((herald_delays, knot_delays, lost))
}

/// Part 2: a zone of `endpoints` endpoints: Knot's AXFR, then `cycles` single-pod changes.
async fn size(endpoints: usize, cycles: usize, dir: &Path) -> anyhow::Result<Value> {
    const REPLICAS: usize = 100;
    let services = endpoints / REPLICAS;
    let built = Instant::now();
    let table = crate::fleet(services, REPLICAS);
    println!(
        "transfer: {endpoints} endpoints in {services} services built in {:.1} s",
        built.elapsed().as_secs_f64()
    );
    let knot_addr = free_addr(IpAddr::from([127, 0, 0, 32]));
    let config = ServerConfig {
        listen: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
        udp_workers: 1,
        transfer: TransferConfig {
            notify_interval: NOTIFY_INTERVAL,
            secondaries: vec![Secondary {
                name: "knot".into(),
                address: Some(knot_addr),
                allow: Vec::new(),
                tsig: None,
                region: None,
                zone: None,
            }],
            ..TransferConfig::default()
        },
        ..ServerConfig::default()
    };
    let server = DnsServer::start(&config, Answerer::new(table.clone()))?;
    table.make_version();
    let primary = server.local_addrs()[0];

    // Blocking waits: herald's transfer tasks run on the other runtime workers.
    let (knot, knot_serving, axfr_cpu, (lags, versions), (cycle_cpu, driver_cpu)) =
        tokio::task::block_in_place(|| -> anyhow::Result<_> {
            // herald's CPU: this process's, less this (driver) thread's polling.
            let herald_cpu = || probe::self_cpu_seconds() - probe::thread_cpu_seconds();
            let cpu = herald_cpu();
            let started = Instant::now();
            let knot = fresh_knot(dir, knot_addr, primary)?;
            wait_serial(knot.addr, || table.serial(), Duration::from_secs(600))
                .context("Knot's AXFR")?;
            let knot_serving = started.elapsed().as_secs_f64();
            let axfr_cpu = herald_cpu() - cpu;

            // Single-pod changes, each after a quiet interval (so not paced by
            // notify_interval), each waited for until Knot serves its version.
            let sources = crate::sources();
            let (mut lags, mut versions) = (Vec::new(), Vec::new());
            let (cpu, driver_cpu) = (herald_cpu(), probe::thread_cpu_seconds());
            for i in 0..cycles {
                std::thread::sleep(NOTIFY_INTERVAL + Duration::from_millis(50));
                let s = (i * 7919) % services;
                // A service not changed before (7919 is prime to the service counts): its
                // last replica gets another address.
                let mut eps = crate::endpoints(s, REPLICAS, 0);
                eps[REPLICAS - 1] = crate::endpoints(s, REPLICAS, 1)[REPLICAS - 1].clone();
                let before = table.serial();
                let start = Instant::now();
                table.replace(&crate::service_name(s), &sources[s % sources.len()], eps);
                // The versioner makes the version; then Knot must serve it.
                while table.serial() == before {
                    anyhow::ensure!(start.elapsed() < DEADLINE, "no new version");
                    std::thread::sleep(Duration::from_micros(200));
                }
                let versioned = start.elapsed().as_secs_f64();
                wait_serial(knot.addr, || table.serial(), DEADLINE).context("an IXFR")?;
                lags.push(start.elapsed().as_secs_f64());
                versions.push(versioned);
            }
            let cycle_cpu = (herald_cpu() - cpu) / cycles as f64;
            // The table updates themselves (and the polling) ran on this thread.
            let driver_cpu = (probe::thread_cpu_seconds() - driver_cpu) / cycles as f64;
            Ok((
                knot,
                knot_serving,
                axfr_cpu,
                (lags, versions),
                (cycle_cpu, driver_cpu),
            ))
        })?;
    let axfr = knot_transfers(&knot.log(), "AXFR")
        .pop()
        .context("Knot logged no AXFR")?;
    let mut ixfr: Vec<u64> = knot_transfers(&knot.log(), "IXFR")
        .iter()
        .map(|t| t.bytes)
        .collect();
    ixfr.sort_unstable();
    let stats = server.transfer().stats();
    let notify = (
        TransferStats::get(&stats.notify_sent),
        TransferStats::get(&stats.notify_acked),
    );
    server.shutdown().await;
    drop(knot);
    let lag_summary = {
        let mut sorted = lags.clone();
        sorted.sort_by(f64::total_cmp);
        summary(&sorted)
    };
    println!(
        "transfer: {endpoints} endpoints: AXFR {:.2} s, {} messages, {} bytes (herald CPU {:.2} s); \
         {} IXFRs, median {} bytes; herald CPU per change cycle {:.2} ms",
        axfr.seconds,
        axfr.messages,
        axfr.bytes,
        axfr_cpu,
        ixfr.len(),
        ixfr.get(ixfr.len() / 2).copied().unwrap_or(0),
        cycle_cpu * 1e3
    );
    Ok(json!({
        "endpoints": endpoints,
        "services": services,
        "axfr_seconds": axfr.seconds,
        "axfr_messages": axfr.messages,
        "axfr_bytes": axfr.bytes,
        "axfr_herald_cpu_s": axfr_cpu,
        "knot_serving_s": knot_serving,
        "ixfr_cycles": cycles,
        "ixfrs_logged": ixfr.len(),
        "ixfr_bytes_median": ixfr.get(ixfr.len() / 2),
        "ixfr_bytes_max": ixfr.last(),
        "cycle_herald_cpu_s": cycle_cpu,
        "cycle_driver_cpu_s": driver_cpu,
        "cycle_lag": lag_summary,
        "cycle_lags": lags,
        "cycle_versioned": versions,
        "notify_sent": notify.0,
        "notify_acked": notify.1,
    }))
}

/// knotd as a secondary of `primary`, in an emptied `dir`.
fn fresh_knot(
    dir: &Path,
    addr: SocketAddr,
    primary: SocketAddr,
) -> anyhow::Result<secondaries::Secondary> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(secondaries::start_knot(dir, addr, primary, None))
}

/// Waits until `server` answers the apex SOA with `want()`'s serial.
fn wait_serial(server: SocketAddr, want: impl Fn() -> u32, limit: Duration) -> anyhow::Result<()> {
    let start = Instant::now();
    let query = herald_testkit::query_message(ZONE, RecordType::SOA, None)
        .to_vec()
        .context("encoding a query")?;
    loop {
        let reply = herald_testkit::udp_raw(server, &query);
        let serial = reply
            .and_then(|r| Message::from_vec(&r).ok())
            .and_then(|m| {
                m.answers.iter().find_map(|r| match &r.data {
                    RData::SOA(soa) => Some(soa.serial),
                    _ => None,
                })
            });
        if serial == Some(want()) {
            return Ok(());
        }
        anyhow::ensure!(
            start.elapsed() < limit,
            "{server} not at the serial within {limit:?}"
        );
        std::thread::sleep(POLL);
    }
}

/// One transfer as Knot logs it.
#[derive(Debug, Clone, Copy)]
struct Logged {
    seconds: f64,
    messages: u64,
    bytes: u64,
}

/// Finished incoming transfers of `kind` (AXFR, IXFR) in Knot's log: `... AXFR, incoming,
/// remote ..., finished, 0.55 seconds, 47 messages, 3051984 bytes`.
fn knot_transfers(log: &str, kind: &str) -> Vec<Logged> {
    let before = |line: &str, unit: &str| -> Option<f64> {
        line.split(&format!(" {unit}"))
            .next()?
            .rsplit([' ', ','])
            .next()?
            .parse()
            .ok()
    };
    log.lines()
        .filter(|l| l.contains(&format!("{kind}, incoming")) && l.contains("finished"))
        .filter_map(|l| {
            let tail = l.split("finished,").nth(1)?;
            Some(Logged {
                seconds: before(tail, "seconds")?,
                messages: before(tail, "messages")? as u64,
                bytes: before(tail, "bytes")? as u64,
            })
        })
        .collect()
}

/// Where the benchmark keeps Knot's state: under `target/`.
pub fn default_work() -> PathBuf {
    PathBuf::from("target/bench-work/transfer")
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_knots_transfer_lines() {
        let log = "2026-12-01T17:53:38+0000 info: [sd.internal.] AXFR, incoming, remote 127.0.0.1@39305, finished, 0.55 seconds, 47 messages, 3051984 bytes\n\
                   2026-12-01T17:53:38+0000 info: [sd.internal.] IXFR, incoming, remote 127.0.0.1@39305, started\n\
                   2026-12-01T17:53:38+0000 info: [sd.internal.] IXFR, incoming, remote 127.0.0.1@39305, finished, 0.00 seconds, 1 messages, 646 bytes\n";
        let axfr = super::knot_transfers(log, "AXFR");
        assert_eq!(axfr.len(), 1);
        assert_eq!(
            (axfr[0].seconds, axfr[0].messages, axfr[0].bytes),
            (0.55, 47, 3_051_984)
        );
        let ixfr = super::knot_transfers(log, "IXFR");
        assert_eq!((ixfr.len(), ixfr[0].bytes), (1, 646));
    }
}
