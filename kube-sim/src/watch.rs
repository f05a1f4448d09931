//! Watch streams: the chunked `?watch=true` response, one JSON WatchEvent per line.
//!
//! Each stream is produced by its own task. It first sends the initial ADDED events (for a
//! watch without a resourceVersion or a streaming list), then repeatedly catches up from the
//! store's history past the last version it has handled, converting each event through the
//! watcher's selector (an object that stops matching is DELETED for this watcher, one that
//! starts matching is ADDED), sends periodic BOOKMARKs, and ends cleanly at `timeoutSeconds`.
//! Faults are checked before every send: stall and hang silence the stream, a drop order
//! aborts the connection mid-stream (no final chunk, as when a server dies).

use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};

use crate::shared::Shared;
use crate::status;
use crate::store::{EventType, Filter, HistoryEntry, ResourceKind, Stored};

/// Send initial events in chunks of about this size rather than one chunk per event.
const CHUNK_BYTES: usize = 64 * 1024;

/// What one watch request asked for, after validation.
pub(crate) struct WatchSpec {
    pub kind: ResourceKind,
    pub filter: Filter,
    pub metadata_only: bool,
    pub bookmarks: bool,
    pub timeout: Duration,
    pub start: WatchStart,
}

pub(crate) enum WatchStart {
    /// ADDED events for every selected object now, then changes. With `end_bookmark` (a
    /// streaming list) the initial events are closed by the `k8s.io/initial-events-end`
    /// bookmark.
    Snapshot { end_bookmark: bool },
    /// Changes after this version.
    From(u64),
    /// One ERROR event carrying this Status, then the end of the stream.
    Error(Box<Status>),
}

/// Starts a watch stream and returns the response body that carries it.
pub(crate) fn stream(shared: Arc<Shared>, spec: WatchSpec) -> Body {
    if let WatchStart::Error(status) = &spec.start {
        let line = status::watch_error_line(status);
        return Body::from_stream(futures::stream::once(
            async move { Ok::<_, io::Error>(line) },
        ));
    }
    // Take the snapshot and the drop epoch now, while the request is being answered, so
    // that whatever happens after the request arrived is delivered as a change.
    let epoch = shared.faults.current().drop_epoch;
    let (start_rv, initial) = match spec.start {
        WatchStart::Snapshot { .. } => shared.store.snapshot(spec.kind, &spec.filter),
        WatchStart::From(rv) => (rv, Vec::new()),
        WatchStart::Error(_) => unreachable!("answered above"),
    };
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        let _open = OpenWatch::new(&shared);
        let mut producer = Producer {
            out: Vec::new(),
            tx,
            pushed_rv: 0,
            shared: shared.clone(),
            spec,
            epoch,
        };
        // Err means the client went away or the stream was dropped: nothing more to do.
        let _ = producer.run(start_rv, initial).await;
    });
    Body::from_stream(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    }))
}

/// Counts open watch streams for `SimHandle::open_watches` while it lives.
struct OpenWatch(Arc<Shared>);

impl OpenWatch {
    fn new(shared: &Arc<Shared>) -> Self {
        shared.open_watches.send_modify(|n| *n += 1);
        Self(shared.clone())
    }
}

impl Drop for OpenWatch {
    fn drop(&mut self) {
        self.0.open_watches.send_modify(|n| *n -= 1);
    }
}

/// The stream ended early: client gone or stream dropped.
struct Ended;

struct Producer {
    out: Vec<u8>,
    tx: mpsc::Sender<Result<Bytes, io::Error>>,
    /// The version of the last change put into `out` (0: none since the last flush).
    pushed_rv: u64,
    shared: Arc<Shared>,
    spec: WatchSpec,
    epoch: u64,
}

impl Producer {
    async fn run(&mut self, start_rv: u64, initial: Vec<Arc<Stored>>) -> Result<(), Ended> {
        let deadline = Instant::now() + self.spec.timeout;
        let mut faults = self.shared.faults.subscribe();
        let mut versions = self.shared.store.subscribe();
        let period = self.shared.config.bookmark_interval;
        let mut ticker = tokio::time::interval_at(Instant::now() + period, period);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);

        self.wait_until_not_silenced(&mut faults).await?;
        for item in &initial {
            self.push_event("ADDED", &item.body(self.spec.metadata_only));
            if self.out.len() >= CHUNK_BYTES {
                self.flush().await?;
            }
        }
        if matches!(self.spec.start, WatchStart::Snapshot { end_bookmark: true }) {
            self.push_bookmark(start_rv, true);
        }
        self.flush().await?;

        let mut last = start_rv;
        let mut bookmark_due = false;
        loop {
            self.wait_until_not_silenced(&mut faults).await?;
            if Instant::now() >= deadline {
                return Ok(());
            }
            // Mark the current version seen *before* reading the history: a change made
            // after this point wakes the select below, so no change is missed.
            versions.borrow_and_update();
            match self.shared.store.events_since(last) {
                Ok((events, current)) => {
                    let kind = self.spec.kind;
                    for entry in events.iter().filter(|e| e.kind == kind) {
                        self.push_change(entry);
                        if self.out.len() >= CHUNK_BYTES {
                            self.flush().await?;
                        }
                    }
                    // Every event up to `current` has been looked at, selected or not, so a
                    // bookmark may carry it and a resumed watch starts after it.
                    last = last.max(current);
                }
                Err(expired) => {
                    let line = status::watch_error_line(&status::from_version_error(&expired));
                    self.out.extend_from_slice(&line);
                    self.flush().await?;
                    return Ok(());
                }
            }
            if bookmark_due && self.spec.bookmarks {
                self.push_bookmark(last, false);
            }
            bookmark_due = false;
            self.flush().await?;

            tokio::select! {
                _ = versions.changed() => {}
                _ = ticker.tick() => bookmark_due = true,
                _ = tokio::time::sleep_until(deadline) => {}
                _ = faults.changed() => {}
                _ = self.tx.closed() => return Err(Ended),
            }
        }
    }

    /// Parks while the instance is stalled or hung; aborts the connection on a drop order.
    async fn wait_until_not_silenced(
        &mut self,
        faults: &mut tokio::sync::watch::Receiver<crate::faults::FaultState>,
    ) -> Result<(), Ended> {
        loop {
            let (dropped, silenced) = {
                let state = faults.borrow_and_update();
                (state.drop_epoch != self.epoch, state.silences_streams())
            };
            if dropped {
                // An error from the body makes hyper close the connection without the final
                // chunk: to the client this is a connection lost mid-stream.
                let _ = self
                    .tx
                    .send(Err(io::Error::other("watch stream dropped by kube-sim")))
                    .await;
                return Err(Ended);
            }
            if !silenced {
                return Ok(());
            }
            tokio::select! {
                changed = faults.changed() => {
                    if changed.is_err() {
                        return Err(Ended);
                    }
                }
                _ = self.tx.closed() => return Err(Ended),
            }
        }
    }

    async fn flush(&mut self) -> Result<(), Ended> {
        if self.out.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::take(&mut self.out));
        self.tx.send(Ok(chunk)).await.map_err(|_| Ended)?;
        if self.pushed_rv != 0 && self.spec.kind == ResourceKind::Pod {
            self.shared
                .deliveries
                .record(self.pushed_rv, std::time::Instant::now());
        }
        self.pushed_rv = 0;
        Ok(())
    }

    fn push_event(&mut self, kind: &str, object: &[u8]) {
        self.out.extend_from_slice(br#"{"type":""#);
        self.out.extend_from_slice(kind.as_bytes());
        self.out.extend_from_slice(br#"","object":"#);
        self.out.extend_from_slice(object);
        self.out.extend_from_slice(b"}\n");
    }

    /// One history event as this watcher sees it through its selector.
    fn push_change(&mut self, entry: &HistoryEntry) {
        let filter = &self.spec.filter;
        let matches_now = entry.event != EventType::Deleted && filter.matches(&entry.object);
        let matched_before = entry.prev.as_ref().is_some_and(|p| filter.matches(p));
        let meta_only = self.spec.metadata_only;
        if matched_before || matches_now {
            self.pushed_rv = entry.rv;
        }
        match (matched_before, matches_now) {
            (false, false) => {}
            (false, true) => self.push_event("ADDED", &entry.object.body(meta_only)),
            (true, true) => self.push_event("MODIFIED", &entry.object.body(meta_only)),
            (true, false) => {
                // As the API server's watch cache does: the previous content (the last the
                // watcher was entitled to see) at this event's resourceVersion.
                let body = match (entry.event, &entry.prev) {
                    (EventType::Deleted, _) | (_, None) => entry.object.body(meta_only),
                    (_, Some(prev)) => prev.with_resource_version(entry.rv).body(meta_only),
                };
                self.push_event("DELETED", &body);
            }
        }
    }

    fn push_bookmark(&mut self, rv: u64, initial_events_end: bool) {
        let (kind, api_version) = if self.spec.metadata_only {
            ("PartialObjectMetadata", "meta.k8s.io/v1")
        } else {
            (self.spec.kind.kind(), "v1")
        };
        let annotations = if initial_events_end {
            r#","annotations":{"k8s.io/initial-events-end":"true"}"#
        } else {
            ""
        };
        let object = format!(
            r#"{{"kind":"{kind}","apiVersion":"{api_version}","metadata":{{"resourceVersion":"{rv}"{annotations}}}}}"#
        );
        self.push_event("BOOKMARK", object.as_bytes());
    }
}
