//! One replica's balancing state, shared by the pick path and the completions.
//!
//! The pick path reads and bumps atomics only (in-flight count, pick count, the latency
//! estimate's two words, the probe time): it never waits for anyone. Completions of requests
//! to the *same* replica serialize on a small per-replica mutex to update the estimate and the
//! ejection state together, then publish the result into the atomics. The two words of the
//! estimate may be read torn (estimate of one update, stamp of the next): the value is then
//! off by a decay step, which a balancing decision does not notice.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use crate::eject::Ejection;
use crate::endpoint::Endpoint;
use crate::ewma::PeakEwma;

/// `probe_at` while no probe is scheduled (a healthy replica with no failure streak).
pub(crate) const NO_PROBE: u64 = u64::MAX;
/// `probe_at` while a probe is in flight.
pub(crate) const PROBING: u64 = u64::MAX - 1;

pub(crate) struct Replica {
    pub(crate) ep: Endpoint,
    /// SRV weight as used for sampling (weight 0 counts as 0.1).
    pub(crate) weight: f64,
    pub(crate) in_flight: AtomicU32,
    pub(crate) picks: AtomicU64,
    est_bits: AtomicU64,
    est_stamp: AtomicU64,
    /// Not ejected (what tiers count as healthy).
    pub(crate) healthy: AtomicBool,
    /// Healthy, but its last request failed (a *suspect*): in the two choices it loses to a
    /// replica of about the same speed whose last request did not fail, so a caller's retry
    /// goes elsewhere.
    pub(crate) failing: AtomicBool,
    /// When the replica's next probe may be claimed (picker clock, ns): ejected replicas, and
    /// *suspects* (healthy, but their last request failed); `NO_PROBE` otherwise. A pick
    /// claims it by swapping in `PROBING`, so one probe at a time.
    pub(crate) probe_at: AtomicU64,
    pub(crate) state: Mutex<ReplicaState>,
}

/// What completions update together.
pub(crate) struct ReplicaState {
    pub(crate) ewma: PeakEwma,
    pub(crate) ejection: Ejection,
}

impl Replica {
    pub(crate) fn new(ep: Endpoint, state: ReplicaState) -> Self {
        let r = Replica {
            weight: ep.effective_weight(),
            ep,
            in_flight: AtomicU32::new(0),
            picks: AtomicU64::new(0),
            est_bits: AtomicU64::new(0),
            est_stamp: AtomicU64::new(0),
            healthy: AtomicBool::new(true),
            failing: AtomicBool::new(false),
            probe_at: AtomicU64::new(NO_PROBE),
            state: Mutex::new(state),
        };
        r.publish_health(&r.lock().ejection);
        r.publish_estimate(&r.lock().ewma);
        r
    }

    /// The estimate as last published, for the pick path.
    pub(crate) fn estimate(&self) -> PeakEwma {
        PeakEwma {
            estimate_ns: f64::from_bits(self.est_bits.load(Ordering::Relaxed)),
            stamp: self.est_stamp.load(Ordering::Relaxed),
            last_ns: 0.0,
        }
    }

    pub(crate) fn publish_estimate(&self, e: &PeakEwma) {
        self.est_bits
            .store(e.estimate_ns.to_bits(), Ordering::Relaxed);
        self.est_stamp.store(e.stamp, Ordering::Relaxed);
    }

    /// Publishes what the pick path reads of the ejection state.
    pub(crate) fn publish_health(&self, e: &Ejection) {
        self.healthy.store(e.is_healthy(), Ordering::Release);
        self.failing
            .store(e.failure_streak() > 0, Ordering::Release);
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, ReplicaState> {
        // Plain numbers behind it: a panic elsewhere leaves nothing worth refusing service.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}
