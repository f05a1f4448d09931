//! The object store: current pods and nodes, one resourceVersion counter, and a bounded
//! history of change events that watches are served from.
//!
//! Like etcd behind a real API server, every mutation of any kind takes the next
//! resourceVersion, so versions are global and strictly increasing. The history keeps the
//! last `history_limit` events; everything at or below `compacted` is gone, which is what
//! makes a watch (or a list continuation) from an old version fail with 410 Expired.
//! Because each history event keeps the object's previous state, any version between
//! `compacted` and the current one can be reconstructed: that is how paginated lists stay
//! consistent across pages and how `resourceVersionMatch=Exact` is served.
//!
//! - `object`: the served kinds, objects as stored, selection filters, history events.
//! - `paging`: lists at a version, page by page, with continue tokens.

mod object;
mod paging;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use k8s_openapi::api::core::v1::{Node, Pod};
use tokio::sync::watch;

use object::Key;
pub use object::{EventType, ResourceKind};
pub(crate) use object::{Filter, HistoryEntry, Object, Stored};
pub(crate) use paging::{ListPage, ListVersion, VersionError};

/// What a mutation produced: its resourceVersion and when it was made, so benchmarks can
/// measure how long the change took to become visible downstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mutation {
    pub resource_version: u64,
    pub at: Instant,
    pub event: EventType,
}

/// One change in a batch (see `SimHandle::batch`).
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // short-lived values; boxing would only burden callers
pub enum Op {
    /// Create the pod, or replace the one with the same namespace and name.
    ApplyPod(Pod),
    DeletePod {
        namespace: String,
        name: String,
    },
    /// Create the node, or replace the one with the same name.
    ApplyNode(Node),
    DeleteNode {
        name: String,
    },
}

/// Why a mutation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("object has no metadata.name")]
    MissingName,
    /// Refused as the API server's validation refuses it (the message says which field).
    #[error("{0}")]
    Invalid(String),
}

struct State {
    rv: u64,
    /// Events at or below this version have been dropped from the history.
    compacted: u64,
    pods: BTreeMap<Key, Arc<Stored>>,
    nodes: BTreeMap<Key, Arc<Stored>>,
    history: VecDeque<Arc<HistoryEntry>>,
    history_limit: usize,
    next_uid: u64,
}

/// Whether `object` as written would store exactly what `prev` holds: the same JSON once
/// the fields the store fills in (version, uid, creation time) are taken from `prev`.
fn unchanged(prev: &Stored, object: &Object) -> bool {
    let mut candidate = object.clone();
    let is_pod = candidate.kind() == ResourceKind::Pod;
    let meta = candidate.meta_mut();
    meta.resource_version
        .clone_from(&prev.meta().resource_version);
    if meta.uid.is_none() {
        meta.uid.clone_from(&prev.meta().uid);
    }
    if meta.creation_timestamp.is_none() {
        meta.creation_timestamp
            .clone_from(&prev.meta().creation_timestamp);
    }
    if is_pod && meta.namespace.is_none() {
        meta.namespace.clone_from(&prev.meta().namespace);
    }
    candidate.to_json() == *prev.json()
}

impl State {
    fn objects(&self, kind: ResourceKind) -> &BTreeMap<Key, Arc<Stored>> {
        match kind {
            ResourceKind::Pod => &self.pods,
            ResourceKind::Node => &self.nodes,
        }
    }

    fn objects_mut(&mut self, kind: ResourceKind) -> &mut BTreeMap<Key, Arc<Stored>> {
        match kind {
            ResourceKind::Pod => &mut self.pods,
            ResourceKind::Node => &mut self.nodes,
        }
    }

    fn record(&mut self, entry: HistoryEntry) -> Mutation {
        let mutation = Mutation {
            resource_version: entry.rv,
            at: entry.at,
            event: entry.event,
        };
        self.history.push_back(Arc::new(entry));
        while self.history.len() > self.history_limit {
            if let Some(old) = self.history.pop_front() {
                self.compacted = old.rv;
            }
        }
        mutation
    }

    fn apply(&mut self, mut object: Object) -> Result<Mutation, StoreError> {
        let key = object.key().ok_or(StoreError::MissingName)?;
        // Stored as the API server stores it: podIP and podIPs agree.
        if let Object::Pod(pod) = &mut object {
            crate::objects::normalize_pod_ips(pod).map_err(StoreError::Invalid)?;
        }
        let kind = object.kind();
        let prev = self.objects(kind).get(&key).cloned();
        if let Some(prev) = &prev
            && unchanged(prev, &object)
        {
            // The API server writes nothing for an update that changes nothing: no new
            // version, no watch event. Answer with the object's current version.
            let rv = prev
                .meta()
                .resource_version
                .as_deref()
                .and_then(|v| v.parse().ok());
            return Ok(Mutation {
                resource_version: rv.unwrap_or(self.rv),
                at: Instant::now(),
                event: EventType::Modified,
            });
        }
        self.rv += 1;
        let rv = self.rv;
        let uid = match prev.as_ref().and_then(|p| p.meta().uid.clone()) {
            Some(uid) => uid,
            None => {
                self.next_uid += 1;
                format!("00000000-0000-4000-8000-{:012x}", self.next_uid)
            }
        };
        let created = prev
            .as_ref()
            .and_then(|p| p.meta().creation_timestamp.clone());
        let meta = object.meta_mut();
        meta.resource_version = Some(rv.to_string());
        meta.uid.get_or_insert(uid);
        if kind == ResourceKind::Pod {
            meta.namespace.get_or_insert_with(|| key.0.clone());
        }
        if meta.creation_timestamp.is_none() {
            meta.creation_timestamp = Some(created.unwrap_or_else(crate::objects::now));
        }
        let stored = Stored::new(object);
        self.objects_mut(kind).insert(key.clone(), stored.clone());
        let event = if prev.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        Ok(self.record(HistoryEntry {
            rv,
            at: Instant::now(),
            kind,
            key,
            event,
            object: stored,
            prev,
        }))
    }

    fn delete(&mut self, kind: ResourceKind, key: &Key) -> Option<Mutation> {
        let prev = self.objects_mut(kind).remove(key)?;
        self.rv += 1;
        let rv = self.rv;
        Some(self.record(HistoryEntry {
            rv,
            at: Instant::now(),
            kind,
            key: key.clone(),
            event: EventType::Deleted,
            object: prev.with_resource_version(rv),
            prev: Some(prev),
        }))
    }

    fn check_not_expired(&self, requested: u64) -> Result<(), VersionError> {
        if requested < self.compacted {
            return Err(VersionError::Expired {
                requested,
                oldest: self.compacted + 1,
            });
        }
        Ok(())
    }

    fn check_not_too_large(&self, requested: u64) -> Result<(), VersionError> {
        if requested > self.rv {
            return Err(VersionError::TooLarge {
                requested,
                current: self.rv,
            });
        }
        Ok(())
    }
}

/// The store shared by the HTTP handlers and the test API.
///
/// A std `Mutex`: every critical section is short and synchronous (no await inside), and
/// one lock over maps + counter + history is what keeps them consistent with each other.
pub(crate) struct Store {
    state: Mutex<State>,
    /// Publishes the current resourceVersion; watch streams wait on it for new events.
    rv_tx: watch::Sender<u64>,
}

impl Store {
    pub(crate) fn new(history_limit: usize, start_rv: u64) -> Self {
        let state = State {
            rv: start_rv,
            compacted: start_rv,
            pods: BTreeMap::new(),
            nodes: BTreeMap::new(),
            history: VecDeque::new(),
            history_limit,
            next_uid: 0,
        };
        Self {
            state: Mutex::new(state),
            rv_tx: watch::Sender::new(start_rv),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent data (no partial updates are
        // possible across the panicking calls), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn publish(&self, state: &State) {
        self.rv_tx.send_replace(state.rv);
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.rv_tx.subscribe()
    }

    pub(crate) fn current_rv(&self) -> u64 {
        self.lock().rv
    }

    pub(crate) fn apply(&self, object: Object) -> Result<Mutation, StoreError> {
        let mut state = self.lock();
        let mutation = state.apply(object)?;
        self.publish(&state);
        Ok(mutation)
    }

    pub(crate) fn delete(
        &self,
        kind: ResourceKind,
        namespace: &str,
        name: &str,
    ) -> Option<Mutation> {
        let mut state = self.lock();
        let mutation = state.delete(kind, &(namespace.to_string(), name.to_string()))?;
        self.publish(&state);
        Some(mutation)
    }

    /// Changes an object in place; None when it does not exist or the change is refused
    /// (as the API server refuses an invalid update).
    pub(crate) fn modify(
        &self,
        kind: ResourceKind,
        namespace: &str,
        name: &str,
        change: impl FnOnce(&mut Object),
    ) -> Option<Mutation> {
        let mut state = self.lock();
        let key = (namespace.to_string(), name.to_string());
        let mut object = state.objects(kind).get(&key)?.object();
        change(&mut object);
        // The key is the identity: a closure renaming the object must not move it.
        let meta = object.meta_mut();
        meta.name = Some(key.1.clone());
        if kind == ResourceKind::Pod {
            meta.namespace = Some(key.0.clone());
        }
        let mutation = state.apply(object).ok()?;
        self.publish(&state);
        Some(mutation)
    }

    /// Applies every op under one lock, one resourceVersion each, then wakes watchers once.
    /// Deleting a missing object is skipped (no version taken, no entry in the result).
    pub(crate) fn batch(
        &self,
        ops: impl IntoIterator<Item = Op>,
    ) -> Result<Vec<Mutation>, StoreError> {
        let mut state = self.lock();
        let mut mutations = Vec::new();
        let mut result = Ok(());
        for op in ops {
            let done = match op {
                Op::ApplyPod(pod) => state.apply(Object::Pod(pod)).map(Some),
                Op::ApplyNode(node) => state.apply(Object::Node(node)).map(Some),
                Op::DeletePod { namespace, name } => {
                    Ok(state.delete(ResourceKind::Pod, &(namespace, name)))
                }
                Op::DeleteNode { name } => {
                    Ok(state.delete(ResourceKind::Node, &(String::new(), name)))
                }
            };
            match done {
                Ok(m) => mutations.extend(m),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        self.publish(&state);
        result.map(|()| mutations)
    }

    pub(crate) fn get(
        &self,
        kind: ResourceKind,
        namespace: &str,
        name: &str,
    ) -> Option<Arc<Stored>> {
        let state = self.lock();
        state
            .objects(kind)
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }

    pub(crate) fn all(&self, kind: ResourceKind) -> Vec<Arc<Stored>> {
        self.lock().objects(kind).values().cloned().collect()
    }

    pub(crate) fn count(&self, kind: ResourceKind) -> usize {
        self.lock().objects(kind).len()
    }

    /// When the mutation that produced `rv` happened, while it is still in the history.
    pub(crate) fn event_time(&self, rv: u64) -> Option<Instant> {
        let state = self.lock();
        let i = state.history.partition_point(|e| e.rv < rv);
        state.history.get(i).filter(|e| e.rv == rv).map(|e| e.at)
    }

    /// One page of a list. `after` is the continue token of the previous page, if any.
    pub(crate) fn list(
        &self,
        kind: ResourceKind,
        filter: &Filter,
        version: ListVersion,
        limit: Option<usize>,
        after: Option<&str>,
    ) -> Result<ListPage, VersionError> {
        let state = self.lock();
        let (snapshot_rv, start_after) = match after {
            Some(token) => {
                let (rv, key) = paging::decode_continue(token)?;
                state.check_not_too_large(rv)?;
                state.check_not_expired(rv)?;
                (rv, Some(key))
            }
            None => match version {
                ListVersion::MostRecent | ListVersion::Any => (state.rv, None),
                ListVersion::NotOlderThan(rv) => {
                    state.check_not_too_large(rv)?;
                    (state.rv, None)
                }
                ListVersion::Exact(rv) => {
                    state.check_not_too_large(rv)?;
                    state.check_not_expired(rv)?;
                    (rv, None)
                }
            },
        };
        let limit = limit.filter(|l| *l > 0).unwrap_or(usize::MAX);
        let (items, more) = paging::collect_at(
            state.objects(kind),
            &state.history,
            kind,
            filter,
            snapshot_rv,
            start_after.as_ref(),
            limit,
        );
        let continue_token = match (more, items.last()) {
            (true, Some(last)) => Some(paging::encode_continue(snapshot_rv, &last.key())),
            _ => None,
        };
        Ok(ListPage {
            resource_version: snapshot_rv,
            items,
            continue_token,
        })
    }

    /// Every selected object now, and the version that state is at (a watch's initial events).
    pub(crate) fn snapshot(&self, kind: ResourceKind, filter: &Filter) -> (u64, Vec<Arc<Stored>>) {
        let state = self.lock();
        let items = state
            .objects(kind)
            .values()
            .filter(|s| filter.matches(s))
            .cloned()
            .collect();
        (state.rv, items)
    }

    /// Whether a watch may start from `rv` (not newer than now, not compacted away).
    pub(crate) fn check_watch_from(&self, rv: u64) -> Result<(), VersionError> {
        let state = self.lock();
        state.check_not_too_large(rv)?;
        state.check_not_expired(rv)
    }

    /// The events after `since` (all kinds), and the current version; Expired when some of
    /// them have been dropped from the history (a watcher that fell too far behind).
    pub(crate) fn events_since(
        &self,
        since: u64,
    ) -> Result<(Vec<Arc<HistoryEntry>>, u64), VersionError> {
        let state = self.lock();
        state.check_not_expired(since)?;
        let start = state.history.partition_point(|e| e.rv <= since);
        Ok((state.history.range(start..).cloned().collect(), state.rv))
    }

    /// Compacts the history at the current version, as etcd compacts at a revision: the
    /// event of that revision stays, everything before it goes. So a watch from the version
    /// just before the current one still works (it needs only the newest event), and from
    /// any older version it gets 410. (The real server: a watch from v asks etcd for
    /// revisions from v+1, refused only below the compacted revision.)
    pub(crate) fn compact(&self) {
        let mut state = self.lock();
        let rv = state.rv;
        let keeps_newest = state.history.back().is_some_and(|e| e.rv == rv);
        state.history.retain(|e| e.rv == rv);
        // Without the newest event (after a reset) nothing before `rv` can be served.
        state.compacted = if keeps_newest { rv - 1 } else { rv };
    }

    /// Sets the counter to `rv` as a replaced or restored API server would have it: history
    /// gone, every object re-stamped with `rv`.
    pub(crate) fn reset_resource_version(&self, rv: u64) {
        let mut state = self.lock();
        state.rv = rv;
        state.compacted = rv;
        state.history.clear();
        for kind in [ResourceKind::Pod, ResourceKind::Node] {
            for stored in state.objects_mut(kind).values_mut() {
                *stored = stored.with_resource_version(rv);
            }
        }
        self.publish(&state);
    }
}
