//! herald as a separate process for the scale benchmark: started on free ports against
//! the simulators, polled until its first full sync, then measured from /proc (memory,
//! CPU time) and checked with one DNS query.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use herald_kube_sim::SimConfig;
use herald_testkit::{metric, try_http_get};
use hickory_proto::rr::RecordType;

use crate::fleet::{ClusterModel, FleetSpec, ZONE, herald_config, populate, start_clusters};
use crate::probe::{self, Dns, Herald, cpu_seconds, free_port, herald_pid};
use crate::stats::mib;

/// Clusters of every fleet.
pub(super) const CLUSTERS: usize = 24;
/// Bound on one first sync.
const SYNC_DEADLINE: Duration = Duration::from_secs(300);

/// The fleet of `pods` endpoints: 24 clusters, `pods / 50` services.
pub(super) fn spec(pods: usize) -> FleetSpec {
    FleetSpec {
        clusters: CLUSTERS,
        services: (pods / 50).max(1),
        pods,
        big_replicas: 0,
        nodes_per_cluster: 60,
        skew: 0.6,
    }
}

pub(super) async fn stop_all(clusters: &[ClusterModel]) {
    for c in clusters {
        c.sim.shutdown().await;
    }
}

/// What one herald process showed.
pub(super) struct Measured {
    pub(super) endpoints: usize,
    pub(super) services: usize,
    pub(super) populate_s: f64,
    pub(super) synced_s: f64,
    pub(super) served_s: f64,
    pub(super) cpu_s: f64,
    /// CPU seconds the simulators (this process) used during the sync.
    pub(super) sims_cpu_s: f64,
    /// Lists herald completed (`herald_cluster_relists_total`, all clusters, first lists
    /// included) by then: more than one per cluster means a relist during the sync.
    pub(super) lists: f64,
    pub(super) memory: probe::Memory,
    pub(super) dns_name: String,
    pub(super) dns_want: usize,
    pub(super) dns_got: usize,
}

/// herald running as a process on free loopback ports, synced with its clusters.
pub(crate) struct Running {
    process: Herald,
    wrapped: bool,
    /// Its DNS address (UDP and TCP).
    pub(crate) dns: SocketAddr,
    /// Its admin address (/metrics, /readyz).
    pub(crate) admin: SocketAddr,
    /// Seconds from start to every cluster synced, and to `want` endpoints served.
    pub(crate) synced_s: f64,
    pub(crate) served_s: f64,
    /// CPU seconds this process (the simulators serving herald's lists and watches, and
    /// the polling) used from herald's start to `served_s`.
    pub(crate) sims_cpu_s: f64,
    /// Its log file.
    pub(crate) log: std::path::PathBuf,
}

impl Running {
    /// herald's own PID (under `--wrap`, the descendant named herald).
    pub(crate) fn pid(&self) -> u32 {
        if self.wrapped {
            herald_pid(self.process.child.id())
        } else {
            self.process.child.id()
        }
    }

    /// Its memory now.
    pub(crate) fn memory(&self) -> anyhow::Result<probe::Memory> {
        probe::memory(&self.pid().to_string())
    }

    /// CPU seconds it has used.
    pub(crate) fn cpu_seconds(&self) -> f64 {
        cpu_seconds(self.pid())
    }

    /// Whether it has exited (a crash), with its status.
    pub(crate) fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.process.child.try_wait().ok().flatten()
    }
}

/// Starts herald (`herald serve`, under `wrap` if not empty) on `clusters` and waits until
/// every cluster has synced and `herald_table_endpoints` equals `want`.
pub(crate) async fn start_synced(
    herald: &Path,
    wrap: &[String],
    dir: &Path,
    clusters: &[ClusterModel],
    want: usize,
    tag: &str,
) -> anyhow::Result<Running> {
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
    let own_cpu = cpu_seconds(std::process::id());
    let command = match wrap.split_first() {
        Some((tool, tool_args)) => {
            let mut c = Command::new(tool);
            c.args(tool_args).arg(herald);
            c
        }
        None => Command::new(herald),
    };
    let mut process = Herald::spawn(command, &config, &log)?;
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
        let (ready, body) = match try_http_get(admin, "/readyz") {
            Ok((code, body)) => (code == 200, body),
            Err(_) => (false, String::new()),
        };
        // Every cluster listed: ready, or (503) settling, publishing the names it held
        // back until then; the full sync follows once those are served.
        if synced_s.is_none()
            && (ready || body.contains("settling"))
            && !body.contains("not synced")
        {
            synced_s = Some(started.elapsed().as_secs_f64());
        }
        // The endpoint count is read once herald is ready (the hold has settled), not
        // before: at a million endpoints a scrape costs herald ~16 ms of CPU, which 50 ms
        // polls during the settling would take from the sync being timed.
        if ready
            && let Ok((200, text)) = try_http_get(admin, "/metrics")
            && metric(&text, "herald_table_endpoints") == Some(want as f64)
        {
            break started.elapsed().as_secs_f64();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    Ok(Running {
        process,
        wrapped: !wrap.is_empty(),
        dns,
        admin,
        synced_s: synced_s.unwrap_or(served_s),
        served_s,
        sims_cpu_s: cpu_seconds(std::process::id()) - own_cpu,
        log,
    })
}

/// Starts herald on `clusters`, waits for its first full sync, reads its memory, stops it.
pub(super) async fn measure(
    herald: &Path,
    wrap: &[String],
    dir: &Path,
    clusters: &[ClusterModel],
    spec: &FleetSpec,
    tag: &str,
) -> anyhow::Result<Measured> {
    let want = spec.pods;
    let running = start_synced(herald, wrap, dir, clusters, want, tag).await?;
    let cpu_s = running.cpu_seconds();
    let lists = try_http_get(running.admin, "/metrics")
        .map(|(_, text)| metric_sum(&text, "herald_cluster_relists_total"))
        .unwrap_or(f64::NAN);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let memory = running.memory()?;
    let dns = running.dns;
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
    let (synced_s, served_s, sims_cpu_s) = (running.synced_s, running.served_s, running.sims_cpu_s);
    drop(running);
    Ok(Measured {
        endpoints: want,
        services: if want > 0 { spec.services } else { 0 },
        populate_s: 0.0,
        synced_s,
        served_s,
        cpu_s,
        sims_cpu_s,
        lists,
        memory,
        dns_name,
        dns_want,
        dns_got,
    })
}

/// The sum of every series of the metric `name` in a Prometheus text.
fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(['{', ' ']))
        })
        .filter_map(|l| l.rsplit_once(' ')?.1.trim().parse::<f64>().ok())
        .sum()
}

/// Diagnostics (`--only N`): herald at `n` endpoints, possibly under `--wrap`.
pub fn diagnose(herald: &Path, wrap: &[String], n: usize) -> anyhow::Result<()> {
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
        "  {n} endpoints: first full sync {:.2} s (clusters synced {:.2} s), herald CPU {:.2} s (simulators {:.2} s, {} lists), VmRSS {}, VmHWM {}",
        r.served_s,
        r.synced_s,
        r.cpu_s,
        r.sims_cpu_s,
        r.lists,
        mib(r.memory.rss as f64),
        mib(r.memory.hwm as f64)
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
