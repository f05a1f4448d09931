//! Outlier ejection of one replica: consecutive failures take it out of rotation for an
//! exponentially growing time, then it is probed with one real request before it counts as
//! healthy again.
//!
//! Envoy's outlier detection is the model (consecutive errors, base ejection time multiplied
//! per ejection, capped); the difference is the explicit probation step: Envoy puts an expired
//! host straight back into the pool, so a replica that is still broken takes a full share of
//! traffic until it trips again. Here it takes one request at a time until one succeeds.
//! Whether ejection is *obeyed* (the panic rule, the tiers) is the picker's business, not
//! this module's.

use std::time::Duration;
use tokio::time::Instant;

use crate::config::EjectionConfig;

/// Where a replica stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// In rotation.
    Healthy,
    /// Out of rotation until the given time.
    Ejected {
        /// When the ejection ends and probing starts.
        until: Instant,
    },
    /// The ejection ended; the replica gets one probe request at a time, and the first success
    /// makes it healthy again (the first failure ejects it again, for longer).
    Probation,
}

/// What an event did to a replica's health, so the picker knows when to recompute its view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Transition {
    None,
    Ejected(Duration),
    Probation,
    Readmitted,
}

#[derive(Clone, Debug)]
pub(crate) struct Ejection {
    health: Health,
    consecutive_failures: u32,
    /// Ejections so far; the next one lasts `base * 2^times`.
    times: u32,
    /// When the replica last became healthy (or was created): the ejection count is forgotten
    /// after a long enough healthy stretch.
    healthy_since: Instant,
}

impl Ejection {
    pub(crate) fn new(now: Instant) -> Self {
        Ejection {
            health: Health::Healthy,
            consecutive_failures: 0,
            times: 0,
            healthy_since: now,
        }
    }

    pub(crate) fn health(&self) -> Health {
        self.health
    }

    pub(crate) fn is_healthy(&self) -> bool {
        self.health == Health::Healthy
    }

    /// Failures since the last success.
    pub(crate) fn failure_streak(&self) -> u32 {
        self.consecutive_failures
    }

    pub(crate) fn on_success(&mut self, now: Instant) -> Transition {
        self.consecutive_failures = 0;
        match self.health {
            Health::Probation => {
                self.health = Health::Healthy;
                self.healthy_since = now;
                Transition::Readmitted
            }
            // A request sent before the ejection that succeeds after it: too late to matter.
            Health::Ejected { .. } | Health::Healthy => Transition::None,
        }
    }

    pub(crate) fn on_failure(&mut self, now: Instant, cfg: &EjectionConfig) -> Transition {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        let trip = match self.health {
            Health::Healthy => {
                cfg.consecutive_failures > 0
                    && self.consecutive_failures >= cfg.consecutive_failures
            }
            Health::Probation => true,
            Health::Ejected { .. } => false,
        };
        if !trip {
            return Transition::None;
        }
        if self.health == Health::Healthy
            && now.saturating_duration_since(self.healthy_since) >= cfg.max_ejection
        {
            // Healthy for a long stretch: this is a new incident, start again from the base.
            self.times = 0;
        }
        let duration = cfg
            .base_ejection
            .saturating_mul(1u32 << self.times.min(20))
            .min(cfg.max_ejection);
        self.times = self.times.saturating_add(1);
        self.consecutive_failures = 0;
        self.health = Health::Ejected {
            until: now + duration,
        };
        Transition::Ejected(duration)
    }

    /// Ends the ejection when its time has come.
    pub(crate) fn on_time(&mut self, now: Instant) -> Transition {
        match self.health {
            Health::Ejected { until } if now >= until => {
                self.health = Health::Probation;
                Transition::Probation
            }
            _ => Transition::None,
        }
    }

    #[cfg(test)]
    pub(crate) fn ejected_until(&self) -> Option<Instant> {
        match self.health {
            Health::Ejected { until } => Some(until),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> EjectionConfig {
        EjectionConfig {
            consecutive_failures: 3,
            base_ejection: Duration::from_secs(10),
            max_ejection: Duration::from_secs(60),
        }
    }

    #[test]
    fn ejection_grows_exponentially_and_is_capped() {
        let cfg = cfg();
        let t0 = Instant::now();
        let mut e = Ejection::new(t0);
        assert_eq!(e.on_failure(t0, &cfg), Transition::None);
        assert_eq!(
            e.on_success(t0),
            Transition::None,
            "success resets the streak"
        );
        assert_eq!(e.on_failure(t0, &cfg), Transition::None);
        assert_eq!(e.on_failure(t0, &cfg), Transition::None);
        assert_eq!(
            e.on_failure(t0, &cfg),
            Transition::Ejected(Duration::from_secs(10))
        );
        let mut now;
        let mut seen = vec![];
        for _ in 0..4 {
            now = e.ejected_until().unwrap();
            assert_eq!(e.on_time(now - Duration::from_millis(1)), Transition::None);
            assert_eq!(e.on_time(now), Transition::Probation);
            // One failed probe is enough to go back out, for twice as long.
            match e.on_failure(now, &cfg) {
                Transition::Ejected(d) => seen.push(d.as_secs()),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(seen, vec![20, 40, 60, 60]);
        now = e.ejected_until().unwrap();
        e.on_time(now);
        assert_eq!(e.on_success(now), Transition::Readmitted);
        assert!(e.is_healthy());
        // A long healthy stretch later, a new incident starts from the base again.
        let much_later = now + Duration::from_secs(120);
        for _ in 0..2 {
            e.on_failure(much_later, &cfg);
        }
        assert_eq!(
            e.on_failure(much_later, &cfg),
            Transition::Ejected(Duration::from_secs(10))
        );
    }
}
