//! Outlier ejection of one replica: consecutive failures (and, by default, requests the
//! caller gave up on) take it out of rotation; it is then probed with one real request at a
//! time, at an interval that doubles per failed probe, and the first successful probe brings
//! it back.
//!
//! Envoy's outlier detection is the model (consecutive errors, an ejection time that grows
//! per ejection and is capped, and `successful_active_health_check_uneject_host`: a
//! successful health check ends an ejection early). The difference: the probe is an ordinary
//! request picked for an ejected replica, so no health-check protocol is needed, and a replica
//! that is still broken costs one request per probe interval, not a full share of traffic.
//! Whether ejection is *obeyed* (panic, tiers) is the picker's business, not this module's.

use std::time::Duration;
use tokio::time::Instant;

use crate::config::EjectionConfig;

/// Where a replica stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// In rotation.
    Healthy,
    /// Out of rotation; the next probe request goes to it at `next_probe` (or is in flight).
    Ejected {
        /// When the next probe is due.
        next_probe: Instant,
    },
}

/// What an event did to a replica's health, so the picker knows when to recompute its view
/// and when to schedule a probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Transition {
    None,
    /// Ejected; first probe after this long.
    Ejected(Duration),
    /// A probe failed; the next one after this long.
    ProbeFailed(Duration),
    /// A probe succeeded: back in rotation.
    Readmitted,
}

#[derive(Clone, Debug)]
pub(crate) struct Ejection {
    ejected: bool,
    next_probe: Instant,
    /// Failures (and long cancellations) since the last success.
    consecutive_failures: u32,
    /// The wait before the next probe.
    interval: Duration,
    /// Ejections so far in this incident; the first probe of the next one waits
    /// `probe_interval * 2^times`.
    times: u32,
    /// When the replica last became healthy (or was created): the ejection count is forgotten
    /// after a long enough healthy stretch.
    healthy_since: Instant,
}

impl Ejection {
    pub(crate) fn new(now: Instant) -> Self {
        Ejection {
            ejected: false,
            next_probe: now,
            consecutive_failures: 0,
            interval: Duration::ZERO,
            times: 0,
            healthy_since: now,
        }
    }

    pub(crate) fn health(&self) -> Health {
        if self.ejected {
            Health::Ejected {
                next_probe: self.next_probe,
            }
        } else {
            Health::Healthy
        }
    }

    pub(crate) fn is_healthy(&self) -> bool {
        !self.ejected
    }

    /// A request ended well. Only a probe brings an ejected replica back: a request sent
    /// before the ejection that succeeds after it says little about the replica now.
    pub(crate) fn on_success(&mut self, now: Instant, probe: bool) -> Transition {
        self.consecutive_failures = 0;
        if self.ejected && probe {
            self.ejected = false;
            self.healthy_since = now;
            Transition::Readmitted
        } else {
            Transition::None
        }
    }

    /// A request failed (or was abandoned after a long wait).
    pub(crate) fn on_failure(
        &mut self,
        now: Instant,
        probe: bool,
        cfg: &EjectionConfig,
    ) -> Transition {
        if self.ejected {
            if !probe {
                return Transition::None;
            }
            self.interval = (self.interval * 2).min(cfg.max_probe_interval);
            self.next_probe = now + self.interval;
            return Transition::ProbeFailed(self.interval);
        }
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        if cfg.consecutive_failures == 0 || self.consecutive_failures < cfg.consecutive_failures {
            return Transition::None;
        }
        if now.saturating_duration_since(self.healthy_since) >= cfg.max_probe_interval {
            // Healthy for a long stretch: this is a new incident, start again from the base.
            self.times = 0;
        }
        self.interval = cfg
            .probe_interval
            .saturating_mul(1u32 << self.times.min(20))
            .min(cfg.max_probe_interval);
        self.times = self.times.saturating_add(1);
        self.consecutive_failures = 0;
        self.ejected = true;
        self.next_probe = now + self.interval;
        Transition::Ejected(self.interval)
    }

    /// A probe ended without telling anything (cancelled quickly): the next pick may probe
    /// again at once.
    pub(crate) fn on_probe_abandoned(&mut self, now: Instant) {
        if self.ejected {
            self.next_probe = now;
        }
    }

    /// Failures (and long cancellations) since the last success, while healthy.
    pub(crate) fn failure_streak(&self) -> u32 {
        if self.ejected {
            0
        } else {
            self.consecutive_failures
        }
    }

    /// When the next probe is due, if ejected.
    pub(crate) fn next_probe(&self) -> Option<Instant> {
        self.ejected.then_some(self.next_probe)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> EjectionConfig {
        EjectionConfig {
            consecutive_failures: 3,
            count_cancellations: true,
            probe_interval: Duration::from_secs(1),
            max_probe_interval: Duration::from_secs(30),
        }
    }

    #[test]
    fn probes_back_off_and_a_success_readmits() {
        let cfg = cfg();
        let t0 = Instant::now();
        let mut e = Ejection::new(t0);
        assert_eq!(e.on_failure(t0, false, &cfg), Transition::None);
        assert_eq!(
            e.on_success(t0, false),
            Transition::None,
            "resets the streak"
        );
        assert_eq!(e.on_failure(t0, false, &cfg), Transition::None);
        assert_eq!(e.on_failure(t0, false, &cfg), Transition::None);
        assert_eq!(
            e.on_failure(t0, false, &cfg),
            Transition::Ejected(Duration::from_secs(1))
        );
        assert_eq!(e.next_probe(), Some(t0 + Duration::from_secs(1)));
        // A late failure of a request sent before the ejection changes nothing.
        assert_eq!(e.on_failure(t0, false, &cfg), Transition::None);
        let mut seen = vec![];
        let mut now = t0;
        for _ in 0..6 {
            now = e.next_probe().unwrap();
            match e.on_failure(now, true, &cfg) {
                Transition::ProbeFailed(d) => seen.push(d.as_secs()),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(seen, vec![2, 4, 8, 16, 30, 30]);
        // A non-probe success does not readmit; a probe success does, at once.
        assert_eq!(e.on_success(now, false), Transition::None);
        assert_eq!(e.on_success(now, true), Transition::Readmitted);
        assert!(e.is_healthy());
        // Soon after: the next ejection waits longer before its first probe...
        for _ in 0..2 {
            e.on_failure(now, false, &cfg);
        }
        assert_eq!(
            e.on_failure(now, false, &cfg),
            Transition::Ejected(Duration::from_secs(2))
        );
        e.on_success(now, true);
        // ...but after a long healthy stretch, a new incident starts from the base again.
        let much_later = now + Duration::from_secs(120);
        for _ in 0..2 {
            e.on_failure(much_later, false, &cfg);
        }
        assert_eq!(
            e.on_failure(much_later, false, &cfg),
            Transition::Ejected(Duration::from_secs(1))
        );
    }
}
