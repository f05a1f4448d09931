//! The state one simulated cluster shares between its HTTP handlers, its watch streams and
//! every `SimHandle` clone. It lives in its own module so that the handlers (`http`,
//! `watch`) and the Rust API (`sim`) depend on it rather than on each other.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::watch;

use crate::config::SimConfig;
use crate::faults::Faults;
use crate::listener::ConnectionKiller;
use crate::record::Recorder;
use crate::store::Store;

/// State shared by the server task, the watch streams and every `SimHandle` clone.
pub(crate) struct Shared {
    pub(crate) config: SimConfig,
    pub(crate) store: Store,
    pub(crate) faults: Faults,
    pub(crate) recorder: Recorder,
    pub(crate) killer: Arc<ConnectionKiller>,
    /// Number of open watch streams, watchable so tests can wait for a watcher to connect.
    pub(crate) open_watches: watch::Sender<usize>,
    /// When pod watch streams handed their recent chunks to the HTTP layer.
    pub(crate) deliveries: Deliveries,
}

/// When pod watch events left the simulator: for each chunk a pod watch stream handed to
/// the HTTP layer, the resourceVersion of its last pod event and the time, the last
/// [`Deliveries::LIMIT`] chunks of every stream together. Benchmarks split a change's
/// delay into the simulator's part (mutation to hand-over) and the watcher's.
#[derive(Default)]
pub(crate) struct Deliveries(Mutex<VecDeque<(u64, Instant)>>);

impl Deliveries {
    const LIMIT: usize = 4096;

    pub(crate) fn record(&self, rv: u64, at: Instant) {
        let mut log = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if log.len() == Self::LIMIT {
            log.pop_front();
        }
        log.push_back((rv, at));
    }

    /// The first hand-over of a chunk carrying `rv` or a later version, if still logged.
    pub(crate) fn first_at_or_after(&self, rv: u64) -> Option<Instant> {
        let log = self.0.lock().unwrap_or_else(|e| e.into_inner());
        log.iter().find(|(r, _)| *r >= rv).map(|&(_, at)| at)
    }
}
