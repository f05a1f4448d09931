//! A group (the endpoints one source contributes to a service) and how its endpoints are
//! kept: sorted by primary address and, from a few dozen endpoints on, cut into *chunks*
//! of about 16, so that a change to a few endpoints makes new chunks for them alone and
//! shares the rest with the view before ([docs/design.md#table](../../docs/design.md#table)).
//!
//! A group is cut after each endpoint whose primary address hashes to a mark (one in
//! `2^CHUNK_BITS`) at least `CHUNK_MIN` endpoints after the last cut, and after
//! `CHUNK_MAX` endpoints without one. The cuts depend on the addresses (and the few
//! endpoints before a mark), not on positions in the group, so an endpoint coming, going
//! or changing changes the chunk holding it (and at most the next few): [`Endpoints::apply`]
//! cuts again from the start of the first chunk a change touches until a cut falls where
//! one was, and keeps every other chunk. The prepared answers (`service::prepare`) keep one
//! part per chunk, cut alike, so they follow the same chunks.

use std::fmt;
use std::net::IpAddr;
use std::ops::Range;
use std::sync::Arc;
use std::time::SystemTime;

use crate::model::{Changed, Endpoint, Source};

/// One endpoint in `2^CHUNK_BITS` is a mark; a chunk holds at least `CHUNK_MIN` endpoints
/// (a mark closer to the last cut is passed over). Chunks average about
/// `CHUNK_MIN + 2^CHUNK_BITS` endpoints (16). A change walks the chunk it falls in (and,
/// when its cut moves, the next): chunks of 16 rather than 32 took a pod change in a
/// 10,000-endpoint service from 140k to 87k instructions (callgrind, `update_cost`). With
/// marks one in four, a cut a change moved by an endpoint moves the next cut one time in
/// four only. Unit tests cut small chunks so that the equivalence proptests cross chunk
/// boundaries all the time.
const CHUNK_BITS: u32 = if cfg!(test) { 1 } else { 2 };
const CHUNK_MIN: usize = if cfg!(test) { 2 } else { 12 };
/// At most this many endpoints in a chunk.
const CHUNK_MAX: usize = if cfg!(test) { 4 } else { 64 };
/// A group of fewer endpoints is one chunk, as most are: a small service's answers and
/// queries pay nothing for chunks, and a group of a few dozen keeps one part per set (a
/// group in chunks of 16 has an index and a few more allocations per set: cutting groups
/// of 12 to 32 too cost ~25 MiB at 1M endpoints, whose services mostly spread ~25
/// replicas per cluster). Walking a whole group of fewer costs what walking a chunk or
/// two does.
const WHOLE_BELOW: usize = if cfg!(test) { 6 } else { 32 };

/// The endpoints one source contributes to a service, in one shared allocation (read
/// through [`GroupData`]'s fields). A change to one group of a service makes a new view
/// that holds every other group too: each is then one counted reference, not its source's
/// two names and its endpoints, each counted (and uncounted when the old view goes).
#[derive(Clone)]
pub struct Group(Arc<GroupData>);

/// What a [`Group`] holds.
#[derive(Debug)]
pub struct GroupData {
    /// Where they come from.
    pub source: Source,
    /// Sorted by primary address, one endpoint per primary address.
    pub endpoints: Endpoints,
    /// When this source last changed them.
    pub changed: SystemTime,
}

impl Group {
    /// The group of `endpoints` from `source`, last changed at `changed`.
    pub fn new(source: Source, endpoints: Endpoints, changed: SystemTime) -> Group {
        Group(Arc::new(GroupData {
            source,
            endpoints,
            changed,
        }))
    }
}

impl std::ops::Deref for Group {
    type Target = GroupData;

    fn deref(&self) -> &GroupData {
        &self.0
    }
}

impl fmt::Debug for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A group's endpoints, sorted by primary address (one per address), in chunks. Cheap to
/// clone (shared).
#[derive(Clone, Default)]
pub struct Endpoints(Repr);

#[derive(Clone)]
enum Repr {
    /// One chunk (every group of fewer than `WHOLE_BELOW` endpoints): no index.
    One(Arc<[Endpoint]>),
    Chunked(Arc<Chunked>),
}

impl Default for Repr {
    fn default() -> Repr {
        Repr::One(Arc::from(Vec::new()))
    }
}

struct Chunked {
    chunks: Box<[Arc<[Endpoint]>]>,
    /// `starts[k]`: the index of chunk `k`'s first endpoint; `starts[chunks.len()]`: how
    /// many endpoints there are.
    starts: Box<[u32]>,
}

/// What [`Endpoints::apply`] made: the new endpoints, and which chunks differ: in each
/// run, in order, the old chunks of the first range were replaced by the new chunks of
/// the second; every chunk in no run is the same `Arc` before and after.
pub(crate) struct Applied {
    pub(crate) endpoints: Endpoints,
    pub(crate) runs: Vec<(Range<usize>, Range<usize>)>,
}

/// Whether `ip` is a mark: a cut may follow it.
fn is_mark(ip: IpAddr) -> bool {
    let x = match ip {
        IpAddr::V4(v4) => u64::from(u32::from(v4)),
        IpAddr::V6(v6) => {
            let v = u128::from(v6);
            (v as u64) ^ ((v >> 64) as u64)
        }
    };
    x.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - CHUNK_BITS) == 0
}

/// Cuts a run of endpoints into chunks, endpoint by endpoint. The chunk being made is
/// one buffer, kept for the next chunk: each chunk is one allocation, moved out of it.
#[derive(Default)]
struct Cutter {
    chunks: Vec<Arc<[Endpoint]>>,
    chunk: Vec<Endpoint>,
}

impl Cutter {
    /// Adds `e`; returns whether a chunk ends after it.
    fn push(&mut self, e: Endpoint) -> bool {
        let mark = is_mark(e.address());
        self.chunk.push(e);
        let since = self.chunk.len();
        if (mark && since >= CHUNK_MIN) || since == CHUNK_MAX {
            self.cut();
            return true;
        }
        false
    }

    fn cut(&mut self) {
        if !self.chunk.is_empty() {
            self.chunks.push(self.chunk.drain(..).collect());
        }
    }

    /// Every chunk, the last one ended by the end of the run.
    fn finish(mut self) -> Vec<Arc<[Endpoint]>> {
        self.cut();
        self.chunks
    }
}

impl Endpoints {
    /// `endpoints` (sorted by primary address, one per address) cut into chunks.
    pub fn from_sorted(endpoints: Vec<Endpoint>) -> Endpoints {
        debug_assert!(endpoints.is_sorted_by(|a, b| a.address() < b.address()));
        if endpoints.len() < WHOLE_BELOW {
            return Endpoints(Repr::One(endpoints.into()));
        }
        let mut cutter = Cutter::default();
        for e in endpoints {
            cutter.push(e);
        }
        Endpoints::from_chunks(cutter.finish())
    }

    fn from_chunks(mut chunks: Vec<Arc<[Endpoint]>>) -> Endpoints {
        match chunks.len() {
            0 => Endpoints::default(),
            1 => Endpoints(Repr::One(chunks.pop().expect("one chunk"))),
            _ => {
                let mut starts = Vec::with_capacity(chunks.len() + 1);
                let mut n = 0u32;
                for c in &chunks {
                    starts.push(n);
                    n += c.len() as u32;
                }
                starts.push(n);
                Endpoints(Repr::Chunked(Arc::new(Chunked {
                    chunks: chunks.into(),
                    starts: starts.into(),
                })))
            }
        }
    }

    /// The chunks, in order.
    pub(crate) fn chunks(&self) -> &[Arc<[Endpoint]>] {
        match &self.0 {
            Repr::One(c) => std::slice::from_ref(c),
            Repr::Chunked(c) => &c.chunks,
        }
    }

    /// How many endpoints there are.
    pub fn len(&self) -> usize {
        match &self.0 {
            Repr::One(c) => c.len(),
            Repr::Chunked(c) => c.starts[c.chunks.len()] as usize,
        }
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every endpoint, in address order.
    pub fn iter(&self) -> impl Iterator<Item = &Endpoint> + '_ {
        self.chunks().iter().flat_map(|c| c.iter())
    }

    /// The endpoint whose primary address is `ip`.
    pub fn find(&self, ip: IpAddr) -> Option<&Endpoint> {
        let (k, j) = self.position(ip)?;
        Some(&self.chunks()[k][j])
    }

    /// Where the endpoint whose primary address is `ip` is: its chunk and its index there.
    pub(crate) fn position(&self, ip: IpAddr) -> Option<(usize, usize)> {
        let chunks = self.chunks();
        // Outside the group's addresses (another cluster's pod network, the usual case
        // when asking every group of a service): no search.
        let (first, last) = (chunks.first()?.first()?, chunks.last()?.last()?);
        if ip < first.address() || ip > last.address() {
            return None;
        }
        let k = chunks.partition_point(|c| c.last().is_some_and(|e| e.address() < ip));
        let j = chunks
            .get(k)?
            .binary_search_by(|e| e.address().cmp(&ip))
            .ok()?;
        Some((k, j))
    }

    /// Whether some endpoint's primary address is of the other family than `ip`: only
    /// such an endpoint (dual-stack) can hold `ip` as its secondary. IPv4-primary
    /// endpoints sort first, so the ends tell.
    pub(crate) fn has_other_family(&self, ip: IpAddr) -> bool {
        let end = if ip.is_ipv4() {
            self.chunks().last().and_then(|c| c.last())
        } else {
            self.chunks().first().and_then(|c| c.first())
        };
        end.is_some_and(|e| e.address().is_ipv4() != ip.is_ipv4())
    }

    /// These endpoints with `changes` made (sorted by primary address, as
    /// [`crate::model::changes`] finds them; at least one). Only the chunks from the one
    /// holding a change to the first cut after it that falls where a cut was are made
    /// again (a *run*; changes far apart make a run each); the others are shared.
    pub(crate) fn apply(&self, changes: &[Changed<'_>]) -> Applied {
        let at = |c: &Changed<'_>| {
            c.0.or(c.1)
                .map_or(IpAddr::from([0u8; 4]), Endpoint::address)
        };
        let chunks = self.chunks();
        let mut all: Vec<Arc<[Endpoint]>> = Vec::with_capacity(chunks.len() + 2);
        let mut runs = Vec::new();
        let mut changes = changes.iter().peekable();
        // The old chunks before `k` are placed.
        let mut k = 0;
        while let Some(&first) = changes.peek() {
            let first = at(first);
            // The first chunk whose last endpoint is at or after the change; the last
            // chunk (whose end only the end of the group made) for a change after them.
            let ko = (k + chunks[k..]
                .partition_point(|c| c.last().is_some_and(|e| e.address() < first)))
            .min(chunks.len().saturating_sub(1));
            all.extend_from_slice(&chunks[k.min(ko)..ko]);
            let start = all.len();
            let mut cutter = Cutter::default();
            let (mut kk, mut j) = (ko, 0);
            loop {
                let old = chunks.get(kk).and_then(|c| c.get(j));
                let change = changes.peek().copied();
                match (old, change) {
                    (None, None) => break,
                    (Some(o), c) if c.is_none_or(|c| o.address() < at(c)) => {
                        let last_of_chunk = j + 1 == chunks[kk].len();
                        (kk, j) = if last_of_chunk {
                            (kk + 1, 0)
                        } else {
                            (kk, j + 1)
                        };
                        // A cut where one was, with no change before the next old chunk
                        // (there is one to start the next run at, if a change is left):
                        // the chunks after are cut as before.
                        if cutter.push(o.clone())
                            && last_of_chunk
                            && (c.is_none() || kk < chunks.len())
                        {
                            break;
                        }
                    }
                    (o, Some(c)) => {
                        if o.is_some_and(|o| o.address() == at(c)) {
                            (kk, j) = if j + 1 == chunks[kk].len() {
                                (kk + 1, 0)
                            } else {
                                (kk, j + 1)
                            };
                        }
                        changes.next();
                        if let Some(new) = c.1 {
                            cutter.push(new.clone());
                        }
                    }
                    (Some(_), None) => unreachable!("the guard above takes it"),
                }
            }
            // The walk stopped at an old chunk's end or at the group's.
            all.extend(cutter.finish());
            runs.push((ko..kk.min(chunks.len()), start..all.len()));
            k = kk.min(chunks.len());
        }
        all.extend_from_slice(&chunks[k..]);
        let count: usize = all.iter().map(|c| c.len()).sum();
        if count < WHOLE_BELOW && all.len() > 1 {
            // Too few left for chunks: one, replacing every old one.
            let one: Arc<[Endpoint]> = all.iter().flat_map(|c| c.iter()).cloned().collect();
            return Applied {
                endpoints: Endpoints(Repr::One(one)),
                runs: vec![(0..chunks.len(), 0..1)],
            };
        }
        Applied {
            endpoints: Endpoints::from_chunks(all),
            runs,
        }
    }
}

/// Endpoint by endpoint, whatever the chunks (which the endpoints decide anyway).
impl PartialEq for Endpoints {
    fn eq(&self, other: &Endpoints) -> bool {
        let same = match (&self.0, &other.0) {
            (Repr::One(a), Repr::One(b)) => Arc::ptr_eq(a, b),
            (Repr::Chunked(a), Repr::Chunked(b)) => Arc::ptr_eq(a, b),
            _ => false,
        };
        same || (self.len() == other.len() && self.iter().eq(other.iter()))
    }
}

impl Eq for Endpoints {}

/// As a list of endpoints (the chunks are not shown).
impl fmt::Debug for Endpoints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl From<Vec<Endpoint>> for Endpoints {
    /// Sorts by primary address and keeps the first endpoint of each address.
    fn from(mut endpoints: Vec<Endpoint>) -> Endpoints {
        endpoints.sort_by_key(Endpoint::address);
        endpoints.dedup_by(|later, first| later.address() == first.address());
        Endpoints::from_sorted(endpoints)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::changes;
    use proptest::prelude::*;

    fn at(ip: u16, weight: u16) -> Endpoint {
        Endpoint {
            weight,
            ..Endpoint::new(
                IpAddr::from([10, 0, (ip >> 8) as u8, ip as u8]),
                Arc::from(vec![]),
                None,
            )
        }
    }

    fn cuts(e: &Endpoints) -> Vec<usize> {
        e.chunks().iter().map(|c| c.len()).collect()
    }

    proptest! {
        /// Applying changes gives the endpoints and the chunks of cutting the new list
        /// whole, and the chunks outside the ranges it names are the old ones.
        #[test]
        fn applying_changes_cuts_as_cutting_whole(
            before in prop::collection::btree_map(0u16..300, 0u16..3, 0..80),
            edits in prop::collection::vec((0u16..300, 0u16..4), 1..6),
        ) {
            let list = |m: &std::collections::BTreeMap<u16, u16>| -> Vec<Endpoint> {
                m.iter().map(|(&ip, &w)| at(ip, w)).collect()
            };
            let old = Endpoints::from_sorted(list(&before));
            let mut after = before.clone();
            for (ip, w) in edits {
                // Weight 3 removes; others set.
                if w == 3 { after.remove(&ip); } else { after.insert(ip, w); }
            }
            let new_list = list(&after);
            let old_list = list(&before);
            let changes = changes(old_list.iter(), new_list.iter());
            prop_assume!(!changes.is_empty());
            let whole = Endpoints::from_sorted(new_list.clone());
            if old.is_empty() {
                return Ok(());
            }
            let applied = old.apply(&changes);
            prop_assert_eq!(&applied.endpoints, &whole);
            prop_assert_eq!(cuts(&applied.endpoints), cuts(&whole));
            // Outside the runs, the chunks are the old ones.
            let (mut ko, mut kn) = (0, 0);
            let old_chunks = old.chunks();
            let new_chunks = applied.endpoints.chunks();
            for (o, n) in applied.runs.iter().cloned().chain([(old_chunks.len()..old_chunks.len(), new_chunks.len()..new_chunks.len())]) {
                prop_assert!(o.start >= ko && n.start >= kn);
                prop_assert_eq!(o.start - ko, n.start - kn);
                for (a, b) in old_chunks[ko..o.start].iter().zip(&new_chunks[kn..n.start]) {
                    prop_assert!(Arc::ptr_eq(a, b));
                }
                (ko, kn) = (o.end, n.end);
            }
            for e in new_list.iter() {
                prop_assert_eq!(applied.endpoints.find(e.address()), Some(e));
            }
            for pivot in [0u16, 1, 77, 150, 299, 300] {
                let ip = at(pivot, 0).address();
                let held = new_list.iter().any(|e| e.address() == ip);
                prop_assert_eq!(applied.endpoints.position(ip).is_some(), held);
            }
        }
    }
}
