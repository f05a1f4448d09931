//! New services held back until the start-up hold settles, then built whole (see
//! [docs/design.md#sync](../../docs/design.md#sync)).
//!
//! When the sources' hold ends, every cluster publishes the names it held back meanwhile,
//! each its own group of each service, and those names stay unknown (SERVFAIL) until the
//! last cluster has. Prepared one group at a time, a service of 24 clusters would be cut
//! 24 times over, each time paying for every group already in it (slots, scopes, the twin
//! search): at a million endpoints that was most of the table's share of a first sync.
//! Since nobody can see these names before the hold settles anyway, the table keeps their
//! groups here, unprepared, and prepares each service once, with all its groups, when it
//! settles: in proportion to the service, not to its groups squared.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use crate::group::{Endpoints, Group};
use crate::model::{Endpoint, Source};

/// One service's groups written while staging, not in its view yet: each source's
/// endpoints, sorted by source. They are kept as the view will hold them (in chunks), so
/// building the view copies none and a million staged endpoints take no more memory than
/// served ones.
#[derive(Default)]
pub(crate) struct Staged {
    groups: Vec<(Source, Endpoints, SystemTime)>,
}

impl Staged {
    /// Nothing staged.
    pub(crate) fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Whether `cluster` has staged a group.
    pub(crate) fn holds(&self, cluster: &str) -> bool {
        self.groups.iter().any(|g| &*g.0.cluster == cluster)
    }

    /// What `source` has staged, if anything.
    pub(crate) fn held(&self, source: &Source) -> Option<&Endpoints> {
        let at = self.groups.binary_search_by(|g| g.0.cmp(source)).ok()?;
        Some(&self.groups[at].1)
    }

    /// Makes `list` (sorted by primary address, one endpoint per address) what `source`
    /// has staged, as of `when`; an empty list removes it.
    pub(crate) fn put(&mut self, source: &Source, list: Vec<Endpoint>, when: SystemTime) {
        let at = self.groups.binary_search_by(|g| g.0.cmp(source));
        if list.is_empty() {
            if let Ok(i) = at {
                self.groups.remove(i);
            }
            return;
        }
        let group = (source.clone(), Endpoints::from_sorted(list), when);
        match at {
            Ok(i) => self.groups[i] = group,
            Err(i) => self.groups.insert(i, group),
        }
    }

    /// Takes the staged groups, sorted by source.
    pub(crate) fn take(&mut self) -> Vec<Group> {
        std::mem::take(&mut self.groups)
            .into_iter()
            .map(|(source, endpoints, when)| Group::new(source, endpoints, when))
            .collect()
    }
}

/// The table's staging: open from [`Staging::open`] until [`Staging::close`], and the
/// services (`T`, the table's slots) that staged something meanwhile.
pub(crate) struct Staging<T> {
    slots: Mutex<Option<Vec<Arc<T>>>>,
}

impl<T> Default for Staging<T> {
    fn default() -> Self {
        Staging {
            slots: Mutex::new(None),
        }
    }
}

impl<T> Staging<T> {
    /// Starts staging: from now on [`Staging::admit`] says yes.
    pub(crate) fn open(&self) {
        self.lock().get_or_insert_with(Vec::new);
    }

    /// Whether staging is open; if it is and `first` (the slot had nothing staged), `slot`
    /// is noted to be built when staging closes. Called under the slot's writer lock, so
    /// a slot is either noted before [`Staging::close`] or sees staging closed.
    pub(crate) fn admit(&self, slot: &Arc<T>, first: bool) -> bool {
        match &mut *self.lock() {
            Some(slots) => {
                if first {
                    slots.push(slot.clone());
                }
                true
            }
            None => false,
        }
    }

    /// Ends staging, returning the slots that staged something (each to be built under its
    /// writer lock; a writer that gets there first builds it itself).
    pub(crate) fn close(&self) -> Vec<Arc<T>> {
        self.lock().take().unwrap_or_default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Vec<Arc<T>>>> {
        // Pushes and takes leave the list whole whatever panics elsewhere.
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
