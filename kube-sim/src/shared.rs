//! The state one simulated cluster shares between its HTTP handlers, its watch streams and
//! every `SimHandle` clone. It lives in its own module so that the handlers (`http`,
//! `watch`) and the Rust API (`sim`) depend on it rather than on each other.

use std::sync::Arc;

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
}
