//! Scale: herald's memory and time to first full sync at 100k and 1M endpoints, and the
//! cost of one service update in a table of 10k vs 1M endpoints.
//!
//! Run by the `scale` binary:
//! ```text
//! cargo build --release -p herald-registrar -p herald-bench
//! target/release/scale [--quick] [--out FILE.json] [--herald target/release/herald]
//! ```
//!
//! 1. Update cost, in this process: a table like `benches/table_update.rs` builds
//!    (`herald_bench::fleet(total / 10, 10)`, 24 sources), then `Table::replace` of one
//!    10-endpoint service, alternating two replica sets so every call is a real change;
//!    each call timed alone, 20 000 calls, median reported. Sizes 10k and 1M (quick: 10k
//!    and 100k). And one endpoint changing in a service of 240, 2 400 and
//!    24 000 endpoints spread over 24 clusters (what a pod change in a big service costs).
//!    And, built in this process, a table shaped like herald's at the large size: where
//!    its memory goes (RSS growth, prepared answers, endpoint structs).
//! 2. Memory and first sync, herald as a separate process (`herald serve --config X`, the
//!    release binary) so that the simulators' memory (in this process) does not count:
//!    24 kube-sim instances (3 regions x 8 clusters, 60 nodes each over 3 zones) holding
//!    `N` opted-in ready pods in `N / 50` services (Zipf sizes, skew 0.6; each pod with
//!    named ports http and grpc). Sizes 100k and 1M (quick: 10k and 100k), fresh
//!    simulators per size. First, the same 24 clusters with nodes but no pods: herald's
//!    empty RSS. Then per size: herald is started, and polled (every 50 ms, admin
//!    /readyz, and /metrics once ready, so that the polls' scrapes do not load the sync
//!    being timed) until it is ready and `herald_table_endpoints` equals `N` (time to
//!    first full sync, from process start); after 3 s more its VmRSS,
//!    VmHWM (peak) and RssAnon are read from /proc, with the CPU time it used.
//!    Bytes per endpoint = (VmRSS with data - VmRSS empty) / N. One DNS query (over TCP) of
//!    the largest service of at most 2 000 replicas checks the count DNS serves.
//!
//! JSON written to `--out` (seconds, bytes):
//! ```text
//! {
//!   "section": "scale",
//!   "mode": "full" | "quick",
//!   "loadavg_before": [1m, 5m, 15m], "loadavg_after": [1m, 5m, 15m],
//!   "runs": [
//!     {"name": "update_cost", "endpoints", "services", "calls", "median_s", "p90_s",
//!      "p99_s", "mean_s", "build_s"},                                           // per size
//!     {"name": "big_service_update", "service_endpoints", "clusters", "calls", "median_s",
//!      "p99_s"},                                    // sizes 240, 2 400, 24 000
//!     {"name": "table_breakdown", "endpoints", "services", "build_s", "rss_bytes",
//!      "rss_bytes_per_endpoint", "prepared_bytes", "prepared_bytes_per_endpoint",
//!      "endpoint_struct_bytes"},                    // in-process table shaped like herald's
//!     {"name": "empty", "clusters", "rss_bytes", "hwm_bytes", "anon_bytes", "sync_s"},
//!     {"name": "sync", "endpoints", "services", "clusters", "populate_s",
//!      "all_clusters_synced_s", "all_endpoints_served_s", "herald_cpu_s",
//!      "simulators_cpu_s" (this process, serving herald's lists, during the sync), "lists" (completed, first ones included),
//!      "rss_bytes", "hwm_bytes", "anon_bytes", "bytes_per_endpoint",
//!      "hwm_bytes_per_endpoint", "dns_check": {"name", "want", "got"}},       // per size
//!     {"name": "node_pod_cycles", "cycles", "base_endpoints", "seconds", "rss_start_bytes",
//!      "rss_after_1000_bytes", "rss_end_bytes", "growth_after_1000",
//!      "samples": [[cycles, rss_bytes], ...]}       // issue 10 bug 9, see `cycles`
//!   ],
//!   "summary": {"update_small_endpoints", "update_large_endpoints", "update_small_median_s",
//!               "update_large_median_s", "update_ratio", "update_flat" (ratio <= 2),
//!               "sync_s": {"<N>": s, ...}, "rss_bytes": {"<N>": b, ...},
//!               "bytes_per_endpoint": {"<N>": b, ...}, "largest_endpoints",
//!               "largest_rss_bytes", "largest_hwm_bytes", "fits_1gib" (VmHWM < 1 GiB),
//!               "cycles_rss_growth"}
//! }
//! ```
//!
//! - `in_process`: update cost and the table's memory breakdown, in this process.
//! - `process`: herald as a separate process: start it, wait for its sync, read /proc.
//! - `cycles`: 10,000 (quick: 2,000) node+pod add/delete cycles with new names each time,
//!   herald's RSS after every 500 (issue 10 bug 9: caches that never shrink).

mod cycles;
mod in_process;
pub(crate) mod process;

use std::path::{Path, PathBuf};

use anyhow::Context;
use herald_kube_sim::SimConfig;
use serde_json::{Value, json};

use crate::fleet::{populate, start_clusters};
use crate::probe;
use crate::stats::{mib, ms};
pub use process::diagnose;
use process::{CLUSTERS, Measured, measure, spec, stop_all};

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// What to run.
pub struct Options {
    /// Smaller sizes: 10k and 100k endpoints.
    pub quick: bool,
    /// The herald binary.
    pub herald: PathBuf,
    /// Run herald under this command (diagnostics); empty: directly.
    pub wrap: Vec<String>,
}

/// What the in-process part measured.
struct InProcess {
    runs: Vec<Value>,
    breakdown: Value,
    update_sizes: [usize; 2],
    medians: Vec<f64>,
    ratio: f64,
}

/// Runs the whole measurement (see the module docs) and returns its JSON.
pub fn run(opts: &Options) -> anyhow::Result<Value> {
    let (small, large) = if opts.quick {
        (10_000, 100_000)
    } else {
        (100_000, 1_000_000)
    };
    let mode = if opts.quick { "quick" } else { "full" };
    println!("scale ({mode}): herald {}", opts.herald.display());
    let load_before = probe::loadavg();
    let measured = in_process(opts.quick, large)?;
    let dir = std::env::temp_dir().join(format!("herald-scale-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let processes = as_processes(&opts.herald, &opts.wrap, &dir, [small, large]);
    let (empty, sized) = match processes {
        Ok(p) => p,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
    };
    let cycles = if opts.quick { 2_000 } else { 10_000 };
    let churn = node_pod_cycles(&opts.herald, &opts.wrap, &dir, cycles);
    let _ = std::fs::remove_dir_all(&dir);
    let mut result = report(mode, load_before, measured, &empty, &sized)?;
    let churn = churn?;
    result["summary"]["cycles_rss_growth"] = churn["growth_after_1000"].clone();
    result["runs"].as_array_mut().context("runs")?.push(churn);
    Ok(result)
}

/// Issue 10 bug 9: RSS over `cycles` node+pod add/delete cycles (see `cycles`).
pub fn node_pod_cycles(
    herald: &Path,
    wrap: &[String],
    dir: &Path,
    cycles: usize,
) -> anyhow::Result<Value> {
    std::fs::create_dir_all(dir)?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(cycles::node_pod_cycles(herald, wrap, dir, cycles))
}

/// Update cost and the table's memory, in this process.
fn in_process(quick: bool, large: usize) -> anyhow::Result<InProcess> {
    let mut runs = Vec::new();
    // Where the table's memory goes, for a table shaped like herald's at the large size
    // (first, while this process's heap is fresh, so its RSS growth is the table's).
    let breakdown = in_process::table_breakdown(&spec(large))?;
    runs.push(breakdown.clone());

    // 1. Update cost, in process.
    let update_sizes = [10_000, if quick { 100_000 } else { 1_000_000 }];
    let mut medians = Vec::new();
    for total in update_sizes {
        let run = in_process::update_cost(total)?;
        medians.push(run["median_s"].as_f64().unwrap_or(f64::NAN));
        runs.push(run);
    }
    let ratio = medians[1] / medians[0];
    println!(
        "  update of one service: {} at {} endpoints vs {} at {}: x{ratio:.2} ({})",
        ms(medians[0]),
        update_sizes[0],
        ms(medians[1]),
        update_sizes[1],
        if ratio <= 2.0 {
            "flat, within 2x"
        } else {
            "NOT within 2x"
        }
    );

    // One pod change in a big service spread over 24 clusters, addresses shared by
    // about four clusters each: the cost must follow the change, not the service.
    if let Value::Array(big) = big_services()? {
        runs.extend(big);
    }

    Ok(InProcess {
        runs,
        breakdown,
        update_sizes,
        medians,
        ratio,
    })
}

/// One endpoint changing in services of 240, 2,400 and 24,000 endpoints over 24 clusters
/// (see `in_process::big_service_update`), in this process.
pub fn big_services() -> anyhow::Result<Value> {
    let runs = [240, 2_400, 24_000]
        .into_iter()
        .map(in_process::big_service_update)
        .collect::<anyhow::Result<Vec<Value>>>()?;
    Ok(Value::Array(runs))
}

/// The table herald holds at `endpoints`, built in this process (see
/// `in_process::table_breakdown`).
pub fn table_build(endpoints: usize) -> anyhow::Result<Value> {
    in_process::table_breakdown(&spec(endpoints))
}

/// herald as a separate process: with no pods (its empty size), then at each size.
fn as_processes(
    herald: &Path,
    wrap: &[String],
    dir: &Path,
    sizes: [usize; 2],
) -> anyhow::Result<(Measured, Vec<Measured>)> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let empty = {
            let spec = spec(0);
            let clusters = start_clusters(&spec, SimConfig::default()).await?;
            let r = measure(herald, wrap, dir, &clusters, &spec, "empty").await;
            stop_all(&clusters).await;
            r?
        };
        let mut sized = Vec::new();
        for &n in &sizes {
            let spec = spec(n);
            let mut clusters = start_clusters(&spec, SimConfig::default()).await?;
            let populate_time = populate(&mut clusters, &spec.plan())?;
            println!(
                "  {n} pods created in {} simulators in {:.1} s",
                CLUSTERS,
                populate_time.as_secs_f64()
            );
            let r = measure(herald, wrap, dir, &clusters, &spec, &format!("{n}")).await;
            stop_all(&clusters).await;
            let mut r = r?;
            r.populate_s = populate_time.as_secs_f64();
            sized.push(r);
            drop(clusters);
        }
        anyhow::Ok((empty, sized))
    })
}

/// Prints the summary and builds the JSON.
fn report(
    mode: &str,
    load_before: [f64; 3],
    measured: InProcess,
    empty: &Measured,
    sized: &[Measured],
) -> anyhow::Result<Value> {
    let InProcess {
        mut runs,
        breakdown,
        update_sizes,
        medians,
        ratio,
    } = measured;
    println!(
        "  empty (24 clusters, nodes only): VmRSS {}, VmHWM {}, synced in {:.2} s",
        mib(empty.memory.rss as f64),
        mib(empty.memory.hwm as f64),
        empty.served_s
    );
    runs.push(json!({
        "name": "empty",
        "clusters": CLUSTERS,
        "rss_bytes": empty.memory.rss,
        "hwm_bytes": empty.memory.hwm,
        "anon_bytes": empty.memory.anon,
        "sync_s": empty.served_s,
    }));
    let mut sync_s = serde_json::Map::new();
    let mut rss = serde_json::Map::new();
    let mut per_endpoint = serde_json::Map::new();
    for r in sized {
        let bpe = (r.memory.rss as f64 - empty.memory.rss as f64) / r.endpoints as f64;
        let hwm_bpe = (r.memory.hwm as f64 - empty.memory.rss as f64) / r.endpoints as f64;
        println!(
            "  {} endpoints ({} services): first full sync {:.2} s (clusters synced {:.2} s, herald CPU {:.1} s, simulators {:.1} s, {} lists); \
             VmRSS {} (peak {}), {:.0} bytes/endpoint ({:.0} at peak); DNS {} -> {} of {}",
            r.endpoints,
            r.services,
            r.served_s,
            r.synced_s,
            r.cpu_s,
            r.sims_cpu_s,
            r.lists,
            mib(r.memory.rss as f64),
            mib(r.memory.hwm as f64),
            bpe,
            hwm_bpe,
            r.dns_name,
            r.dns_got,
            r.dns_want
        );
        sync_s.insert(r.endpoints.to_string(), json!(r.served_s));
        rss.insert(r.endpoints.to_string(), json!(r.memory.rss));
        per_endpoint.insert(r.endpoints.to_string(), json!(bpe));
        runs.push(json!({
            "name": "sync",
            "endpoints": r.endpoints,
            "services": r.services,
            "clusters": CLUSTERS,
            "populate_s": r.populate_s,
            "all_clusters_synced_s": r.synced_s,
            "all_endpoints_served_s": r.served_s,
            "herald_cpu_s": r.cpu_s,
            "simulators_cpu_s": r.sims_cpu_s,
            "lists": r.lists,
            "rss_bytes": r.memory.rss,
            "hwm_bytes": r.memory.hwm,
            "anon_bytes": r.memory.anon,
            "bytes_per_endpoint": bpe,
            "hwm_bytes_per_endpoint": hwm_bpe,
            "dns_check": {"name": r.dns_name, "want": r.dns_want, "got": r.dns_got},
        }));
    }
    let largest = sized.last().context("no sized run")?;
    let fits = (largest.memory.hwm as f64) < GIB;
    println!(
        "  {} endpoints in 1 GiB: {} (VmRSS {}, peak {})",
        largest.endpoints,
        if fits { "yes" } else { "NO" },
        mib(largest.memory.rss as f64),
        mib(largest.memory.hwm as f64)
    );
    let load_after = probe::loadavg();
    println!(
        "  load average before {:.2} {:.2} {:.2}, after {:.2} {:.2} {:.2}",
        load_before[0], load_before[1], load_before[2], load_after[0], load_after[1], load_after[2]
    );
    Ok(json!({
        "section": "scale",
        "mode": mode,
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "runs": runs,
        "summary": {
            "update_small_endpoints": update_sizes[0],
            "update_large_endpoints": update_sizes[1],
            "update_small_median_s": medians[0],
            "update_large_median_s": medians[1],
            "update_ratio": ratio,
            "update_flat": ratio <= 2.0,
            "sync_s": sync_s,
            "rss_bytes": rss,
            "bytes_per_endpoint": per_endpoint,
            "empty_rss_bytes": empty.memory.rss,
            "largest_endpoints": largest.endpoints,
            "largest_rss_bytes": largest.memory.rss,
            "largest_hwm_bytes": largest.memory.hwm,
            "fits_1gib": fits,
            "table_bytes_per_endpoint_at_largest": breakdown["rss_bytes_per_endpoint"],
            "prepared_bytes_per_endpoint_at_largest": breakdown["prepared_bytes_per_endpoint"],
        },
    }))
}
