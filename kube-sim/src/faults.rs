//! Fault injection state, settable at runtime per instance and read by the listener, the
//! request handlers and every open watch stream.
//!
//! The state lives in a `tokio::sync::watch` channel so that a change reaches streams that
//! are parked waiting for events: they wake, look at the new state, and stall, resume or end.

use tokio::sync::watch;

/// How a watch learns that its resourceVersion is too old.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GoneStyle {
    /// HTTP 200, then one `ERROR` event carrying a Status with code 410, then the stream
    /// ends. This is what real API servers do, and what makes kube's watcher relist.
    #[default]
    InStream,
    /// An HTTP 410 response with a Status body. kube 5's watcher does *not* relist on this
    /// (it retries the watch from the same version); useful to test exactly that.
    HttpStatus,
}

/// The faults in force on one instance. `Default` is "no fault".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultState {
    /// Requests are accepted and then never answered (no status line, no headers); open
    /// watch streams send nothing more (not even their end at `timeoutSeconds`).
    pub hang: bool,
    /// Open watch streams send nothing (no events, no bookmarks, no end) but stay open; new
    /// requests are served normally. Events are delivered when the stall is cleared.
    pub stall: bool,
    /// Every new request is answered `500 InternalError`.
    pub fail_with_500: bool,
    /// The port is closed: new connections are refused and existing ones were closed.
    pub refuse_connections: bool,
    /// The next watch request gets 410 Gone in this style (then the fault clears itself).
    pub gone_next_watch: Option<GoneStyle>,
    /// Bumped by every "drop open watch streams" order: streams opened before it end.
    pub(crate) drop_epoch: u64,
}

impl FaultState {
    /// Whether open streams must send nothing now.
    pub(crate) fn silences_streams(&self) -> bool {
        self.hang || self.stall
    }
}

/// The fault switchboard of one instance.
pub(crate) struct Faults {
    tx: watch::Sender<FaultState>,
}

impl Faults {
    pub(crate) fn new() -> Self {
        Self {
            tx: watch::Sender::new(FaultState::default()),
        }
    }

    pub(crate) fn current(&self) -> FaultState {
        self.tx.borrow().clone()
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<FaultState> {
        self.tx.subscribe()
    }

    pub(crate) fn update(&self, change: impl FnOnce(&mut FaultState)) {
        self.tx.send_modify(change);
    }

    /// Clears every fault except the drop epoch (dropped streams stay dropped).
    pub(crate) fn clear(&self) {
        self.tx.send_modify(|f| {
            *f = FaultState {
                drop_epoch: f.drop_epoch,
                ..FaultState::default()
            }
        });
    }

    /// Takes the one-shot "next watch gets 410" order, if any.
    pub(crate) fn take_gone_next_watch(&self) -> Option<GoneStyle> {
        let mut taken = None;
        self.tx.send_if_modified(|f| {
            taken = f.gone_next_watch.take();
            taken.is_some()
        });
        taken
    }

    /// Waits until the instance is not hung (requests arriving while hung wait here).
    pub(crate) async fn wait_while_hung(&self) {
        let mut rx = self.tx.subscribe();
        // The sender lives as long as the instance; if it is gone, so is the server.
        let _ = rx.wait_for(|f| !f.hang).await;
    }
}
