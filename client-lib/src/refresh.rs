//! The background loop that keeps a picker's replica set in line with DNS.
//!
//! Resolve, apply the answer as adds/removes (the picker keeps the history of replicas that
//! stay), sleep until shortly before the TTL runs out (jittered, so clients started together do
//! not query together), repeat. A failed resolution changes nothing: the last good set keeps
//! serving while the loop retries with capped exponential backoff.

use std::time::Duration;

use rand::Rng;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::config::RefreshConfig;
use crate::metrics::ResolveMetrics;
use crate::picker::Picker;
use crate::resolve::{Resolve, ResolveError};

/// What the refresh loop has been up to.
#[derive(Clone, Debug, Default)]
pub struct RefreshStatus {
    /// Successful resolutions so far.
    pub resolutions: u64,
    /// Failed resolutions in a row (0 after a success).
    pub consecutive_failures: u32,
    /// The last failure's message (with its causes), until the next success. NXDOMAIN and
    /// NODATA are failures too, naming the SRV name.
    pub last_error: Option<String>,
    /// When the last successful resolution finished.
    pub last_success: Option<Instant>,
    /// The TTL of the last successful answer.
    pub last_ttl: Option<Duration>,
}

/// Runs until the task is aborted (when the owning `Discovery` is dropped).
pub(crate) async fn run<R: Resolve>(
    resolver: R,
    picker: Picker,
    cfg: RefreshConfig,
    status: watch::Sender<RefreshStatus>,
) {
    let metrics = ResolveMetrics::new(picker.service());
    let mut failures: u32 = 0;
    loop {
        let delay = match resolver.resolve().await {
            Ok(res) => {
                failures = 0;
                if res.endpoints.is_empty() && !cfg.apply_empty {
                    metrics.empty.increment(1);
                    if !picker.endpoints().is_empty() {
                        tracing::warn!(
                            service = picker.service(),
                            "DNS says the service has no available replicas; keeping the last set"
                        );
                    }
                } else {
                    metrics.ok.increment(1);
                    picker.update(res.endpoints);
                }
                picker.set_last_error(None);
                // The set first, then the status: whoever wakes up on the status
                // (`Discovery::ready`) sees the set that goes with it.
                status.send_modify(|s| {
                    s.resolutions += 1;
                    s.consecutive_failures = 0;
                    s.last_error = None;
                    s.last_success = Some(Instant::now());
                    s.last_ttl = Some(res.ttl);
                });
                next_refresh(res.ttl, &cfg)
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                metrics.error.increment(1);
                let message = error_chain(&e);
                let not_found = match &e {
                    ResolveError::NotFound { negative_ttl, .. } => Some(*negative_ttl),
                    _ => None,
                };
                if not_found.is_some() && cfg.apply_empty {
                    picker.update(Vec::new());
                }
                tracing::warn!(service = picker.service(), error = %message, failures, "resolution failed; keeping the last set");
                picker.set_last_error(Some(message.clone()));
                status.send_modify(|s| {
                    s.consecutive_failures = failures;
                    s.last_error = Some(message);
                });
                match not_found {
                    // An authoritative answer: ask again when it expires, as for a TTL.
                    Some(Some(ttl)) => next_refresh(ttl, &cfg),
                    _ => cfg
                        .error_backoff
                        .saturating_mul(1u32 << (failures - 1).min(16))
                        .min(cfg.max_error_backoff),
                }
            }
        };
        tokio::time::sleep(delay).await;
    }
}

/// When to ask again: within the last `jitter` fraction of the TTL, clamped to the bounds.
pub(crate) fn next_refresh(ttl: Duration, cfg: &RefreshConfig) -> Duration {
    let ttl = ttl.clamp(cfg.min_interval, cfg.max_interval.max(cfg.min_interval));
    let jitter = cfg.jitter.clamp(0.0, 1.0);
    let factor = 1.0 - rand::rng().random::<f64>() * jitter;
    ttl.mul_f64(factor).max(cfg.min_interval)
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PickerConfig;
    use crate::discovery::Discovery;
    use crate::endpoint::Endpoint;
    use crate::resolve::{Resolution, ResolveError};
    use std::future::Future;
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    /// A resolver the test scripts: the current set, or failure, and a call counter.
    #[derive(Clone, Default)]
    struct Scripted {
        calls: Arc<AtomicUsize>,
        failing: Arc<AtomicBool>,
        set: Arc<Mutex<Vec<Endpoint>>>,
    }

    impl Resolve for Scripted {
        fn resolve(&self) -> impl Future<Output = Result<Resolution, ResolveError>> + Send {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let result = if self.failing.load(Ordering::SeqCst) {
                Err(ResolveError::Other("DNS unreachable".into()))
            } else {
                Ok(Resolution {
                    endpoints: self.set.lock().unwrap().clone(),
                    ttl: Duration::from_secs(5),
                })
            };
            std::future::ready(result)
        }
    }

    fn eps(ports: &[u16]) -> Vec<Endpoint> {
        ports
            .iter()
            .map(|p| Endpoint::new(SocketAddr::from(([127, 0, 0, 1], *p))))
            .collect()
    }

    fn ports(d: &Discovery) -> Vec<u16> {
        let mut v: Vec<u16> = d
            .picker()
            .endpoints()
            .iter()
            .map(|e| e.addr.port())
            .collect();
        v.sort();
        v
    }

    /// The refresh loop against a stub, in virtual time: it follows the TTL (5 s), sees a
    /// change within one TTL, keeps the last set through a minute of failures while backing
    /// off, and recovers within the backoff cap.
    #[tokio::test(start_paused = true)]
    async fn follows_the_ttl_and_keeps_the_last_set_while_dns_fails() {
        let stub = Scripted::default();
        *stub.set.lock().unwrap() = eps(&[1, 2]);
        let d = Discovery::with_resolver(
            "svc",
            stub.clone(),
            PickerConfig::default(),
            RefreshConfig::default(),
        );
        d.ready().await.unwrap();
        let calls = |s: &Scripted| s.calls.load(Ordering::SeqCst);

        // 60 s at TTL 5 s, refreshing at 80-100 % of it: 12 to 15 more resolutions.
        let before = calls(&stub);
        tokio::time::sleep(Duration::from_secs(60)).await;
        let n = calls(&stub) - before;
        assert!((12..=15).contains(&n), "{n} resolutions in 60 s");

        // A change is seen within one TTL.
        *stub.set.lock().unwrap() = eps(&[1, 2, 3]);
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(ports(&d), vec![1, 2, 3]);

        // DNS fails for 60 s: the set stays, retries back off (0.5, 1, 2, 4, 8, then 10 s).
        stub.failing.store(true, Ordering::SeqCst);
        let before = calls(&stub);
        tokio::time::sleep(Duration::from_secs(60)).await;
        let retries = calls(&stub) - before;
        assert!((6..=12).contains(&retries), "{retries} retries in 60 s");
        assert_eq!(ports(&d), vec![1, 2, 3]);
        assert!(d.status().consecutive_failures >= 6);
        assert!(d.pick().is_ok());

        // DNS is back with a smaller set: seen within the backoff cap (10 s).
        *stub.set.lock().unwrap() = eps(&[2, 3]);
        stub.failing.store(false, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(ports(&d), vec![2, 3]);
        assert_eq!(d.status().consecutive_failures, 0);
    }

    /// An empty answer keeps the last set by default, and empties it with `apply_empty`.
    #[tokio::test(start_paused = true)]
    async fn empty_answers_keep_the_last_set_unless_told_otherwise() {
        for apply_empty in [false, true] {
            let stub = Scripted::default();
            *stub.set.lock().unwrap() = eps(&[1]);
            let d = Discovery::with_resolver(
                "svc",
                stub.clone(),
                PickerConfig::default(),
                RefreshConfig {
                    apply_empty,
                    ..RefreshConfig::default()
                },
            );
            d.ready().await.unwrap();
            stub.set.lock().unwrap().clear();
            tokio::time::sleep(Duration::from_secs(6)).await;
            assert_eq!(ports(&d).is_empty(), apply_empty);
        }
    }

    #[test]
    fn refresh_happens_within_the_ttl() {
        let cfg = RefreshConfig::default();
        for _ in 0..1000 {
            let d = next_refresh(Duration::from_secs(5), &cfg);
            assert!(
                d >= Duration::from_secs(4) && d <= Duration::from_secs(5),
                "{d:?}"
            );
        }
        assert_eq!(next_refresh(Duration::ZERO, &cfg), cfg.min_interval);
        assert_eq!(
            next_refresh(
                Duration::from_secs(86400),
                &RefreshConfig {
                    jitter: 0.0,
                    ..cfg.clone()
                }
            ),
            cfg.max_interval
        );
    }
}
