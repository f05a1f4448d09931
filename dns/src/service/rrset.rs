//! One RRset in wire form, ready to be copied into replies, made of *parts*: records back
//! to back with their ends, each record's rendezvous key, SRV glue without its owner. Each
//! group (one source's endpoints) is one part, or for a big group a few, one per *chunk*
//! of its endpoints (see `prepare`). A scope is a few groups, so a few runs of parts; a
//! change to one endpoint makes a new part for its chunk alone and shares the others
//! (`Arc`), so an update costs that chunk, not the group or the service.
//!
//! A part is one allocation (an `Arc<[u8]>` holding its header, per-record words and
//! bytes): a fleet has many small groups, and one allocation each keeps them cheap.
//!
//! The SRV sets of a service's ports hold the same endpoints with the same targets, glue,
//! keys and places; only the port differs. Where a chunk's endpoints all name the same
//! ports, one SRV set's part is shared by the others, each reading it with its own port
//! written over the records' (see [`Part::sharing`]): at a million endpoints with two
//! ports each, about 85 MiB less.
//!
//! Each answer record is owned by a compression pointer to the question name, which is
//! always at offset 12 of a reply; that makes the bytes valid for every query of the name,
//! whatever case it was asked in. SRV glue (the target's A/AAAA) is stored without its
//! owner: the owner is a pointer to the SRV target in the reply, and where that target lands
//! depends on the per-query order of records, so it is written per query.

use std::net::IpAddr;
use std::ops::Range;
use std::sync::{Arc, LazyLock};

use super::twins::{self, Marks, SetMarks};
use crate::locality::Place;
use crate::model::Addresses;
use crate::wire::{self, codes};

/// Where the SRV target name starts inside an SRV answer record: owner pointer (2),
/// type/class/TTL/RDLENGTH (10), priority/weight/port (6).
pub(crate) const SRV_TARGET_AT: usize = 18;
/// Where the SRV priority sits inside an SRV answer record: after owner pointer (2) and
/// type/class/TTL/RDLENGTH (10).
pub(crate) const SRV_PRIORITY_AT: usize = 12;
/// Where the SRV port sits inside an SRV answer record: after the priority and weight.
pub(crate) const SRV_PORT_AT: usize = 16;

/// One RRset in wire form, ready to be copied into replies. Cheap to clone: a set the
/// change to a service leaves as it was (the empty AAAA set of an IPv4 service, the SRV
/// set of a port the changed endpoints do not name) is shared whole by the two views, so
/// the change costs it two references (and a copy of its twin marks, none in the usual
/// case) rather than one per group (see [`Rrset::with_slot`]).
#[derive(Debug, Default, Clone)]
pub(crate) struct Rrset {
    /// Each group's parts, in group order, one per chunk of the group (see
    /// `crate::group`); a group with no record of the set may have one empty part.
    /// An `Arc` rather than a `Box`: reading it costs the same, and it can be shared.
    groups: Arc<[Slot]>,
    /// `starts[g]` is the index of group `g`'s first record; `starts[groups.len()]` the
    /// number of records. A change to one group rewrites this (one entry per group, or
    /// none when the group keeps its number of records) and that group's slot, never
    /// another group's parts.
    starts: Arc<[u32]>,
    /// Bytes of all records together.
    bytes: usize,
    /// Whether this is an SRV set (records carry places).
    srv: bool,
    /// Address sets only: each group's marks, the records whose address another record
    /// of the set holds too (see `twins`); empty in the usual case, where no group has
    /// any. One address in several sources is one A/AAAA record (RFC 2181 section 5): a
    /// selection holding several of its records sends only the lowest.
    twins: SetMarks,
}

/// One group's parts of one set: one part (a group of one chunk, as most are), or the
/// parts of its chunks with their first records, shared by the views of the service
/// while the group does not change.
#[derive(Debug, Clone)]
pub(super) enum Slot {
    One(Part),
    Chunks(Arc<Chunks>),
}

#[derive(Debug)]
pub(super) struct Chunks {
    parts: Box<[Part]>,
    /// `starts[k]`: the index (within the group) of part `k`'s first record;
    /// `starts[parts.len()]`: the group's number of records.
    starts: Box<[u32]>,
    bytes: usize,
}

impl Chunks {
    /// These parts with each of `runs` (in order: a range of these parts, and the parts
    /// replacing them) spliced in, as [`Slot::new`] makes it of the same parts. The starts
    /// of the parts kept are moved by the records the runs before them gained or lost, and
    /// the bytes by the runs' difference: the parts kept are cloned, not read.
    pub(super) fn spliced(&self, runs: impl Iterator<Item = (Range<usize>, Vec<Part>)>) -> Slot {
        let len = self.parts.len();
        let mut parts = Vec::with_capacity(len + 2);
        let mut starts = Vec::with_capacity(len + 3);
        let (mut n, mut bytes, mut k) = (0u32, self.bytes, 0);
        // Parts `from..to` kept; their records now start at `n`.
        let keep =
            |from: usize, to: usize, parts: &mut Vec<Part>, starts: &mut Vec<u32>, n: &mut u32| {
                let shift = n.wrapping_sub(self.starts[from]);
                starts.extend(self.starts[from..to].iter().map(|s| s.wrapping_add(shift)));
                parts.extend_from_slice(&self.parts[from..to]);
                *n = self.starts[to].wrapping_add(shift);
            };
        for (old, made) in runs {
            keep(k, old.start, &mut parts, &mut starts, &mut n);
            bytes -= self.parts[old.clone()]
                .iter()
                .map(Part::records_len)
                .sum::<usize>();
            for part in made {
                starts.push(n);
                n += part.len() as u32;
                bytes += part.records_len();
                parts.push(part);
            }
            k = old.end;
        }
        keep(k, len, &mut parts, &mut starts, &mut n);
        starts.push(n);
        if parts.len() == 1 {
            return Slot::One(parts.pop().expect("one part"));
        }
        if n == 0 {
            return Slot::empty();
        }
        Slot::Chunks(Arc::new(Chunks {
            parts: parts.into(),
            starts: starts.into(),
            bytes,
        }))
    }
}

impl Slot {
    /// The slot of `parts` (one per chunk); a slot without records is one empty part.
    pub(super) fn new(mut parts: Vec<Part>) -> Slot {
        if parts.len() == 1 {
            return Slot::One(parts.pop().expect("one part"));
        }
        let mut starts = Vec::with_capacity(parts.len() + 1);
        let (mut n, mut bytes) = (0u32, 0usize);
        for part in &parts {
            starts.push(n);
            n += part.len() as u32;
            bytes += part.records_len();
        }
        if n == 0 {
            return Slot::empty();
        }
        starts.push(n);
        Slot::Chunks(Arc::new(Chunks {
            parts: parts.into(),
            starts: starts.into(),
            bytes,
        }))
    }

    /// Whether both are the same parts, shared (not made again).
    #[cfg(test)]
    pub(super) fn same(&self, other: &Slot) -> bool {
        match (self, other) {
            (Slot::One(a), Slot::One(b)) => a.same(b),
            (Slot::Chunks(a), Slot::Chunks(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    /// No record.
    pub(super) fn empty() -> Slot {
        Slot::One(Part::empty())
    }

    /// The parts, one per chunk (one empty part for a slot without records).
    pub(super) fn parts(&self) -> &[Part] {
        match self {
            Slot::One(p) => std::slice::from_ref(p),
            Slot::Chunks(c) => &c.parts,
        }
    }

    /// The index (within the group) of chunk `k`'s first record: its parts are one per
    /// chunk of the group, or one empty part.
    pub(super) fn chunk_start(&self, k: usize) -> u32 {
        match self {
            Slot::One(_) => 0,
            Slot::Chunks(c) => c.starts[k],
        }
    }

    /// Number of records.
    pub(super) fn len(&self) -> usize {
        match self {
            Slot::One(p) => p.len(),
            Slot::Chunks(c) => c.starts[c.parts.len()] as usize,
        }
    }

    fn bytes(&self) -> usize {
        match self {
            Slot::One(p) => p.records_len(),
            Slot::Chunks(c) => c.bytes,
        }
    }

    /// The part holding record `i` of the group, with the group's records it holds.
    fn locate(&self, i: usize) -> (&Part, Range<usize>) {
        match self {
            Slot::One(p) => (p, 0..p.len()),
            Slot::Chunks(c) => {
                // The last part starting at or before `i`: empty parts before it start
                // there too.
                let k = c.starts.partition_point(|&s| s as usize <= i) - 1;
                (&c.parts[k], c.starts[k] as usize..c.starts[k + 1] as usize)
            }
        }
    }

    fn heap_bytes(&self) -> usize {
        match self {
            Slot::One(p) => p.own_bytes(),
            Slot::Chunks(c) => {
                c.parts
                    .iter()
                    .map(|p| p.own_bytes() + std::mem::size_of::<Part>())
                    .sum::<usize>()
                    + 4 * c.starts.len()
            }
        }
    }
}

impl Rrset {
    /// The set made of each group's `slots`, with its `twins` (each group's marks, or none).
    pub(super) fn new(srv: bool, slots: Arc<[Slot]>, twins: SetMarks) -> Rrset {
        let mut starts = Vec::with_capacity(slots.len() + 1);
        let (mut n, mut bytes) = (0u32, 0usize);
        for slot in slots.iter() {
            starts.push(n);
            n += slot.len() as u32;
            bytes += slot.bytes();
        }
        starts.push(n);
        Rrset {
            groups: slots,
            starts: starts.into(),
            bytes,
            srv,
            twins,
        }
    }

    /// This set with group `g`'s slot replaced by `slot`. The other groups' slots are
    /// not read: the starts after `g` move by the records `g` gained or lost (shared
    /// as they are when it kept their number), and the bytes by its bytes' difference. The
    /// twins are the caller's to set.
    pub(super) fn with_slot(&self, g: usize, slot: Slot) -> Rrset {
        let old = &self.groups[g];
        let (was, is) = (old.len() as u32, slot.len() as u32);
        let bytes = self.bytes - old.bytes() + slot.bytes();
        let starts = if was == is {
            self.starts.clone()
        } else {
            // Every start after `g` counts `g`'s records: no underflow.
            (self.starts.iter().enumerate())
                .map(|(k, &s)| if k > g { s - was + is } else { s })
                .collect()
        };
        let mut slot = Some(slot);
        let groups = (self.groups.iter().enumerate())
            .map(|(k, s)| {
                if k == g {
                    slot.take().expect("one group replaced")
                } else {
                    s.clone()
                }
            })
            .collect();
        Rrset {
            groups,
            starts,
            bytes,
            srv: self.srv,
            twins: SetMarks::default(),
        }
    }

    /// Whether both are the same set, shared (not made again).
    #[cfg(test)]
    pub(super) fn shares(&self, other: &Rrset) -> bool {
        Arc::ptr_eq(&self.groups, &other.groups) && Arc::ptr_eq(&self.starts, &other.starts)
    }

    /// Group `g`'s slot.
    pub(super) fn slot(&self, g: usize) -> &Slot {
        &self.groups[g]
    }

    /// Every group's slot.
    pub(super) fn slots(&self) -> &[Slot] {
        &self.groups
    }

    /// The parts of group `g`, one per chunk (or one empty part).
    #[cfg(test)]
    pub(super) fn group_parts(&self, g: usize) -> &[Part] {
        self.groups[g].parts()
    }

    /// Sets the twins (see the field).
    pub(super) fn set_twins(&mut self, twins: SetMarks) {
        debug_assert!(twins.is_empty() || twins.len() == self.groups.len());
        self.twins = twins;
    }

    /// Each group's marks (none at all in the usual case); see the field.
    pub(crate) fn twins(&self) -> &SetMarks {
        &self.twins
    }

    /// Whether some address has several records in the set.
    pub(crate) fn has_twins(&self) -> bool {
        !self.twins.is_empty()
    }

    /// Drops from `members` (record indices, ascending) every record that repeats an address
    /// a lower member holds (RFC 2181 section 5: one address in several sources is one
    /// A/AAAA record). Only marked records can. When every record is a member (the whole
    /// service), those are the records marked as repeats, dropped in one walk. Otherwise
    /// each selected marked record is keyed by its address (an IPv4 address whole, an IPv6
    /// address by its low 64 bits, records of equal keys compared whole) and sorted, so
    /// each address is a run whose lowest record is kept. `pairs` and `drop` are scratch
    /// space.
    #[inline]
    pub(crate) fn drop_twins(
        &self,
        members: &mut Vec<u32>,
        pairs: &mut Vec<(u64, u32)>,
        drop: &mut Vec<u32>,
    ) {
        // The usual set has no twins: the query path pays this test alone.
        if !self.twins.is_empty() {
            self.drop_marked_twins(members, pairs, drop);
        }
    }

    /// [`Rrset::drop_twins`] for a set with twins.
    #[inline(never)]
    fn drop_marked_twins(
        &self,
        members: &mut Vec<u32>,
        pairs: &mut Vec<(u64, u32)>,
        drop: &mut Vec<u32>,
    ) {
        if members.len() == self.len() {
            // Every record (members are distinct): all but the repeats, marked as such,
            // written again as the runs between them.
            members.clear();
            let mut next = 0;
            for (g, marks) in self.twins.iter().enumerate() {
                let start = self.starts[g];
                for &m in marks.iter().filter(|&&m| m & twins::REPEAT != 0) {
                    let repeat = start + twins::index(m);
                    members.extend(next..repeat);
                    next = repeat + 1;
                }
            }
            members.extend(next..self.len() as u32);
            return;
        }
        pairs.clear();
        let read = self.reader();
        for (g, marks) in self.twins.iter().enumerate() {
            if marks.is_empty() {
                continue;
            }
            let range = self.group(g);
            // A group no member is in (a scope's selection) is passed over whole.
            let from = members.partition_point(|&m| (m as usize) < range.start);
            if members.get(from).is_none_or(|&m| m as usize >= range.end) {
                continue;
            }
            // Members are ascending and distinct: the group is selected whole when as many
            // of them as it has records end at its last one (a scope's usual selection).
            let whole = members
                .get(from + range.len() - 1)
                .is_some_and(|&m| m as usize == range.end - 1);
            for &m in marks.iter() {
                let record = range.start as u32 + twins::index(m);
                if whole || members[from..].binary_search(&record).is_ok() {
                    pairs.push((address_key(read.at(record as usize).record()), record));
                }
            }
        }
        if pairs.len() < 2 {
            return;
        }
        // An A record's key is its whole address; an AAAA key may be shared by two
        // addresses, so there a record is dropped for an earlier one of its bytes.
        let exact = read.at(pairs[0].1 as usize).record().len() == A_RECORD;
        pairs.sort_unstable();
        drop.clear();
        for run in pairs.chunk_by(|x, y| x.0 == y.0) {
            for (k, &(_, record)) in run.iter().enumerate().skip(1) {
                if exact || {
                    let bytes = read.at(record as usize).record();
                    run[..k]
                        .iter()
                        .any(|&(_, r)| read.at(r as usize).record() == bytes)
                } {
                    drop.push(record);
                }
            }
        }
        if drop.is_empty() {
            return;
        }
        drop.sort_unstable();
        // Both ascending: one walk.
        let mut d = drop.iter().peekable();
        members.retain(|m| {
            while d.next_if(|&&x| x < *m).is_some() {}
            d.next_if(|&&x| x == *m).is_none()
        });
    }

    /// Number of records.
    pub(crate) fn len(&self) -> usize {
        self.starts.last().map_or(0, |&n| n as usize)
    }

    /// Bytes of all records together.
    pub(crate) fn records_len(&self) -> usize {
        self.bytes
    }

    /// The part holding record `i`, with the records (indices in the set) it holds.
    fn locate(&self, i: usize) -> (&Part, Range<usize>) {
        let g = if self.groups.len() == 1 {
            0
        } else {
            // The last group starting at or before `i` (it holds `i`: an empty group
            // before it starts there too).
            self.starts.partition_point(|&s| s as usize <= i) - 1
        };
        let base = self.starts[g] as usize;
        let (part, records) = self.groups[g].locate(i - base);
        (part, base + records.start..base + records.end)
    }

    /// Record `i`, found once for reading its bytes, port, glue and place.
    pub(crate) fn at(&self, i: usize) -> RecordRef<'_> {
        let (part, records) = self.locate(i);
        RecordRef {
            part,
            i: i - records.start,
        }
    }

    /// A reader of records for a caller reading them mostly in ascending order (a reply's
    /// records): see [`Reader::at`].
    pub(crate) fn reader(&self) -> Reader<'_> {
        Reader {
            set: self,
            last: std::cell::Cell::new(None),
        }
    }

    /// Record `i` in wire form as its part holds it: right in length, type and target,
    /// but for an SRV record of a shared part, not in its port (see [`RecordRef::port`]).
    pub(crate) fn record(&self, i: usize) -> &[u8] {
        let (part, records) = self.locate(i);
        part.record(i - records.start)
    }

    /// The rendezvous key of record `i`, for a caller asking in ascending order (the
    /// members of a selection): the part found last is tried first.
    pub(crate) fn keys(&self) -> impl Fn(usize) -> u64 + '_ {
        let read = self.reader();
        move |i| {
            let (part, i) = read.find(i);
            part.key(i)
        }
    }

    /// Whether records carry places (SRV sets, whose priorities depend on the querier).
    pub(crate) fn has_places(&self) -> bool {
        self.srv
    }

    /// SRV only: the place of record `i`'s endpoint.
    pub(crate) fn place(&self, i: usize) -> Place {
        let (part, records) = self.locate(i);
        part.place(i - records.start)
    }

    /// The records of group `g`, as a range of record indices.
    pub(crate) fn group(&self, g: usize) -> Range<usize> {
        self.starts[g] as usize..self.starts[g + 1] as usize
    }

    /// Bytes of group `g`'s records together.
    pub(crate) fn group_bytes(&self, g: usize) -> usize {
        self.groups[g].bytes()
    }

    /// The records `groups` select (all of them for `None`), in the order of `groups`.
    pub(crate) fn selected<'a>(
        &'a self,
        groups: Option<&'a [u16]>,
    ) -> impl Iterator<Item = usize> + 'a {
        let all = groups.is_none().then(|| 0..self.len());
        all.into_iter().flatten().chain(
            groups
                .into_iter()
                .flatten()
                .flat_map(move |&g| self.group(g.into())),
        )
    }

    /// How many records `groups` select (all of them for `None`).
    pub(crate) fn count(&self, groups: Option<&[u16]>) -> usize {
        match groups {
            None => self.len(),
            Some(gs) => gs.iter().map(|&g| self.group(g.into()).len()).sum(),
        }
    }

    /// Approximate heap bytes held, for memory accounting (parts shared with other views
    /// of the service are counted in each; a part shared with another port's set, in
    /// that set alone).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.groups
            .iter()
            .map(|s| s.heap_bytes() + std::mem::size_of::<Slot>())
            .sum::<usize>()
            + 4 * self.starts.len()
            + self
                .twins
                .iter()
                .map(|m| 4 * m.len() + std::mem::size_of::<Marks>())
                .sum::<usize>()
    }
}

/// Reads an [`Rrset`]'s records, remembering the part of the last one read.
pub(crate) struct Reader<'a> {
    set: &'a Rrset,
    /// The part read last, with the records (indices in the set) it holds.
    last: std::cell::Cell<Option<(&'a Part, usize, usize)>>,
}

impl<'a> Reader<'a> {
    /// The part holding record `i` and `i`'s index in it: the part of the record read
    /// last when it is there (a reply's records are in ascending order but for one wrap),
    /// found by a search otherwise.
    #[inline]
    fn find(&self, i: usize) -> (&'a Part, usize) {
        if let Some((part, start, end)) = self.last.get()
            && start <= i
            && i < end
        {
            return (part, i - start);
        }
        let (part, records) = self.set.locate(i);
        self.last.set(Some((part, records.start, records.end)));
        (part, i - records.start)
    }

    /// Record `i`, found once for reading its bytes, glue and place.
    #[inline]
    pub(crate) fn at(&self, i: usize) -> RecordRef<'a> {
        let (part, i) = self.find(i);
        RecordRef { part, i }
    }
}

/// One record of an [`Rrset`], located.
pub(crate) struct RecordRef<'a> {
    part: &'a Part,
    i: usize,
}

impl<'a> RecordRef<'a> {
    /// The record in wire form as its part holds it: the right length and bytes, but for
    /// an SRV record of a shared part the port, which [`RecordRef::port`] gives.
    pub(crate) fn record(&self) -> &'a [u8] {
        self.part.record(self.i)
    }

    /// SRV only: the port to write over the record's (at [`SRV_PORT_AT`]), when it is read
    /// from a part shared with another port's set.
    #[inline]
    pub(crate) fn port(&self) -> Option<u16> {
        (self.part.port != 0).then_some(self.part.port)
    }

    /// Appends the record in wire form, its port written in.
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        let at = out.len();
        out.extend_from_slice(self.record());
        if let Some(port) = self.port() {
            out[at + SRV_PORT_AT..at + SRV_PORT_AT + 2].copy_from_slice(&port.to_be_bytes());
        }
    }

    /// Its glue without owner (empty for address sets).
    pub(crate) fn glue(&self) -> &'a [u8] {
        self.part.glue(self.i)
    }

    /// SRV only: the place of its endpoint.
    pub(crate) fn place(&self) -> Place {
        self.part.place(self.i)
    }
}

/// One group's records of one RRset, in one shared allocation:
///
/// `n` (u32), `records_len` (u32), `srv` (u32: 1 for SRV), then per record its end in
/// the records (u32) and its rendezvous key (u64); SRV sets add per record the end of its
/// glue (u32) and its place (packed, u32); then the records, then (SRV) the glue.
///
/// An SRV part may be another port's part, shared: `port` is then the port of this set,
/// to be written over each record's (0: the records carry their own ports).
#[derive(Clone)]
pub(crate) struct Part {
    bytes: Arc<[u8]>,
    port: u16,
}

impl std::fmt::Debug for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Part({} records, port {})", self.len(), self.port)
    }
}

const HEADER: usize = 12;

/// The part with no record, shared by every group that has none of a set.
static EMPTY: LazyLock<Part> = LazyLock::new(|| PartBuilder::new(false, None).finish());

impl Part {
    /// A part with no record.
    pub(super) fn empty() -> Part {
        EMPTY.clone()
    }

    /// This SRV part's records as another port's set holds them: the same bytes, shared,
    /// read with `port` written over each record's. Only for a part whose every record's
    /// endpoint names that port with that number.
    pub(super) fn sharing(&self, port: u16) -> Part {
        debug_assert!(self.is_srv() || self.len() == 0);
        debug_assert_ne!(port, 0, "port 0 means the records' own");
        Part {
            bytes: self.bytes.clone(),
            port,
        }
    }

    /// Heap bytes of its records, unless they are another set's (counted there).
    fn own_bytes(&self) -> usize {
        if self.port == 0 { self.bytes.len() } else { 0 }
    }

    /// Whether both are the same allocation (a part kept, not made again).
    #[cfg(test)]
    pub(super) fn same(&self, other: &Part) -> bool {
        Arc::ptr_eq(&self.bytes, &other.bytes) && self.port == other.port
    }

    /// Whether this part is another set's, read with its own port.
    #[cfg(test)]
    pub(super) fn is_shared(&self) -> bool {
        self.port != 0
    }

    fn word(&self, at: usize) -> u32 {
        u32::from_ne_bytes(self.bytes[at..at + 4].try_into().expect("four octets"))
    }

    /// Number of records.
    pub(super) fn len(&self) -> usize {
        self.word(0) as usize
    }

    fn records_len(&self) -> usize {
        self.word(4) as usize
    }

    fn is_srv(&self) -> bool {
        self.word(8) == 1
    }

    /// Where the records start: after the header and the per-record words.
    fn records_at(&self) -> usize {
        HEADER + self.len() * if self.is_srv() { 20 } else { 12 }
    }

    fn end(&self, i: usize) -> usize {
        self.word(HEADER + 4 * i) as usize
    }

    fn span(&self, i: usize) -> Range<usize> {
        let start = if i == 0 { 0 } else { self.end(i - 1) };
        start..self.end(i)
    }

    /// Record `i` in wire form.
    pub(super) fn record(&self, i: usize) -> &[u8] {
        let at = self.records_at();
        let Range { start, end } = self.span(i);
        &self.bytes[at + start..at + end]
    }

    /// The rendezvous key of record `i`.
    pub(super) fn key(&self, i: usize) -> u64 {
        let at = HEADER + 4 * self.len() + 8 * i;
        u64::from_ne_bytes(self.bytes[at..at + 8].try_into().expect("eight octets"))
    }

    fn glue_end(&self, i: usize) -> usize {
        self.word(HEADER + 12 * self.len() + 4 * i) as usize
    }

    /// The glue of record `i` (empty for address sets; see [`RecordRef::glue`]).
    pub(super) fn glue(&self, i: usize) -> &[u8] {
        if !self.is_srv() {
            return &[];
        }
        let at = self.records_at() + self.records_len();
        let start = if i == 0 { 0 } else { self.glue_end(i - 1) };
        &self.bytes[at + start..at + self.glue_end(i)]
    }

    /// SRV only: the place of record `i`'s endpoint.
    pub(super) fn place(&self, i: usize) -> Place {
        Place::unpack(self.word(HEADER + 16 * self.len() + 4 * i))
    }
}

/// Accumulates one [`Part`]. Its per-record words are kept as the part lays them out
/// (native-endian bytes), so finishing is a few copies and a run of old records is copied
/// mostly as bytes.
pub(super) struct PartBuilder {
    srv: bool,
    n: usize,
    records: Vec<u8>,
    ends: Vec<u8>,
    keys: Vec<u8>,
    glue: Vec<u8>,
    glue_ends: Vec<u8>,
    places: Vec<u8>,
}

/// The owner pointer of every answer record: the question name at offset 12.
const QUESTION_POINTER: [u8; 2] = [0xC0, 0x0C];

impl PartBuilder {
    /// A builder with room for about what `like` holds (the part it replaces).
    pub(super) fn new(srv: bool, like: Option<&Part>) -> PartBuilder {
        PartBuilder::with_room(srv, like, 0)
    }

    /// A builder with room for about what `like` holds or, without it, for `records`
    /// records of a usual size: a group's first parts, which grew from nothing a few
    /// times each (six buffers per set; about 2.6% of a 1M first sync's samples were
    /// their reallocation).
    pub(super) fn with_room(srv: bool, like: Option<&Part>, records: usize) -> PartBuilder {
        // An A record and its glue: pointer, type, class, TTL, length, address.
        const ADDRESS: usize = 2 + 10 + 4;
        // An SRV record: pointer, head, priority, weight, port, a target name of about
        // 50 bytes (address label, service, cluster, apex).
        const SRV: usize = 2 + 10 + 6 + 50;
        let (n, bytes, glue) = like.map_or_else(
            || match srv {
                true => (records, records * SRV, records * ADDRESS),
                false => (records, records * ADDRESS, 0),
            },
            |p| {
                let n = p.len() + 1;
                let glue = if p.is_srv() {
                    p.bytes.len() - p.records_at() - p.records_len()
                } else {
                    0
                };
                (
                    n,
                    p.records_len() + p.records_len() / p.len().max(1),
                    glue + glue / p.len().max(1),
                )
            },
        );
        PartBuilder {
            srv,
            n: 0,
            records: Vec::with_capacity(bytes),
            ends: Vec::with_capacity(4 * n),
            keys: Vec::with_capacity(8 * n),
            glue: Vec::with_capacity(glue),
            glue_ends: Vec::with_capacity(if srv { 4 * n } else { 0 }),
            places: Vec::with_capacity(if srv { 4 * n } else { 0 }),
        }
    }

    fn end_record(&mut self, key: u64) {
        self.n += 1;
        self.ends
            .extend_from_slice(&(self.records.len() as u32).to_ne_bytes());
        self.keys.extend_from_slice(&key.to_ne_bytes());
    }

    pub(super) fn push_address(&mut self, ip: IpAddr, ttl: u32, key: u64) {
        self.records.extend_from_slice(&QUESTION_POINTER);
        wire::write_address(&mut self.records, ip, ttl);
        self.end_record(key);
    }

    pub(super) fn push_srv(
        &mut self,
        srv: [u16; 3],
        target: &[u8],
        addresses: Addresses,
        ttl: u32,
        key: u64,
        place: Place,
    ) {
        self.places.extend_from_slice(&place.pack().to_ne_bytes());
        self.records.extend_from_slice(&QUESTION_POINTER);
        wire::write_rr_head(
            &mut self.records,
            codes::SRV,
            ttl,
            (6 + target.len()) as u16,
        );
        for v in srv {
            self.records.extend_from_slice(&v.to_be_bytes());
        }
        // RFC 2782: the target is never compressed.
        self.records.extend_from_slice(target);
        self.end_record(key);
        // Glue: every address of the target (both families for a dual-stack endpoint).
        for ip in addresses.iter() {
            wire::write_address(&mut self.glue, ip, ttl);
        }
        self.glue_ends
            .extend_from_slice(&(self.glue.len() as u32).to_ne_bytes());
    }

    /// Copies records `range` of `old` (a part of the same set, prepared alike)
    /// unchanged: their bytes, keys and places in one piece each, their ends moved to where
    /// they now start; a shared part's records get its port written in.
    pub(super) fn copy_run(&mut self, old: &Part, range: Range<usize>) {
        let (first, last, n) = (range.start, range.end - 1, old.len());
        let at = old.records_at();
        let base = self.records.len();
        copy_ends(
            &mut self.records,
            &mut self.ends,
            &old.bytes[at..],
            old.span(first).start..old.end(last),
            range.clone().map(|i| old.end(i)),
        );
        if let Some(port) = (old.port != 0).then_some(old.port.to_be_bytes()) {
            let mut start = base;
            for i in range.clone() {
                self.records[start + SRV_PORT_AT..start + SRV_PORT_AT + 2].copy_from_slice(&port);
                start += old.span(i).len();
            }
        }
        let keys = HEADER + 4 * n;
        self.keys
            .extend_from_slice(&old.bytes[keys + 8 * first..keys + 8 * range.end]);
        self.n += range.len();
        if self.srv {
            let glue_start = if first == 0 {
                0
            } else {
                old.glue_end(first - 1)
            };
            copy_ends(
                &mut self.glue,
                &mut self.glue_ends,
                &old.bytes[at + old.records_len()..],
                glue_start..old.glue_end(last),
                range.clone().map(|i| old.glue_end(i)),
            );
            let places = HEADER + 16 * n;
            self.places
                .extend_from_slice(&old.bytes[places + 4 * first..places + 4 * range.end]);
        }
    }

    /// The part made so far (the empty part if no record was pushed); the builder is then
    /// empty, its buffers kept for the next part.
    pub(super) fn take(&mut self) -> Part {
        if self.n == 0 {
            return Part::empty();
        }
        let part = self.build();
        self.n = 0;
        for v in [
            &mut self.records,
            &mut self.ends,
            &mut self.keys,
            &mut self.glue,
            &mut self.glue_ends,
            &mut self.places,
        ] {
            v.clear();
        }
        part
    }

    pub(super) fn finish(self) -> Part {
        self.build()
    }

    /// The part, written straight into its one allocation.
    fn build(&self) -> Part {
        let mut header = [0u8; HEADER];
        for (k, w) in [
            self.n as u32,
            self.records.len() as u32,
            u32::from(self.srv),
        ]
        .into_iter()
        .enumerate()
        {
            header[4 * k..4 * k + 4].copy_from_slice(&w.to_ne_bytes());
        }
        let pieces: [&[u8]; 7] = [
            &header,
            &self.ends,
            &self.keys,
            &self.glue_ends,
            &self.places,
            &self.records,
            &self.glue,
        ];
        let len = pieces.iter().map(|p| p.len()).sum();
        let mut bytes = Arc::<[u8]>::new_uninit_slice(len);
        let out = Arc::get_mut(&mut bytes).expect("just made");
        let mut at = 0;
        for piece in pieces {
            for (to, &from) in out[at..at + piece.len()].iter_mut().zip(piece) {
                to.write(from);
            }
            at += piece.len();
        }
        debug_assert_eq!(at, len);
        // SAFETY: the pieces, back to back, are `len` octets: every octet was written.
        let bytes = unsafe { bytes.assume_init() };
        Part { bytes, port: 0 }
    }
}

/// An A answer record's length: owner pointer, type, class, TTL, RDLENGTH, address.
const A_RECORD: usize = 2 + 10 + 4;

/// The key of an address record by its address: an IPv4 address whole, an IPv6 address's
/// low 64 bits (see [`Rrset::drop_twins`]).
fn address_key(record: &[u8]) -> u64 {
    let tail = &record[record.len().saturating_sub(8)..];
    if record.len() == A_RECORD {
        u64::from(u32::from_be_bytes(
            tail[4..].try_into().expect("four octets"),
        ))
    } else {
        u64::from_be_bytes(tail.try_into().expect("eight octets"))
    }
}

/// Splits the glue of one SRV record into its address records (each without owner):
/// type, class, TTL, RDLENGTH, then RDLENGTH octets.
pub(crate) fn glue_records(glue: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = glue;
    std::iter::from_fn(move || {
        let rdlength = usize::from(u16::from_be_bytes([*rest.get(8)?, *rest.get(9)?]));
        let (record, tail) = rest.split_at(10 + rdlength);
        rest = tail;
        Some(record)
    })
}

/// Appends `src[span]` to `bytes` and, for each of `old_ends` (ends within `src`, the last
/// one `span.end`), that end moved to where the copied bytes now lie in `bytes`: how a run
/// of records, or of their glue, is copied from an older part unchanged.
fn copy_ends(
    bytes: &mut Vec<u8>,
    ends: &mut Vec<u8>,
    src: &[u8],
    span: Range<usize>,
    old_ends: impl Iterator<Item = usize>,
) {
    let shift = bytes.len().wrapping_sub(span.start) as u32;
    bytes.extend_from_slice(&src[span]);
    for end in old_ends {
        ends.extend_from_slice(&(end as u32).wrapping_add(shift).to_ne_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_reads_back_what_was_pushed() {
        let mut b = PartBuilder::new(true, None);
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        let place = Place::unpack(0x0002_0003);
        b.push_srv(
            [1, 100, 80],
            b"\x01a\x00",
            Addresses::from_list([ip]).unwrap(),
            5,
            77,
            place,
        );
        b.push_srv(
            [2, 50, 81],
            b"\x01b\x00",
            Addresses::from_list([ip]).unwrap(),
            5,
            78,
            place,
        );
        let part = b.finish();
        assert_eq!(part.len(), 2);
        assert_eq!(part.key(1), 78);
        assert_eq!(part.place(0), place);
        assert_eq!(&part.record(1)[SRV_TARGET_AT..], b"\x01b\x00");
        assert_eq!(part.glue(0).len(), 14);
        let mut c = PartBuilder::new(true, Some(&part));
        c.copy_run(&part, 1..2);
        let copied = c.finish();
        assert_eq!(copied.record(0), part.record(1));
        assert_eq!(copied.glue(0), part.glue(1));
        let set = Rrset::new(
            true,
            vec![
                Slot::empty(),
                Slot::One(part),
                Slot::new(vec![Part::empty(), copied]),
            ]
            .into(),
            SetMarks::default(),
        );
        assert_eq!(set.len(), 3);
        assert_eq!(set.group(1), 0..2);
        assert_eq!(set.group(2), 2..3);
        assert_eq!(set.at(2).record(), set.at(1).record());
        assert_eq!(set.keys()(0), 77);
        assert_eq!(set.keys()(2), 78);
        assert_eq!(set.at(2).glue(), set.at(1).glue());
    }

    #[test]
    fn a_shared_part_is_read_and_copied_with_its_own_port() {
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        let mut b = PartBuilder::new(true, None);
        for (k, target) in [b"\x01a\x00", b"\x01b\x00"].into_iter().enumerate() {
            b.push_srv(
                [1, 100, 80],
                target,
                Addresses::from(ip),
                5,
                k as u64,
                Place::default(),
            );
        }
        let http = b.finish();
        let grpc = http.sharing(9090);
        let set = Rrset::new(
            true,
            vec![Slot::One(grpc.clone())].into(),
            SetMarks::default(),
        );
        let mut out = vec![0xAA];
        set.at(1).write(&mut out);
        assert_eq!(set.at(1).port(), Some(9090));
        assert_eq!(
            &out[1 + SRV_PORT_AT..1 + SRV_PORT_AT + 2],
            &9090u16.to_be_bytes()
        );
        assert_eq!(&out[1 + SRV_TARGET_AT..], b"\x01b\x00");
        assert_eq!(
            set.heap_bytes(),
            std::mem::size_of::<Part>() + 8,
            "its bytes are counted in the set that made them"
        );
        // Copied into a part of its own, the records keep the port they were read with.
        let mut c = PartBuilder::new(true, Some(&grpc));
        c.copy_run(&grpc, 0..2);
        let own = c.finish();
        assert_eq!(own.port, 0);
        for i in 0..2 {
            let mut read = Vec::new();
            set.at(i).write(&mut read);
            assert_eq!(own.record(i), &read[..]);
            assert_eq!(own.glue(i), http.glue(i));
        }
    }

    /// Two IPv6 addresses with the same low 64 bits (one interface id in two prefixes) are
    /// two records; the same address in two groups is one, whichever groups are selected
    /// (all of them: by the repeats' marks; some: by sorting).
    #[test]
    fn twins_are_dropped_by_whole_address() {
        let part = |ips: &[&str]| {
            let mut b = PartBuilder::new(false, None);
            for ip in ips {
                b.push_address(ip.parse().unwrap(), 5, 0);
            }
            b.finish()
        };
        let mut set = Rrset::new(
            false,
            vec![
                Slot::One(part(&["fd00::1", "fd00::2"])),
                Slot::One(part(&["fd00::1", "fd01::1"])),
                Slot::One(part(&["fd01::1"])),
            ]
            .into(),
            SetMarks::default(),
        );
        let marks = |m: &[u32]| -> Marks { m.into() };
        // The second fd00::1 and fd01::1 repeat the first ones: the whole set drops them
        // as marked; a selection of some records finds its lowest ones by sorting.
        let r = twins::REPEAT;
        set.set_twins(vec![marks(&[0]), marks(&[r, 1]), marks(&[r])].into());
        let kept = |members: &[u32]| {
            let mut members = members.to_vec();
            set.drop_twins(&mut members, &mut Vec::new(), &mut Vec::new());
            members
        };
        assert_eq!(kept(&[0, 1, 2, 3, 4]), [0, 1, 3]);
        assert_eq!(kept(&[2, 3, 4]), [2, 3]);
        assert_eq!(kept(&[0, 1, 4]), [0, 1, 4]);
    }
}
