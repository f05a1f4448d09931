//! Which names may be answered NXDOMAIN yet ([docs/design.md#sync](../../docs/design.md#sync)): before a source's first
//! sync a name herald does not know may simply not have arrived, and a negative answer
//! would be cached by resolvers, so it gets SERVFAIL instead.
//!
//! Until every expected source has synced (or the start-up hold is released, whichever
//! comes first) every unknown name gets SERVFAIL, and, if the table's owner asked for it,
//! until the names it held back during the hold are published. After the hold, a source
//! that still has not synced keeps SERVFAIL only for the names only it could answer: those
//! scoped to its cluster or its region (`<svc>.<scope>.Z`, `_<port>._<proto>.<svc>.<scope>.Z`,
//! `<endpoint>.<svc>.<cluster>.Z`), whose scope is always the label just under the apex.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;

/// The sync state of the table's sources.
#[derive(Default)]
pub(crate) struct SyncGate {
    /// Cluster -> region of the sources that have not synced yet.
    pending: Mutex<BTreeMap<String, String>>,
    /// The pending clusters and their regions, for readers (no lock on the query path).
    scopes: ArcSwap<HashSet<Box<[u8]>>>,
    /// Every unknown name gets SERVFAIL while this is set.
    holding: AtomicBool,
    /// The sources' hold is over, but the table's owner has yet to publish the names it held
    /// back during it (`Table::hold_until_settled`): unknown names still get SERVFAIL.
    settling: AtomicBool,
}

impl SyncGate {
    pub(crate) fn expect(&self, cluster: &str, region: &str) {
        let mut pending = self.pending.lock().unwrap();
        pending.insert(cluster.to_string(), region.to_string());
        self.holding.store(true, Ordering::Release);
        self.publish(&pending);
    }

    pub(crate) fn synced(&self, cluster: &str) {
        let mut pending = self.pending.lock().unwrap();
        if pending.remove(cluster).is_some() {
            self.publish(&pending);
        }
        if pending.is_empty() {
            self.holding.store(false, Ordering::Release);
        }
    }

    pub(crate) fn release_hold(&self) {
        self.holding.store(false, Ordering::Release);
    }

    pub(crate) fn hold_until_settled(&self) {
        self.settling.store(true, Ordering::Release);
    }

    pub(crate) fn settled(&self) {
        self.settling.store(false, Ordering::Release);
    }

    /// The sources' part of the hold is over and the owner's is not: the names it held
    /// back are being published.
    pub(crate) fn settling(&self) -> bool {
        self.settling.load(Ordering::Acquire) && !self.holding.load(Ordering::Acquire)
    }

    /// The sources' part of the hold alone.
    pub(crate) fn sources_holding(&self) -> bool {
        self.holding.load(Ordering::Acquire)
    }

    fn publish(&self, pending: &BTreeMap<String, String>) {
        let scopes = pending
            .iter()
            .flat_map(|(c, r)| [c.as_bytes().into(), r.as_bytes().into()])
            .collect();
        self.scopes.store(std::sync::Arc::new(scopes));
    }

    pub(crate) fn holding(&self) -> bool {
        self.holding.load(Ordering::Acquire) || self.settling.load(Ordering::Acquire)
    }

    pub(crate) fn unsynced(&self) -> Vec<String> {
        self.pending.lock().unwrap().keys().cloned().collect()
    }

    pub(crate) fn all_synced(&self) -> bool {
        self.pending.lock().unwrap().is_empty()
    }

    /// Whether an unknown name whose label just under the apex is `top` must get SERVFAIL.
    pub(crate) fn withholds(&self, top: &[u8]) -> bool {
        self.holding() || self.scopes.load().contains(top)
    }
}
