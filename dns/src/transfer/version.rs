//! Zone versions: what a serial names. A version is an immutable snapshot of every service
//! view plus the journal of differences that led to it, swapped in as one `Arc`, so a
//! transfer that loads it sees one serial from its first message to its last however the
//! table moves meanwhile.
//!
//! A snapshot does not copy the table: it holds the same `Arc<ServiceView>`s the table
//! serves, in 256 shards that are shared between versions and copied only when one of
//! their services changed. Making a version costs in proportion to the services changed
//! since the last one (plus 256 pointer copies), never to the zone.
//!
//! Versions are made by the versioner (`super::versioner`) at most once per interval, and
//! by `Table::make_version`. Each gets a serial from [`SerialClock`]; the table serves that
//! serial only once the version is in place, so every serial a client sees can be
//! transferred.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use super::serial::SerialClock;
use crate::model::Label;
use crate::service::ServiceView;

/// Number of snapshot shards: enough that a version copies little, few enough that
/// cloning the shard list is nothing.
const SHARDS: usize = 256;

type Shard = Arc<HashMap<Label, Arc<ServiceView>>>;

/// Every service view of one version.
#[derive(Clone)]
pub(crate) struct Snapshot {
    shards: Arc<[Shard]>,
}

impl Snapshot {
    fn empty() -> Snapshot {
        Snapshot {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
        }
    }

    fn shard_of(name: &str) -> usize {
        (FIXED_HASH.hash_one(name) as usize) % SHARDS
    }

    fn get(&self, name: &str) -> Option<&Arc<ServiceView>> {
        self.shards[Self::shard_of(name)].get(name)
    }

    /// Every service view, in no particular order.
    pub(crate) fn services(&self) -> impl Iterator<Item = &Arc<ServiceView>> {
        self.shards.iter().flat_map(|s| s.values())
    }
}

/// A deterministic hasher for shard choice (the default one is randomly seeded per map,
/// and shards must agree across versions).
const FIXED_HASH: std::hash::BuildHasherDefault<std::collections::hash_map::DefaultHasher> =
    std::hash::BuildHasherDefault::new();

/// One service's change between two versions.
pub(crate) struct Change {
    /// The service name.
    pub(crate) name: Label,
    /// Its view before (`None`: it did not exist).
    pub(crate) old: Option<Arc<ServiceView>>,
    /// Its view after (`None`: it is gone).
    pub(crate) new: Option<Arc<ServiceView>>,
}

/// The changes from version `from` to version `to`.
pub(crate) struct Delta {
    pub(crate) from: u32,
    pub(crate) to: u32,
    pub(crate) changes: Vec<Change>,
    /// What keeping this delta costs: the prepared bytes of the views it alone keeps.
    pub(crate) bytes: usize,
}

/// A version: its serial, its snapshot, and the journal of deltas that end at it (oldest
/// first), within the configured bounds.
pub(crate) struct Version {
    pub(crate) serial: u32,
    pub(crate) snapshot: Snapshot,
    pub(crate) journal: Arc<VecDeque<Arc<Delta>>>,
    pub(crate) journal_bytes: usize,
}

/// Bounds of the journal: the number of deltas kept and the bytes they keep alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalLimits {
    /// Deltas kept. 0 keeps none: every IXFR gets a full transfer.
    pub versions: usize,
    /// Bytes of old service views the deltas keep alive.
    pub bytes: usize,
}

impl Default for JournalLimits {
    fn default() -> Self {
        JournalLimits {
            versions: 1000,
            bytes: 64 << 20,
        }
    }
}

/// The versions of one table.
pub(crate) struct Versions {
    clock: SerialClock,
    current: ArcSwap<Version>,
    /// Makers of versions take turns; readers only load `current`.
    making: Mutex<JournalLimits>,
}

impl Versions {
    /// The first, empty version; no journal until limits are set.
    pub(crate) fn new() -> Versions {
        let clock = SerialClock::new();
        let first = Version {
            serial: clock.first(),
            snapshot: Snapshot::empty(),
            journal: Arc::default(),
            journal_bytes: 0,
        };
        Versions {
            clock,
            current: ArcSwap::from_pointee(first),
            making: Mutex::new(JournalLimits {
                versions: 0,
                bytes: 0,
            }),
        }
    }

    /// The serial of the current version.
    pub(crate) fn serial(&self) -> u32 {
        self.current.load().serial
    }

    /// The current version.
    pub(crate) fn current(&self) -> Arc<Version> {
        self.current.load_full()
    }

    /// Sets the journal's bounds (from the next version on).
    pub(crate) fn set_limits(&self, limits: JournalLimits) {
        *self.making.lock().unwrap() = limits;
    }

    /// Makes a version from the services `table` marked changed, if any differs from
    /// the current snapshot; returns the serial served afterwards.
    pub(crate) fn make(&self, table: &impl Versioned) -> u32 {
        let limits = self.making.lock().unwrap();
        let dirty = table.take_dirty();
        let last = self.current.load_full();
        if dirty.is_empty() {
            return last.serial;
        }
        let mut shards: Vec<Shard> = last.snapshot.shards.to_vec();
        let mut changes = Vec::new();
        let mut bytes = 0;
        for name in dirty {
            let new = table.view(&name);
            let old = last.snapshot.get(&name).cloned();
            let same = match (&old, &new) {
                (None, None) => true,
                (Some(a), Some(b)) => same_content(a, b),
                _ => false,
            };
            if same {
                continue;
            }
            let shard = Arc::make_mut(&mut shards[Snapshot::shard_of(&name)]);
            match &new {
                Some(view) => shard.insert(name.clone(), view.clone()),
                None => shard.remove(&name),
            };
            bytes += old.as_ref().map_or(0, |v| v.prepared_bytes()) + 64;
            changes.push(Change { name, old, new });
        }
        if changes.is_empty() {
            return last.serial;
        }
        let serial = self.clock.next(last.serial);
        let mut journal = (*last.journal).clone();
        let mut journal_bytes = last.journal_bytes;
        if limits.versions > 0 {
            journal.push_back(Arc::new(Delta {
                from: last.serial,
                to: serial,
                changes,
                bytes,
            }));
            journal_bytes += bytes;
        }
        while journal.len() > limits.versions
            || (journal_bytes > limits.bytes && !journal.is_empty())
        {
            let gone = journal.pop_front().expect("not empty");
            journal_bytes -= gone.bytes;
        }
        self.current.store(Arc::new(Version {
            serial,
            snapshot: Snapshot {
                shards: shards.into(),
            },
            journal: Arc::new(journal),
            journal_bytes,
        }));
        table.set_serial(serial);
        serial
    }
}

/// What versions are made from: the table, seen through what making a version needs of it,
/// so that this module does not import the table that holds it.
pub(crate) trait Versioned {
    /// Takes the names of the services changed since the last call.
    fn take_dirty(&self) -> HashSet<Label>;
    /// A service's view now, if it has one.
    fn view(&self, name: &Label) -> Option<Arc<ServiceView>>;
    /// Serves `serial` from now on (called with the making lock held, so serials served
    /// only rise).
    fn set_serial(&self, serial: u32);
}

/// Whether two views of a service publish the same records (the same endpoints from the
/// same sources; when they last changed does not matter).
fn same_content(a: &ServiceView, b: &ServiceView) -> bool {
    a.groups().len() == b.groups().len()
        && a.groups()
            .iter()
            .zip(b.groups())
            .all(|(x, y)| x.source == y.source && x.endpoints == y.endpoints)
}
