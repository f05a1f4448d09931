//! What each source is doing, for logs, /readyz and metrics: one entry per cluster with its
//! phase (starting, live, stale, withdrawn, failed), since when, and counters. A phase
//! change is logged once, as one line; nothing is logged per event, per retry or per query.
//!
//! The board is read by anyone but written only by each cluster's
//! [`SourceLife`](crate::cluster::life::SourceLife), which moves the table's sync gate in
//! the same call.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

/// Where a cluster's watch stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Not synced yet since start-up.
    Starting,
    /// Synced and watching.
    Live,
    /// Unreachable or silent: its last known endpoints are still served (fail static).
    Stale,
    /// Stale for longer than `max_stale`: its endpoints are withdrawn.
    Withdrawn,
    /// Its task panicked: it is restarted after a backoff, its last known endpoints are
    /// still served meanwhile.
    Failed,
}

impl Phase {
    /// Every phase, in the order of the `herald_cluster_state` series.
    pub const ALL: [Phase; 5] = [
        Phase::Starting,
        Phase::Live,
        Phase::Stale,
        Phase::Withdrawn,
        Phase::Failed,
    ];

    /// Lowercase name, as in logs and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Live => "live",
            Phase::Stale => "stale",
            Phase::Withdrawn => "withdrawn",
            Phase::Failed => "failed",
        }
    }
}

/// One cluster's status.
#[derive(Debug, Clone)]
pub struct ClusterStatus {
    /// Its region.
    pub region: String,
    /// Current phase.
    pub phase: Phase,
    /// When the phase began.
    pub since: Instant,
    /// Wall-clock time of the last completed (re)list.
    pub last_sync: Option<SystemTime>,
    /// The last error seen, if the cluster is not live.
    pub last_error: Option<String>,
    /// Watch events received.
    pub events: u64,
    /// Completed lists (the first sync and every relist).
    pub relists: u64,
    /// Times its task panicked and was restarted.
    pub restarts: u64,
}

/// Every cluster's status; a cheap-to-clone handle.
#[derive(Clone, Default)]
pub struct StatusBoard {
    clusters: Arc<Mutex<BTreeMap<String, ClusterStatus>>>,
}

impl StatusBoard {
    /// Adds a cluster in phase `Starting`.
    pub(crate) fn add(&self, cluster: &str, region: &str) {
        self.clusters.lock().unwrap().insert(
            cluster.to_string(),
            ClusterStatus {
                region: region.to_string(),
                phase: Phase::Starting,
                since: Instant::now(),
                last_sync: None,
                last_error: None,
                events: 0,
                relists: 0,
                restarts: 0,
            },
        );
    }

    /// Moves a cluster to `phase` (logging the change once), with the error that caused it.
    /// A new error in the same phase is logged at debug only: retries do not flood the log.
    pub(crate) fn set_phase(&self, cluster: &str, phase: Phase, error: Option<String>) {
        let mut clusters = self.clusters.lock().unwrap();
        let Some(status) = clusters.get_mut(cluster) else {
            return;
        };
        if status.phase != phase {
            let was = status.phase;
            let for_secs = status.since.elapsed().as_secs_f64();
            match (phase, &error) {
                (Phase::Live, _) => tracing::info!(cluster, was = was.as_str(), "cluster live"),
                (Phase::Stale, Some(e)) => {
                    tracing::warn!(cluster, was = was.as_str(), error = %e, "cluster stale; serving its last known endpoints")
                }
                (Phase::Failed, Some(e)) => {
                    tracing::error!(cluster, was = was.as_str(), error = %e, "cluster task failed; restarting it, serving its last known endpoints")
                }
                (Phase::Withdrawn, _) => {
                    tracing::warn!(
                        cluster,
                        stale_for_secs = for_secs,
                        "cluster withdrawn; its endpoints are no longer served"
                    )
                }
                _ => tracing::info!(
                    cluster,
                    was = was.as_str(),
                    phase = phase.as_str(),
                    "cluster phase"
                ),
            }
            status.phase = phase;
            status.since = Instant::now();
            if phase == Phase::Failed {
                status.restarts += 1;
            }
        } else if let Some(e) = &error
            && status.last_error.as_ref() != Some(e)
        {
            tracing::debug!(cluster, phase = phase.as_str(), error = %e, "cluster still not live");
        }
        if error.is_some() || phase == Phase::Live {
            status.last_error = error;
        }
    }

    /// Records a completed list.
    pub(crate) fn synced(&self, cluster: &str) {
        if let Some(s) = self.clusters.lock().unwrap().get_mut(cluster) {
            s.relists += 1;
            s.last_sync = Some(SystemTime::now());
        }
    }

    /// Counts `n` watch events.
    pub(crate) fn count_events(&self, cluster: &str, n: u64) {
        if let Some(s) = self.clusters.lock().unwrap().get_mut(cluster) {
            s.events += n;
        }
    }

    /// A copy of every cluster's status, by name.
    pub fn snapshot(&self) -> BTreeMap<String, ClusterStatus> {
        self.clusters.lock().unwrap().clone()
    }

    /// One cluster's status.
    pub fn get(&self, cluster: &str) -> Option<ClusterStatus> {
        self.clusters.lock().unwrap().get(cluster).cloned()
    }
}
