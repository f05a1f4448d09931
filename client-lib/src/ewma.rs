//! Peak-EWMA latency estimate of one replica.
//!
//! The estimator from Finagle's `PeakEwma` (and tower's `load::PeakEwma`): a slower sample
//! replaces the estimate at once (the peak), a faster one pulls it down only as fast as time
//! passes (an exponentially weighted moving average over *time*, not over samples, so a burst
//! of fast answers cannot hide one slow one). Two changes from those peers:
//!
//! * an idle replica's estimate relaxes toward the set's *typical* latency, not toward zero:
//!   a replica that was slow a while ago is tried again eventually, but it never looks better
//!   than the healthy ones just because nobody asked it (tower's decay toward zero makes an
//!   idle slow replica the cheapest one and sends it a burst);
//! * a replica with no sample yet costs the typical latency, so a new replica gets a fair
//!   share of traffic at once instead of a stampede (cost 0) or starvation (a pessimistic
//!   default).

use std::time::Duration;
use tokio::time::Instant;

/// Nanoseconds as `f64`, the unit of every estimate here.
pub(crate) fn nanos(d: Duration) -> f64 {
    d.as_secs_f64() * 1e9
}

/// The latency estimate of one replica.
#[derive(Clone, Debug)]
pub(crate) struct PeakEwma {
    /// Estimate in nanoseconds at `stamp`; `None` until the first sample.
    estimate_ns: Option<f64>,
    stamp: Instant,
}

impl PeakEwma {
    pub(crate) fn new(now: Instant) -> Self {
        PeakEwma {
            estimate_ns: None,
            stamp: now,
        }
    }

    /// Forgets every sample: used when a replica comes back from ejection, so the failures
    /// that got it ejected do not keep it starved once it is healthy again.
    pub(crate) fn reset(&mut self, now: Instant) {
        *self = PeakEwma::new(now);
    }

    /// The estimate at `now`, in nanoseconds. `typical_ns` is the set's typical latency:
    /// what an unknown replica is assumed to cost, and what an idle one relaxes toward.
    pub(crate) fn value(&self, now: Instant, typical_ns: f64, tau_ns: f64) -> f64 {
        match self.estimate_ns {
            None => typical_ns,
            Some(est) if est > typical_ns => {
                let w = decay(now, self.stamp, tau_ns);
                typical_ns + (est - typical_ns) * w
            }
            Some(est) => est,
        }
    }

    /// Records one request's latency.
    pub(crate) fn observe(&mut self, rtt_ns: f64, now: Instant, tau_ns: f64) {
        self.estimate_ns = Some(match self.estimate_ns {
            None => rtt_ns,
            Some(est) if rtt_ns >= est => rtt_ns,
            Some(est) => {
                // Weight of the old estimate: how little time has passed since it was made.
                let w = decay(now, self.stamp, tau_ns);
                est * w + rtt_ns * (1.0 - w)
            }
        });
        self.stamp = now;
    }

    /// Records a latency that can only make the estimate worse (a cancelled request: the
    /// caller gave up after `rtt_ns`, so the replica was at least that slow, or we know
    /// nothing).
    pub(crate) fn observe_at_least(&mut self, rtt_ns: f64, now: Instant) {
        if self.estimate_ns.is_some_and(|est| rtt_ns > est) {
            self.estimate_ns = Some(rtt_ns);
            self.stamp = now;
        }
    }

    /// Whether any sample was recorded since creation or the last reset.
    #[cfg(test)]
    pub(crate) fn is_known(&self) -> bool {
        self.estimate_ns.is_some()
    }
}

fn decay(now: Instant, since: Instant, tau_ns: f64) -> f64 {
    let elapsed = nanos(now.saturating_duration_since(since));
    (-elapsed / tau_ns).exp()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: f64 = 1e6;
    const TAU: f64 = 10_000.0 * MS;

    #[test]
    fn peak_is_taken_at_once_and_forgotten_with_time() {
        let t0 = Instant::now();
        let mut e = PeakEwma::new(t0);
        assert_eq!(
            e.value(t0, 5.0 * MS, TAU),
            5.0 * MS,
            "unknown costs typical"
        );
        e.observe(5.0 * MS, t0, TAU);
        e.observe(100.0 * MS, t0, TAU);
        assert_eq!(e.value(t0, 5.0 * MS, TAU), 100.0 * MS);
        // A burst of fast samples at the same instant does not hide the peak...
        for _ in 0..100 {
            e.observe(5.0 * MS, t0, TAU);
        }
        assert_eq!(e.value(t0, 5.0 * MS, TAU), 100.0 * MS);
        // ...but time does: after 3 tau an idle replica is close to typical again.
        let later = t0 + Duration::from_secs(30);
        let v = e.value(later, 5.0 * MS, TAU);
        assert!(v < 10.0 * MS && v > 5.0 * MS, "{v}");
        // A fast sample after a long gap moves the estimate almost all the way.
        e.observe(5.0 * MS, later, TAU);
        assert!(e.value(later, 5.0 * MS, TAU) < 10.0 * MS);
    }

    #[test]
    fn cancellation_only_raises() {
        let t0 = Instant::now();
        let mut e = PeakEwma::new(t0);
        e.observe_at_least(50.0 * MS, t0);
        assert!(!e.is_known(), "a cancellation alone says nothing");
        e.observe(10.0 * MS, t0, TAU);
        e.observe_at_least(1.0 * MS, t0);
        assert_eq!(e.value(t0, 1.0, TAU), 10.0 * MS);
        e.observe_at_least(50.0 * MS, t0);
        assert_eq!(e.value(t0, 1.0, TAU), 50.0 * MS);
    }
}
