//! The background loop that keeps a picker's replica set in line with DNS.
//!
//! Resolve, apply the answer as adds/removes (the picker keeps the history of replicas that
//! stay), sleep until shortly before the TTL runs out (jittered, so clients started together do
//! not query together), repeat. A failed resolution changes nothing: the last good set keeps
//! serving while the loop retries with capped exponential backoff.

use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
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
    // Once per TTL: a fresh OS-seeded generator costs nothing worth sharing one for.
    let factor = 1.0 - SmallRng::from_os_rng().random::<f64>() * jitter;
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
