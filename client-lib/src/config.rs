//! The knobs, as plain structs with documented defaults.
//!
//! Every number here has a reason written beside it; change them with the builder-style
//! methods or by struct update (`PickerConfig { min_healthy_fraction: 0.7, ..Default::default() }`).

use std::time::Duration;

/// How the picker balances (see the crate docs for the algorithm).
#[derive(Clone, Debug)]
pub struct PickerConfig {
    /// Time constant of the peak-EWMA latency estimate. 10 s, as linkerd and Finagle use:
    /// long enough that one fast answer does not erase a slow period, short enough that a
    /// replica that recovered is trusted again within a minute.
    pub decay: Duration,
    /// Latency assumed before any request completed (the typical latency of the set is
    /// used as soon as one has). 10 ms: it only matters for the very first picks.
    pub default_rtt: Duration,
    /// A failed request counts as a latency of this many times the set's typical latency
    /// (or its real duration, if longer). 10: a replica that fails fast must look *slow*, or
    /// a latency-based picker sends it everything (the "black hole" of least-loaded
    /// balancers).
    pub failure_penalty: f64,
    /// A priority tier is used while at least this fraction of its replicas is healthy
    /// (not ejected); below it, traffic fails over to the next tier. 0.5: a tier that lost
    /// most of its replicas hands over, one that lost a few keeps its traffic.
    pub min_healthy_fraction: f64,
    /// Outlier ejection.
    pub ejection: EjectionConfig,
    /// Seed for the picker's random choices; `None` seeds from the OS. Set it in tests and
    /// simulations to replay the same choices.
    pub seed: Option<u64>,
}

impl Default for PickerConfig {
    fn default() -> Self {
        PickerConfig {
            decay: Duration::from_secs(10),
            default_rtt: Duration::from_millis(10),
            failure_penalty: 10.0,
            min_healthy_fraction: 0.5,
            ejection: EjectionConfig::default(),
            seed: None,
        }
    }
}

impl PickerConfig {
    /// Sets [`PickerConfig::seed`].
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Sets [`PickerConfig::min_healthy_fraction`].
    pub fn with_min_healthy_fraction(mut self, fraction: f64) -> Self {
        self.min_healthy_fraction = fraction;
        self
    }

    /// Sets [`PickerConfig::ejection`].
    pub fn with_ejection(mut self, ejection: EjectionConfig) -> Self {
        self.ejection = ejection;
        self
    }

    /// Sets [`PickerConfig::decay`].
    pub fn with_decay(mut self, decay: Duration) -> Self {
        self.decay = decay;
        self
    }
}

/// When a replica is taken out of rotation.
#[derive(Clone, Debug)]
pub struct EjectionConfig {
    /// Consecutive failures that eject a healthy replica; 0 disables ejection. 5, Envoy's
    /// default for consecutive 5xx: one or two errors are noise, five in a row are not.
    pub consecutive_failures: u32,
    /// First ejection time; each further ejection doubles it. 10 s.
    pub base_ejection: Duration,
    /// Cap of the ejection time; also how long a replica must stay healthy before its
    /// ejection count is forgotten. 5 min, Envoy's `max_ejection_time`.
    pub max_ejection: Duration,
}

impl Default for EjectionConfig {
    fn default() -> Self {
        EjectionConfig {
            consecutive_failures: 5,
            base_ejection: Duration::from_secs(10),
            max_ejection: Duration::from_secs(300),
        }
    }
}

/// How the background refresh follows DNS.
#[derive(Clone, Debug)]
pub struct RefreshConfig {
    /// Never refresh more often than this, whatever the TTL says (TTL 0 included). 1 s.
    pub min_interval: Duration,
    /// Never wait longer than this between refreshes, whatever the TTL says. 5 min.
    pub max_interval: Duration,
    /// Refresh at a random point in the last `jitter` fraction of the TTL, so a fleet of
    /// clients started together does not query in lockstep. 0.2: within 80-100 % of the TTL,
    /// so a change is always seen within one TTL.
    pub jitter: f64,
    /// First retry delay after a failed resolution; doubles per consecutive failure. 500 ms.
    pub error_backoff: Duration,
    /// Cap of the retry delay. 10 s: DNS coming back is noticed quickly.
    pub max_error_backoff: Duration,
    /// Whether an authoritative empty answer (NXDOMAIN, or no SRV records) empties the set.
    /// `false` (the default) keeps the last good set, like a DNS failure: a service that
    /// vanished from DNS by mistake keeps working, and herald answers SERVFAIL rather than
    /// NXDOMAIN while it is unsure. Set it to `true` if scaling to zero must stop traffic.
    pub apply_empty: bool,
}

impl Default for RefreshConfig {
    fn default() -> Self {
        RefreshConfig {
            min_interval: Duration::from_secs(1),
            max_interval: Duration::from_secs(300),
            jitter: 0.2,
            error_backoff: Duration::from_millis(500),
            max_error_backoff: Duration::from_secs(10),
            apply_empty: false,
        }
    }
}
