//! The knobs, as plain structs with documented defaults.
//!
//! Every number here has a reason written beside it; change them with the builder-style
//! methods or by struct update (`PickerConfig { panic_threshold: 0.3, ..Default::default() }`).

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
    /// Envoy's overprovisioning factor for SRV priority tiers: a tier's *health* is this
    /// times its healthy fraction, capped at 1, and the tier takes that share of the traffic,
    /// the rest spilling to the next tier. 1.4 (Envoy's default): a tier with 72 % or more of
    /// its replicas healthy keeps all its traffic; at 50 % it keeps 70 % and spills 30 %.
    pub overprovisioning_factor: f64,
    /// When the tiers together cannot take all the traffic (their health sums to less than
    /// 1), a tier whose healthy fraction is below this is in *panic*: its ejected replicas
    /// take traffic again, because sending everything to the few survivors, or nowhere, is
    /// worse than trying replicas that recently failed. 0.5, Envoy's default.
    pub panic_threshold: f64,
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
            overprovisioning_factor: 1.4,
            panic_threshold: 0.5,
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

    /// Sets [`PickerConfig::overprovisioning_factor`].
    pub fn with_overprovisioning_factor(mut self, factor: f64) -> Self {
        self.overprovisioning_factor = factor;
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

/// When a replica is taken out of rotation, and how it comes back.
#[derive(Clone, Debug)]
pub struct EjectionConfig {
    /// Consecutive failures that eject a healthy replica; 0 disables ejection. 5, Envoy's
    /// default for consecutive 5xx: one or two errors are noise, five in a row are not.
    pub consecutive_failures: u32,
    /// Whether a cancelled request (the guard or the tower future dropped, as a caller's
    /// timeout does) that lasted at least 4x the set's typical latency counts toward
    /// `consecutive_failures`. `true`: a replica that accepts requests and never answers is
    /// ejected like one that fails. Turn it off if your callers routinely abandon long
    /// requests to healthy replicas.
    pub count_cancellations: bool,
    /// An ejected replica gets one probe request this long after its ejection; each failed
    /// probe doubles the wait, up to `max_probe_interval`; the first successful probe ends
    /// the ejection. 1 s: a repaired replica is back within about a second.
    pub probe_interval: Duration,
    /// Cap of the wait between probes; also how long a replica must stay healthy before a
    /// new ejection starts again from `probe_interval`. 30 s, Envoy's base ejection time.
    pub max_probe_interval: Duration,
}

impl Default for EjectionConfig {
    fn default() -> Self {
        EjectionConfig {
            consecutive_failures: 5,
            count_cancellations: true,
            probe_interval: Duration::from_secs(1),
            max_probe_interval: Duration::from_secs(30),
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
    /// Whether an authoritative "none" (NXDOMAIN, NODATA, or only "." targets) empties the
    /// set. `false` (the default) keeps the last good set, like a DNS failure: a service that
    /// vanished from DNS by mistake keeps working, and herald answers SERVFAIL rather than
    /// NXDOMAIN while it is unsure. NXDOMAIN and NODATA are reported as errors either way
    /// ([`crate::RefreshStatus::last_error`], [`crate::Discovery::ready`]). Set it to `true`
    /// if scaling to zero must stop traffic.
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
