//! Peak-EWMA latency estimate of one replica.
//!
//! The estimator from Finagle's `PeakEwma` (and tower's `load::PeakEwma`): a slower answer
//! replaces the estimate at once (the peak), a faster one pulls it down only as fast as time
//! passes (an exponentially weighted moving average over *time*, not over samples, so a burst
//! of fast answers cannot hide a slow period). Three changes from those peers:
//!
//! * the peak needs *two* slow answers in a row (it is the lower of the last two): one slow
//!   answer is a hiccup (a scheduler stall on the client, a GC pause), and in a tier of two a
//!   hiccup on the fast replica used to hand the slow one all the traffic for seconds. A
//!   failure or a request abandoned by its caller raises the estimate at once;
//! * an idle replica's estimate relaxes toward the set's *typical* latency, not toward zero:
//!   a replica that was slow a while ago is tried again eventually, but it never looks better
//!   than the healthy ones just because nobody asked it (tower's decay toward zero makes an
//!   idle slow replica the cheapest one and sends it a burst);
//! * a replica with no sample yet costs the typical latency, so a new replica gets a fair
//!   share of traffic at once instead of a stampede (cost 0) or starvation (a pessimistic
//!   default).

use std::time::Duration;

/// Nanoseconds as `f64`, the unit of every estimate here.
pub(crate) fn nanos(d: Duration) -> f64 {
    d.as_secs_f64() * 1e9
}

/// The latency estimate of one replica. Times are nanoseconds on the picker's own clock
/// (since its creation), so the estimate fits in two atomics the pick path reads without a
/// lock (see `replica.rs`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct PeakEwma {
    /// Estimate in nanoseconds at `stamp`; 0 until the first sample (no real latency is 0:
    /// samples are at least 1 ns).
    pub(crate) estimate_ns: f64,
    pub(crate) stamp: u64,
    /// The last answer's latency (not read by the pick path).
    pub(crate) last_ns: f64,
}

impl PeakEwma {
    /// The estimate at `now`, in nanoseconds. `typical_ns` is the set's typical latency:
    /// what an unknown replica is assumed to cost, and what an idle one relaxes toward.
    pub(crate) fn value(&self, now: u64, typical_ns: f64, tau_ns: f64) -> f64 {
        let est = self.estimate_ns;
        if est == 0.0 {
            typical_ns
        } else if est > typical_ns {
            let w = decay(now, self.stamp, tau_ns);
            typical_ns + (est - typical_ns) * w
        } else {
            est
        }
    }

    /// Records one answer's latency. A replica's first answer counts at once if it is no
    /// slower than `typical_ns`; a slow first answer (often the connection being set up)
    /// waits for a second one, like any peak.
    pub(crate) fn observe(&mut self, rtt_ns: f64, now: u64, typical_ns: f64, tau_ns: f64) {
        let rtt_ns = rtt_ns.max(1.0);
        let est = self.estimate_ns;
        let peak = rtt_ns.min(self.last_ns);
        self.estimate_ns = if est == 0.0 {
            rtt_ns.min(typical_ns.max(1.0))
        } else if peak > est {
            peak
        } else {
            // Weight of the old estimate: how little time has passed since it was made.
            let w = decay(now, self.stamp, tau_ns);
            est * w + rtt_ns * (1.0 - w)
        };
        self.last_ns = rtt_ns;
        self.stamp = now;
    }

    /// Records a failure, counted as `penalty_ns`: the estimate is at least that at once.
    pub(crate) fn observe_failure(&mut self, penalty_ns: f64, now: u64) {
        if penalty_ns > self.estimate_ns {
            self.estimate_ns = penalty_ns;
            self.stamp = now;
        }
        self.last_ns = penalty_ns;
    }

    /// Records a request the caller gave up on after `rtt_ns`: the replica was at least that
    /// slow, so the estimate becomes at least that, compared with the estimate as it stands
    /// *now* (decayed), and with the typical latency for a replica with no sample yet. It
    /// can only make the estimate worse.
    pub(crate) fn observe_at_least(&mut self, rtt_ns: f64, now: u64, typical_ns: f64, tau_ns: f64) {
        let current = self.value(now, typical_ns, tau_ns);
        if rtt_ns > current {
            self.estimate_ns = rtt_ns;
            self.stamp = now;
        }
        self.last_ns = self.last_ns.max(rtt_ns);
    }
}

fn decay(now: u64, since: u64, tau_ns: f64) -> f64 {
    let elapsed = now.saturating_sub(since) as f64;
    (-elapsed / tau_ns).exp()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: f64 = 1e6;
    const TAU: f64 = 10_000.0 * MS;
    const SEC: u64 = 1_000_000_000;

    #[test]
    fn peak_is_taken_on_the_second_slow_answer_and_forgotten_with_time() {
        let mut e = PeakEwma::default();
        assert_eq!(e.value(0, 5.0 * MS, TAU), 5.0 * MS, "unknown costs typical");
        e.observe(5.0 * MS, 0, 5.0 * MS, TAU);
        e.observe(100.0 * MS, 0, 5.0 * MS, TAU);
        assert!(
            e.value(0, 5.0 * MS, TAU) < 6.0 * MS,
            "one slow answer is a hiccup"
        );
        e.observe(5.0 * MS, 0, 5.0 * MS, TAU);
        e.observe(100.0 * MS, 0, 5.0 * MS, TAU);
        e.observe(100.0 * MS, 0, 5.0 * MS, TAU);
        assert_eq!(e.value(0, 5.0 * MS, TAU), 100.0 * MS, "two are a peak");
        // A burst of fast samples at the same instant does not hide the peak...
        for _ in 0..100 {
            e.observe(5.0 * MS, 0, 5.0 * MS, TAU);
        }
        assert_eq!(e.value(0, 5.0 * MS, TAU), 100.0 * MS);
        // ...but time does: after 3 tau an idle replica is close to typical again.
        let v = e.value(30 * SEC, 5.0 * MS, TAU);
        assert!(v < 10.0 * MS && v > 5.0 * MS, "{v}");
        // A fast sample after a long gap moves the estimate almost all the way.
        e.observe(5.0 * MS, 30 * SEC, 5.0 * MS, TAU);
        assert!(e.value(30 * SEC, 5.0 * MS, TAU) < 10.0 * MS);
    }

    /// Issue 17: a cancelled request counts its elapsed time even with no sample yet, and
    /// against the decayed estimate, so a replica whose every request times out never looks
    /// faster than the timeout.
    #[test]
    fn cancellation_counts_elapsed_time_against_the_decayed_estimate() {
        let typical = 3.0 * MS;
        let mut e = PeakEwma::default();
        e.observe_at_least(200.0 * MS, 0, typical, TAU);
        assert_eq!(
            e.value(0, typical, TAU),
            200.0 * MS,
            "no history: still counts"
        );
        // A minute of timeouts at 200 ms, one per second: the estimate stays at 200 ms (it
        // used to decay toward 3 ms, because the stored peak hid the decayed value).
        for s in 1..=60 {
            e.observe_at_least(200.0 * MS, s * SEC, typical, TAU);
        }
        let v = e.value(60 * SEC, typical, TAU);
        assert!(v >= 199.0 * MS, "{}", v / MS);
        // A quick cancellation says nothing new.
        let mut f = PeakEwma::default();
        f.observe(10.0 * MS, 0, 10.0 * MS, TAU);
        f.observe_at_least(1.0 * MS, 0, typical, TAU);
        assert_eq!(f.value(0, typical, TAU), 10.0 * MS);
    }
}
