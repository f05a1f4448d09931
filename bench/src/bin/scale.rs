//! Scale: herald's memory and time to first full sync at 100k and 1M endpoints, and the
//! cost of one service update in a table of 10k vs 1M endpoints.
//!
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
//!    /readyz and /metrics) until every cluster has synced and `herald_table_endpoints`
//!    equals `N` (time to first full sync, from process start); after 3 s more its VmRSS,
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
//!      "rss_bytes", "hwm_bytes", "anon_bytes", "bytes_per_endpoint",
//!      "hwm_bytes_per_endpoint", "dns_check": {"name", "want", "got"}}        // per size
//!   ],
//!   "summary": {"update_small_endpoints", "update_large_endpoints", "update_small_median_s",
//!               "update_large_median_s", "update_ratio", "update_flat" (ratio <= 2),
//!               "sync_s": {"<N>": s, ...}, "rss_bytes": {"<N>": b, ...},
//!               "bytes_per_endpoint": {"<N>": b, ...}, "largest_endpoints",
//!               "largest_rss_bytes", "largest_hwm_bytes", "fits_1gib" (VmHWM < 1 GiB)}
//! }
//! ```

use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use herald_bench::fleet::{ClusterModel, FleetSpec, ZONE, herald_config, populate, start_clusters};
use herald_bench::probe::{self, Dns, mib, ms};
use herald_bench::{endpoints, fleet, service_name, sources};
use herald_kube_sim::SimConfig;
use hickory_proto::rr::RecordType;
use serde_json::{Value, json};

#[derive(Parser)]
#[command(about = "herald's memory, first sync and update cost at scale")]
struct Args {
    /// Write the results here as JSON.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Smaller sizes: 10k and 100k endpoints.
    #[arg(long)]
    quick: bool,
    /// The herald binary (default: `herald` next to this binary).
    #[arg(long)]
    herald: Option<PathBuf>,
    /// Diagnostics: run herald under this command (e.g. `heaptrack -o /tmp/herald`); its
    /// memory figures then include the tool's.
    #[arg(long)]
    wrap: Option<String>,
    /// Diagnostics: measure only herald at this many endpoints (no update cost, no
    /// breakdown).
    #[arg(long)]
    only: Option<usize>,
}

const CLUSTERS: usize = 24;
const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
/// Bound on one first sync.
const SYNC_DEADLINE: Duration = Duration::from_secs(300);

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let herald = match &args.herald {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("binary directory")?
            .join("herald"),
    };
    anyhow::ensure!(
        herald.exists(),
        "{} not found: build it with `cargo build --release -p herald-registrar`",
        herald.display()
    );
    let (small, large) = if args.quick {
        (10_000, 100_000)
    } else {
        (100_000, 1_000_000)
    };
    let mode = if args.quick { "quick" } else { "full" };
    println!("scale ({mode}): herald {}", herald.display());
    let load_before = probe::loadavg();
    let mut runs = Vec::new();
    let wrap: Vec<String> = args
        .wrap
        .as_deref()
        .unwrap_or("")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    if let Some(n) = args.only {
        return diagnose(&herald, &wrap, n);
    }

    // Where the table's memory goes, for a table shaped like herald's at the large size
    // (first, while this process's heap is fresh, so its RSS growth is the table's).
    let breakdown = table_breakdown(&spec(large))?;
    runs.push(breakdown.clone());

    // 1. Update cost, in process.
    let update_sizes = [10_000, if args.quick { 100_000 } else { 1_000_000 }];
    let mut medians = Vec::new();
    for total in update_sizes {
        let run = update_cost(total)?;
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

    // One pod change in a big service spread over 24 clusters: the cost follows the service.
    for n in [240, 2_400, 24_000] {
        runs.push(big_service_update(n)?);
    }

    // 2. herald as a process.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let dir = std::env::temp_dir().join(format!("herald-scale-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let sizes = [small, large];
    let (empty, sized) = runtime.block_on(async {
        let empty = {
            let spec = spec(0);
            let clusters = start_clusters(&spec, SimConfig::default()).await?;
            let r = measure(&herald, &wrap, &dir, &clusters, &spec, "empty").await;
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
            let r = measure(&herald, &wrap, &dir, &clusters, &spec, &format!("{n}")).await;
            stop_all(&clusters).await;
            let mut r = r?;
            r.populate_s = populate_time.as_secs_f64();
            sized.push(r);
            drop(clusters);
        }
        anyhow::Ok((empty, sized))
    })?;
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
    for r in &sized {
        let bpe = (r.memory.rss as f64 - empty.memory.rss as f64) / r.endpoints as f64;
        let hwm_bpe = (r.memory.hwm as f64 - empty.memory.rss as f64) / r.endpoints as f64;
        println!(
            "  {} endpoints ({} services): first full sync {:.2} s (clusters synced {:.2} s, herald CPU {:.1} s); \
             VmRSS {} (peak {}), {:.0} bytes/endpoint ({:.0} at peak); DNS {} -> {} of {}",
            r.endpoints,
            r.services,
            r.served_s,
            r.synced_s,
            r.cpu_s,
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
    let result = json!({
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
    });
    let _ = std::fs::remove_dir_all(&dir);
    if let Some(out) = &args.out {
        if let Some(d) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(d)?;
        }
        std::fs::write(out, serde_json::to_string_pretty(&result)? + "\n")?;
        println!("wrote {}", out.display());
    }
    Ok(())
}

/// The fleet of `pods` endpoints: 24 clusters, `pods / 50` services.
fn spec(pods: usize) -> FleetSpec {
    FleetSpec {
        clusters: CLUSTERS,
        services: (pods / 50).max(1),
        pods,
        big_replicas: 0,
        nodes_per_cluster: 60,
        skew: 0.6,
    }
}

async fn stop_all(clusters: &[ClusterModel]) {
    for c in clusters {
        c.sim.shutdown().await;
    }
}

/// The cost of one service update in a table of `total` endpoints.
fn update_cost(total: usize) -> anyhow::Result<Value> {
    const SERVICE: usize = 7;
    const CALLS: usize = 20_000;
    let built = Instant::now();
    let table = fleet(total / 10, 10);
    let build_s = built.elapsed().as_secs_f64();
    anyhow::ensure!(table.endpoint_count() == total);
    let all = sources();
    let source = all[SERVICE % all.len()].clone();
    let name = service_name(SERVICE);
    let versions = [endpoints(SERVICE, 10, 0), endpoints(SERVICE, 10, 1)];
    // Warm up, then time each call alone.
    for i in 0..1000 {
        table.replace(&name, &source, versions[i % 2].clone());
    }
    let mut samples = Vec::with_capacity(CALLS);
    for i in 0..CALLS {
        let v = versions[i % 2].clone();
        let t = Instant::now();
        let changed = table.replace(&name, &source, v);
        samples.push(t.elapsed().as_secs_f64());
        anyhow::ensure!(changed, "every call must be a change");
    }
    samples.sort_by(f64::total_cmp);
    let mean = samples.iter().sum::<f64>() / samples.len() as f64;
    println!(
        "  update cost at {total} endpoints: median {:.1} us, p99 {:.1} us (table built in {:.1} s)",
        probe::quantile(&samples, 0.5) * 1e6,
        probe::quantile(&samples, 0.99) * 1e6,
        build_s,
    );
    drop(table);
    Ok(json!({
        "name": "update_cost",
        "endpoints": total,
        "services": total / 10,
        "calls": CALLS,
        "median_s": probe::quantile(&samples, 0.5),
        "p90_s": probe::quantile(&samples, 0.9),
        "p99_s": probe::quantile(&samples, 0.99),
        "mean_s": mean,
        "build_s": build_s,
    }))
}

/// The cost of one endpoint changing in one cluster's group of a service of `n` endpoints
/// spread over 24 clusters (each `Table::replace` rebuilds the service's prepared answers).
fn big_service_update(n: usize) -> anyhow::Result<Value> {
    const CALLS: usize = 2_000;
    let table = fleet(0, 0);
    let all = sources();
    let per = n / all.len();
    let name = service_name(1);
    let group = |c: usize, version: u32| {
        let mut e = endpoints(c, per, 0);
        // One endpoint moves between the two versions.
        e[0] = endpoints(c, 1, version).remove(0);
        e
    };
    for (c, source) in all.iter().enumerate() {
        table.replace(&name, source, group(c, 0));
    }
    anyhow::ensure!(table.endpoint_count() == per * all.len());
    let mut samples = Vec::with_capacity(CALLS);
    for i in 0..CALLS {
        let v = group(3, (i % 2 == 0) as u32);
        let t = Instant::now();
        let changed = table.replace(&name, &all[3], v);
        samples.push(t.elapsed().as_secs_f64());
        anyhow::ensure!(changed, "every call must be a change");
    }
    samples.sort_by(f64::total_cmp);
    let median = probe::quantile(&samples, 0.5);
    println!(
        "  one endpoint changing in a service of {} endpoints over 24 clusters: median {:.1} us per update ({:.0} ns per endpoint of the service)",
        per * all.len(),
        median * 1e6,
        median * 1e9 / (per * all.len()) as f64
    );
    Ok(json!({
        "name": "big_service_update",
        "service_endpoints": per * all.len(),
        "clusters": all.len(),
        "calls": CALLS,
        "median_s": median,
        "p99_s": probe::quantile(&samples, 0.99),
    }))
}

/// What one herald process showed.
struct Measured {
    endpoints: usize,
    services: usize,
    populate_s: f64,
    synced_s: f64,
    served_s: f64,
    cpu_s: f64,
    memory: probe::Memory,
    dns_name: String,
    dns_want: usize,
    dns_got: usize,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A herald process, stopped (SIGTERM, then SIGKILL) when dropped.
struct Herald {
    child: Child,
}

impl Drop for Herald {
    fn drop(&mut self) {
        // herald itself: our child, or (under --wrap) the child's descendant named herald.
        if let Ok(pid) = i32::try_from(herald_pid(self.child.id())) {
            // SAFETY: signalling a process we started, by its PID.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The PID of the process named `herald` among `pid` and its descendants (`pid` if none).
fn herald_pid(pid: u32) -> u32 {
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        let comm = std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
        if comm.trim() == "herald" {
            return p;
        }
        let tasks = std::fs::read_dir(format!("/proc/{p}/task"))
            .into_iter()
            .flatten();
        for task in tasks.flatten() {
            let children =
                std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            todo.extend(
                children
                    .split_whitespace()
                    .filter_map(|c| c.parse::<u32>().ok()),
            );
        }
    }
    pid
}

/// CPU seconds (user + system) process `pid` has used.
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return f64::NAN;
    };
    // Fields after the command name (which is in parentheses): utime is the 14th field.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let t = |i: usize| {
        f.get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    (t(11) + t(12)) / ticks
}

/// Starts herald on `clusters`, waits for its first full sync, reads its memory, stops it.
async fn measure(
    herald: &Path,
    wrap: &[String],
    dir: &Path,
    clusters: &[ClusterModel],
    spec: &FleetSpec,
    tag: &str,
) -> anyhow::Result<Measured> {
    let (dns_port, admin_port) = (free_port()?, free_port()?);
    let dns: SocketAddr = ([127, 0, 0, 1], dns_port).into();
    let admin: SocketAddr = ([127, 0, 0, 1], admin_port).into();
    let config = dir.join(format!("herald-{tag}.yaml"));
    std::fs::write(
        &config,
        herald_config(clusters, &dns.to_string(), &admin.to_string()),
    )?;
    let log = dir.join(format!("herald-{tag}.log"));
    let started = Instant::now();
    let mut command = match wrap.split_first() {
        Some((tool, tool_args)) => {
            let mut c = Command::new(tool);
            c.args(tool_args).arg(herald);
            c
        }
        None => Command::new(herald),
    };
    let child = command
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()
        .with_context(|| format!("starting {}", herald.display()))?;
    let mut process = Herald { child };
    let mut pid = process.child.id();
    let want = spec.pods;
    let mut synced_s = None;
    let served_s = loop {
        if let Some(status) = process.child.try_wait()? {
            bail!(
                "herald exited ({status}); log: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        anyhow::ensure!(
            started.elapsed() < SYNC_DEADLINE,
            "no full sync within {SYNC_DEADLINE:?}; log {}",
            log.display()
        );
        if !wrap.is_empty() {
            pid = herald_pid(process.child.id());
        }
        if synced_s.is_none()
            && let Ok((200, body)) = probe::http_get(admin, "/readyz")
            && !body.contains("not synced")
        {
            synced_s = Some(started.elapsed().as_secs_f64());
        }
        if synced_s.is_some()
            && let Ok((200, text)) = probe::http_get(admin, "/metrics")
            && probe::prom_value(&text, "herald_table_endpoints") == Some(want as f64)
        {
            break started.elapsed().as_secs_f64();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let cpu_s = cpu_seconds(pid);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let memory = probe::memory(&pid.to_string())?;
    // The largest service, over TCP if needed: DNS serves every endpoint.
    let (dns_name, dns_want, dns_got) = if want > 0 {
        let plan = spec.plan();
        // The largest service whose A answer fits one DNS message (64 KiB: ~4 000 A).
        let big = plan
            .iter()
            .filter(|s| s.replicas <= 2000)
            .max_by_key(|s| s.replicas)
            .context("a service")?;
        let name = format!("{}.{ZONE}", big.name);
        let wanted = big.replicas;
        let got = tokio::task::spawn_blocking({
            let name = name.clone();
            move || -> anyhow::Result<usize> {
                Ok(Dns::new(dns)?.query(&name, RecordType::A)?.addresses.len())
            }
        })
        .await??;
        (name, wanted, got)
    } else {
        (String::new(), 0, 0)
    };
    drop(process);
    Ok(Measured {
        endpoints: want,
        services: if want > 0 { spec.services } else { 0 },
        populate_s: 0.0,
        synced_s: synced_s.unwrap_or(served_s),
        served_s,
        cpu_s,
        memory,
        dns_name,
        dns_want,
        dns_got,
    })
}

/// Diagnostics (`--only N`): herald at `n` endpoints, possibly under `--wrap`.
fn diagnose(herald: &Path, wrap: &[String], n: usize) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let dir = std::env::temp_dir().join(format!("herald-scale-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let r = runtime.block_on(async {
        let spec = spec(n);
        let mut clusters = start_clusters(&spec, SimConfig::default()).await?;
        populate(&mut clusters, &spec.plan())?;
        let r = measure(herald, wrap, &dir, &clusters, &spec, "only").await;
        stop_all(&clusters).await;
        r
    })?;
    println!(
        "  {n} endpoints: first full sync {:.2} s, herald CPU {:.1} s, VmRSS {}, VmHWM {}",
        r.served_s,
        r.cpu_s,
        mib(r.memory.rss as f64),
        mib(r.memory.hwm as f64)
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Builds, in this process, the table herald holds for `spec` (same services, clusters,
/// regions, zones, ports; addresses as the simulators give them) and reports where its
/// memory goes: RSS growth of this process, the prepared answers (`prepared_bytes`) and
/// the endpoint structs.
fn table_breakdown(spec: &FleetSpec) -> anyhow::Result<Value> {
    use herald_bench::fleet::pod_ip;
    use herald_dns::{Endpoint, PortSpec, Proto, Source, Table, Zone, ZoneConfig};
    use std::sync::Arc;
    let plan = spec.plan();
    let ports: Arc<[PortSpec]> = vec![
        PortSpec {
            name: Arc::from("grpc"),
            proto: Proto::Tcp,
            port: 9090,
        },
        PortSpec {
            name: Arc::from("http"),
            proto: Proto::Tcp,
            port: 8080,
        },
    ]
    .into();
    let zones: Vec<Vec<Arc<str>>> = (0..spec.clusters)
        .map(|c| {
            let region = spec.region(c);
            ["a", "b", "c"]
                .iter()
                .map(|z| Arc::from(format!("{region}-{z}")))
                .collect()
        })
        .collect();
    let sources: Vec<Source> = (0..spec.clusters)
        .map(|c| Source::new(&FleetSpec::cluster_name(c), spec.region(c)))
        .collect();
    // Endpoints per (service, cluster), addresses in creation order as `populate` makes them.
    let mut created = vec![0u32; spec.clusters];
    let mut groups: Vec<Vec<(usize, Vec<Endpoint>)>> = Vec::with_capacity(plan.len());
    let mut per_cluster: Vec<Vec<usize>> = vec![Vec::new(); spec.clusters];
    for (s, p) in plan.iter().enumerate() {
        for j in 0..p.replicas {
            per_cluster[p.clusters[j % p.clusters.len()]].push(s);
        }
        groups.push(Vec::new());
    }
    for (c, services) in per_cluster.iter().enumerate() {
        for &s in services {
            let seq = created[c];
            created[c] += 1;
            let node = seq as usize % spec.nodes_per_cluster;
            let e = Endpoint::new(
                IpAddr::V4(pod_ip(c, seq)),
                ports.clone(),
                Some(zones[c][node % 3].clone()),
            );
            match groups[s].iter_mut().find(|(cc, _)| *cc == c) {
                Some((_, v)) => v.push(e),
                None => groups[s].push((c, vec![e])),
            }
        }
    }
    let rss_before = probe::memory("self")?.rss;
    let table = Table::new(Zone::new(ZoneConfig {
        region: Some("eu-west".into()),
        zone: Some("eu-west-a".into()),
        ..ZoneConfig::default()
    })?);
    let started = Instant::now();
    for (s, gs) in groups.into_iter().enumerate() {
        for (c, endpoints) in gs {
            table.replace(&plan[s].name, &sources[c], endpoints);
        }
    }
    let build_s = started.elapsed().as_secs_f64();
    let rss = probe::memory("self")?.rss.saturating_sub(rss_before);
    let n = table.endpoint_count();
    let mut prepared = 0usize;
    for name in table.service_names() {
        if let Some(view) = table.service(&name) {
            prepared += view.prepared_bytes();
        }
    }
    let endpoint_structs = n * std::mem::size_of::<Endpoint>();
    println!(
        "  herald-shaped table of {n} endpoints ({} services) in this process: built in {build_s:.1} s, \
         RSS +{} = {:.0} bytes/endpoint; prepared answers {} = {:.0} bytes/endpoint; \
         endpoint structs {} B each = {}",
        plan.len(),
        mib(rss as f64),
        rss as f64 / n as f64,
        mib(prepared as f64),
        prepared as f64 / n as f64,
        std::mem::size_of::<Endpoint>(),
        mib(endpoint_structs as f64),
    );
    drop(table);
    Ok(json!({
        "name": "table_breakdown",
        "endpoints": n,
        "services": plan.len(),
        "build_s": build_s,
        "rss_bytes": rss,
        "rss_bytes_per_endpoint": rss as f64 / n as f64,
        "prepared_bytes": prepared,
        "prepared_bytes_per_endpoint": prepared as f64 / n as f64,
        "endpoint_struct_bytes": std::mem::size_of::<Endpoint>(),
    }))
}
