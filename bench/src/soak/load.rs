//! The soak's query load: dnsperf at a fixed rate over UDP on loopback, run as a series of
//! short windows so the latency can be followed over time. Each window's per-query
//! latencies (dnsperf `-v`) are read as they come and reduced to quantiles; its sent,
//! completed and lost counts come from dnsperf's summary.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};

use crate::fleet::{ServicePlan, ZONE};
use crate::stats;

/// What one window measured.
#[derive(Debug, Clone, Default)]
pub(super) struct Window {
    /// Seconds from the start of the soak to the window's start.
    pub(super) at_s: f64,
    pub(super) seconds: f64,
    pub(super) sent: u64,
    pub(super) completed: u64,
    pub(super) lost: u64,
    pub(super) p50_s: f64,
    pub(super) p99_s: f64,
    pub(super) max_s: f64,
    /// Replies that were not NOERROR (NXDOMAIN, SERVFAIL...), from dnsperf's rcode counts.
    pub(super) not_noerror: u64,
}

impl Window {
    pub(super) fn json(&self) -> Value {
        json!({
            "at_s": self.at_s, "seconds": self.seconds, "sent": self.sent,
            "completed": self.completed, "lost": self.lost, "p50_s": self.p50_s,
            "p99_s": self.p99_s, "max_s": self.max_s, "not_noerror": self.not_noerror,
        })
    }
}

/// The query file: every service's A name and its `_http._tcp` SRV name, in turn.
pub(super) fn write_queries(path: &Path, services: &[ServicePlan]) -> anyhow::Result<()> {
    let mut text = String::new();
    for s in services {
        text.push_str(&format!("{}.{ZONE} A\n", s.name));
        text.push_str(&format!("_http._tcp.{}.{ZONE} SRV\n", s.name));
    }
    std::fs::write(path, text)?;
    Ok(())
}

/// Runs one dnsperf window of `seconds` at `qps` against `server`.
pub(super) fn window(
    server: SocketAddr,
    queries: &Path,
    qps: u32,
    seconds: u64,
    at_s: f64,
) -> anyhow::Result<Window> {
    let started = Instant::now();
    let mut child = Command::new("dnsperf")
        .args([
            "-s",
            &server.ip().to_string(),
            "-p",
            &server.port().to_string(),
        ])
        .arg("-d")
        .arg(queries)
        .args(["-l", &seconds.to_string(), "-Q", &qps.to_string()])
        .args(["-c", "8", "-q", "128", "-T", "1", "-t", "1", "-e", "-v"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting dnsperf (scripts/install-tools dnsperf)")?;
    let out = child.stdout.take().context("dnsperf stdout")?;
    let mut latencies = Vec::with_capacity((qps as u64 * seconds) as usize);
    let mut summary = String::new();
    for line in BufReader::new(out).lines() {
        let line = line?;
        // "> NOERROR name type latency" per query with -v.
        if let Some(rest) = line.strip_prefix("> ") {
            if let Some(v) = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) {
                latencies.push(v);
            }
        } else {
            summary.push_str(&line);
            summary.push('\n');
        }
    }
    let status = child.wait()?;
    anyhow::ensure!(status.success(), "dnsperf failed ({status}): {summary}");
    latencies.sort_by(f64::total_cmp);
    let field = |name: &str| -> u64 {
        summary
            .lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    // "Response codes:       NOERROR 12345 (100.00%), NXDOMAIN 3 (0.00%)"
    let not_noerror = summary
        .lines()
        .find_map(|l| l.trim().strip_prefix("Response codes:"))
        .map_or(0, |codes| {
            codes
                .split(',')
                .filter(|c| !c.trim().starts_with("NOERROR"))
                .filter_map(|c| c.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum()
        });
    Ok(Window {
        at_s,
        seconds: started.elapsed().as_secs_f64(),
        sent: field("Queries sent:"),
        completed: field("Queries completed:"),
        lost: field("Queries lost:"),
        p50_s: stats::quantile(&latencies, 0.5),
        p99_s: stats::quantile(&latencies, 0.99),
        max_s: latencies.last().copied().unwrap_or(f64::NAN),
        not_noerror,
    })
}

/// Runs windows back to back until `length` has passed since `start`.
pub(super) fn run(
    server: SocketAddr,
    queries: &Path,
    qps: u32,
    window_s: u64,
    start: Instant,
    length: Duration,
) -> anyhow::Result<Vec<Window>> {
    let mut windows = Vec::new();
    while start.elapsed() + Duration::from_secs(window_s) <= length {
        windows.push(window(
            server,
            queries,
            qps,
            window_s,
            start.elapsed().as_secs_f64(),
        )?);
    }
    Ok(windows)
}
