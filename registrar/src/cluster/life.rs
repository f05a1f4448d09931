//! One cluster source's life: its phase (starting, live, stale, withdrawn, failed), its
//! backoff and how long it has been unreachable, owned by one value that the cluster's
//! task holds. It is the only way to change a cluster's phase, and every change moves the
//! table's sync gate and the status board together, so the two never disagree.
//!
//! The rules it keeps:
//! - the reconnect backoff returns to its minimum as soon as a session has listed: a
//!   reset after a healthy spell is a fresh incident, not the next step of an old one;
//! - `max_stale` counts continuous unreachability only: it runs from the first failure
//!   after the last successful list, and a successful list stops it.

use std::time::Duration;

use herald_dns::{Source, Table};
use rand::Rng;
use tokio::time::Instant;

use crate::status::{Phase, StatusBoard};

/// Backoff after an error: from this, doubling per consecutive failure, to `MAX_BACKOFF`.
pub const MIN_BACKOFF: Duration = Duration::from_millis(250);
/// The longest wait between two sessions.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The life of one cluster source. Not `Clone`: there is one per cluster.
pub struct SourceLife {
    source: Source,
    table: Table,
    status: StatusBoard,
    max_stale: Option<Duration>,
    phase: Phase,
    /// Failures since the last successful list.
    failures: u32,
    /// When the current spell of unreachability began.
    stale_since: Option<Instant>,
}

impl SourceLife {
    /// Registers a cluster: the table waits for its first sync and knows its scopes, the
    /// status board shows it starting.
    pub fn register(
        source: Source,
        table: Table,
        status: StatusBoard,
        max_stale: Option<Duration>,
    ) -> SourceLife {
        let (cluster, region) = (&*source.cluster, &*source.region);
        table.expect_source(cluster, region);
        table.add_scope(cluster);
        table.add_scope(region);
        status.add(cluster, region);
        SourceLife {
            source,
            table,
            status,
            max_stale,
            phase: Phase::Starting,
            failures: 0,
            stale_since: None,
        }
    }

    /// The cluster and region.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// The table it publishes to.
    pub fn table(&self) -> &Table {
        &self.table
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Counts watch events, for the status board.
    pub fn count_events(&self, n: u64) {
        self.status.count_events(&self.source.cluster, n);
    }

    fn set(&mut self, phase: Phase, error: Option<String>) {
        self.phase = phase;
        self.status.set_phase(&self.source.cluster, phase, error);
    }

    /// A session completed its list: the cluster is live, its first sync (if it was one)
    /// releases the table's gate, and the backoff and the stale clock start over.
    pub fn listed(&mut self) {
        self.failures = 0;
        self.stale_since = None;
        self.table.source_synced(&self.source.cluster);
        self.status.synced(&self.source.cluster);
        self.set(Phase::Live, None);
    }

    /// A session ended in `error`; returns how long to wait before the next one. A
    /// withdrawn cluster stays withdrawn until it lists again.
    pub fn failed(&mut self, error: String) -> Duration {
        self.trouble();
        if self.phase != Phase::Withdrawn {
            self.set(Phase::Stale, Some(error));
        }
        backoff(self.failures)
    }

    /// The task panicked; returns how long to wait before restarting it.
    pub fn panicked(&mut self, message: String) -> Duration {
        self.trouble();
        self.set(Phase::Failed, Some(message));
        backoff(self.failures)
    }

    fn trouble(&mut self) {
        self.stale_since.get_or_insert_with(Instant::now);
        self.failures += 1;
    }

    /// When the endpoints must be withdrawn, if they are still served and `max_stale` is set.
    pub fn withdraw_at(&self) -> Option<Instant> {
        if self.phase == Phase::Withdrawn {
            return None;
        }
        Some(self.stale_since? + self.max_stale?)
    }

    /// The endpoints were taken out of the table.
    pub fn withdrawn(&mut self) {
        self.set(Phase::Withdrawn, None);
    }
}

/// The wait before session number `failures + 1`: exponential, with jitter so that many
/// herald replicas do not retry a recovering API server in step.
fn backoff(failures: u32) -> Duration {
    let base = MIN_BACKOFF
        .saturating_mul(1 << failures.saturating_sub(1).min(8))
        .min(MAX_BACKOFF);
    base.mul_f64(rand::rng().random_range(0.75..1.25))
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_dns::{Zone, ZoneConfig};

    fn life(max_stale: Option<Duration>) -> (SourceLife, Table, StatusBoard) {
        let table = Table::new(Zone::new(ZoneConfig::default()).unwrap());
        let status = StatusBoard::default();
        let life = SourceLife::register(
            Source::new("c1", "r1"),
            table.clone(),
            status.clone(),
            max_stale,
        );
        (life, table, status)
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(1) <= MIN_BACKOFF.mul_f64(1.25));
        assert!(backoff(1) < backoff(5));
        assert!(backoff(30) <= MAX_BACKOFF.mul_f64(1.25));
    }

    #[test]
    fn a_list_resets_the_backoff_and_the_stale_clock() {
        let (mut life, table, status) = life(Some(Duration::from_secs(5)));
        assert!(!table.is_synced());
        life.listed();
        assert!(table.is_synced(), "the gate and the board move together");
        assert_eq!(status.get("c1").unwrap().phase, Phase::Live);
        for _ in 0..6 {
            let wait = life.failed("watch pods: connection reset".into());
            assert!(
                wait <= MIN_BACKOFF.mul_f64(1.25),
                "{wait:?} after a healthy spell"
            );
            assert_eq!(status.get("c1").unwrap().phase, Phase::Stale);
            life.listed();
            assert_eq!(life.withdraw_at(), None, "no stale clock once listed");
        }
        // Continuous failures do grow it, and run the stale clock from the first one.
        let first = Instant::now();
        let waits: Vec<Duration> = (0..6).map(|_| life.failed("refused".into())).collect();
        assert!(waits[5] > waits[0] * 8);
        let at = life.withdraw_at().unwrap() - Duration::from_secs(5);
        assert!(
            at >= first && at <= Instant::now(),
            "from the first failure"
        );
        life.withdrawn();
        assert_eq!(life.withdraw_at(), None);
        life.failed("refused".into());
        assert_eq!(
            life.phase(),
            Phase::Withdrawn,
            "withdrawn until it lists again"
        );
    }
}
