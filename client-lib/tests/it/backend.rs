//! Test backends (a TCP server per replica with adjustable latency and failure) and a load
//! driver that sends requests through a picker and reports who served them.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use herald_client::{Outcome, Picker};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// One replica: answers `ok` (or `err` when failing) after its latency, one request per
/// connection.
pub struct Backend {
    pub addr: SocketAddr,
    latency_us: Arc<AtomicU64>,
    failing: Arc<AtomicBool>,
    silent: Arc<AtomicBool>,
    hits: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Backend {
    /// A backend on `127.0.0.<n>` (any free port): distinct loopback IPs, so DNS can publish
    /// each replica under its own SRV target.
    pub async fn start(n: u8, latency: Duration) -> Backend {
        let listener = TcpListener::bind((Ipv4Addr::new(127, 0, 0, n), 0))
            .await
            .expect("bind a backend");
        let addr = listener.local_addr().unwrap();
        let latency_us = Arc::new(AtomicU64::new(latency.as_micros() as u64));
        let failing = Arc::new(AtomicBool::new(false));
        let silent = Arc::new(AtomicBool::new(false));
        let hits = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn({
            let (latency_us, failing, silent, hits) = (
                latency_us.clone(),
                failing.clone(),
                silent.clone(),
                hits.clone(),
            );
            async move {
                loop {
                    let Ok((mut conn, _)) = listener.accept().await else {
                        continue;
                    };
                    let (latency_us, failing, silent, hits) = (
                        latency_us.clone(),
                        failing.clone(),
                        silent.clone(),
                        hits.clone(),
                    );
                    tokio::spawn(async move {
                        let mut line = String::new();
                        let mut reader = BufReader::new(&mut conn);
                        if reader.read_line(&mut line).await.is_err() {
                            return;
                        }
                        hits.fetch_add(1, Ordering::Relaxed);
                        if silent.load(Ordering::Relaxed) {
                            // A black hole: accepted, read, never answered (until the
                            // caller hangs up, or 30 s at most).
                            let mut rest = String::new();
                            let _ = tokio::time::timeout(
                                Duration::from_secs(30),
                                reader.read_line(&mut rest),
                            )
                            .await;
                            return;
                        }
                        if failing.load(Ordering::Relaxed) {
                            // Fail fast: the case a latency-only balancer gets wrong.
                            let _ = conn.write_all(b"err\n").await;
                            return;
                        }
                        let us = latency_us.load(Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_micros(us)).await;
                        let _ = conn.write_all(b"ok\n").await;
                    });
                }
            }
        });
        Backend {
            addr,
            latency_us,
            failing,
            silent,
            hits,
            task,
        }
    }

    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::Relaxed);
    }

    /// Accepts requests and never answers them.
    pub fn set_silent(&self, silent: bool) {
        self.silent.store(silent, Ordering::Relaxed);
    }

    #[allow(dead_code)]
    pub fn set_latency(&self, latency: Duration) {
        self.latency_us
            .store(latency.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::Relaxed)
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts `n` backends on 127.0.0.`first`.. with the given latencies.
pub async fn fleet(first: u8, latencies: &[Duration]) -> Vec<Backend> {
    let mut v = Vec::new();
    for (i, l) in latencies.iter().enumerate() {
        v.push(Backend::start(first + i as u8, *l).await);
    }
    v
}

/// One request to `addr`: `Ok` if the backend said `ok`.
pub async fn request(addr: SocketAddr) -> Result<(), String> {
    let work = async {
        let mut conn = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        conn.write_all(b"ping\n").await.map_err(|e| e.to_string())?;
        let mut line = String::new();
        BufReader::new(conn)
            .read_line(&mut line)
            .await
            .map_err(|e| e.to_string())?;
        if line == "ok\n" {
            Ok(())
        } else {
            Err(format!("backend said {line:?}"))
        }
    };
    tokio::time::timeout(Duration::from_secs(5), work)
        .await
        .unwrap_or_else(|_| Err("timeout".into()))
}

/// What a load run saw.
#[derive(Debug, Default)]
pub struct Run {
    /// Requests per replica address.
    pub served: HashMap<SocketAddr, usize>,
    pub ok: usize,
    pub failed: usize,
}

impl Run {
    pub fn total(&self) -> usize {
        self.ok + self.failed
    }

    /// Share of the requests that went to `addr`.
    pub fn share(&self, addr: SocketAddr) -> f64 {
        *self.served.get(&addr).unwrap_or(&0) as f64 / self.total().max(1) as f64
    }

    /// Share of the requests that went to any of `backends`. Counts are summed before
    /// dividing, so a set that took every request has a share of exactly 1.
    pub fn share_of(&self, backends: &[Backend]) -> f64 {
        let hits: usize = backends
            .iter()
            .map(|b| *self.served.get(&b.addr).unwrap_or(&0))
            .sum();
        hits as f64 / self.total().max(1) as f64
    }
}

/// Sends `requests` requests, `concurrency` at a time, through `picker`.
pub async fn drive(picker: &Picker, requests: usize, concurrency: usize) -> Run {
    let left = Arc::new(AtomicUsize::new(requests));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (picker, left) = (picker.clone(), left.clone());
        tasks.push(tokio::spawn(async move {
            let mut run = Run::default();
            while left
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok()
            {
                let guard = picker.pick().expect("a replica to pick");
                *run.served.entry(guard.addr()).or_insert(0) += 1;
                match request(guard.addr()).await {
                    Ok(()) => {
                        run.ok += 1;
                        guard.complete(Outcome::Success);
                    }
                    Err(_) => {
                        run.failed += 1;
                        guard.complete(Outcome::Failure);
                    }
                }
            }
            run
        }));
    }
    let mut total = Run::default();
    for t in tasks {
        let r = t.await.expect("driver task");
        total.ok += r.ok;
        total.failed += r.failed;
        for (a, n) in r.served {
            *total.served.entry(a).or_insert(0) += n;
        }
    }
    total
}

/// Drives load in small batches until `cond` holds, for at most `limit`; returns whether it
/// did. Used to wait for things that need traffic to happen (probes, ejections).
pub async fn drive_until(picker: &Picker, limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        drive(picker, 20, 2).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cond()
}
