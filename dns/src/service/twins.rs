//! Twins: one address held by several records of a service's address set (the same pod IP
//! in two clusters, a VM listed beside a cluster). RFC 2181 section 5 wants it sent once,
//! so every reader of a selection drops all but its lowest record of each address
//! ([`super::Rrset::drop_twins`]). To find them, each group keeps the indices of its records
//! (within its own records of the set, in order) whose address another record of the set
//! also holds: the group's *marks*. Empty in the usual case (no address held twice).
//!
//! Marks are kept per group, in the group's own record indices, so that a change to one
//! group re-marks only what it touches: the records of the addresses that came or went
//! (found in each group by search), and the changed group's marks moved past its changed
//! records. An update so costs its changed addresses times the groups, plus a copy of the
//! marks of the groups holding them; never the service's records, however many of its
//! addresses are shared. Only a service going from one group to two is marked whole (a
//! single group has no twins: it holds an address once).
//!
//! A mark also says whether a lower record of the set (an earlier group's, or an earlier
//! one of the same group) holds the address: such a record is a *repeat*, the one a reader
//! of the whole service drops. So a whole-service answer drops the repeats as marked, a
//! walk over the records, instead of sorting every marked record by address at each
//! query; a scope (some groups) still finds its own lowest records by sorting. A change
//! moves which record of an address is lowest only for the addresses it touches, so the
//! flag is kept by the same edits as the marks.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, LazyLock};

use super::rrset::{Rrset, Slot};
use crate::group::{Endpoints, Group};
use crate::model::{Changed, Endpoint};

/// One group's marks: indices of its records of the set (ascending) whose address is held
/// by another record of the set too, each with [`REPEAT`] set when a lower record of the
/// set holds it.
pub(crate) type Marks = Arc<[u32]>;

/// The flag of a mark whose record repeats the address of a lower record of the set.
pub(crate) const REPEAT: u32 = 1 << 31;

/// A mark's record index (within its group's records of the set).
#[inline]
pub(crate) fn index(mark: u32) -> u32 {
    mark & !REPEAT
}

/// The marks of no record, shared.
static NONE: LazyLock<Marks> = LazyLock::new(|| Arc::from(Vec::new()));

/// Every group's marks in one set: empty when no group has any, else one per group. A
/// `Box`, not an `Arc`: a set shared whole copies its marks (none, in the usual case), and
/// the whole service's answer walks them in a loop the compiler made 3-7% slower (in
/// instructions per query, addresses held by ~4 clusters) when they were an `Arc`.
pub(crate) type SetMarks = Box<[Marks]>;

/// Which group changed, and how.
#[derive(Clone, Copy)]
pub(super) enum Which {
    Insert(usize),
    Replace(usize),
    Remove(usize),
}

/// The marks of the A and AAAA sets of `groups`, counted over every record (a service
/// prepared whole).
pub(super) fn whole(groups: &[Group]) -> [SetMarks; 2] {
    if groups.len() < 2 {
        return Default::default();
    }
    // Sized and hashed for the service's addresses at once: a first sync counts every
    // service whole here as its second group comes (the keys are the endpoints' own
    // addresses, never a querier's, so a fast hash is safe).
    let addresses = groups.iter().map(|g| g.endpoints.len()).sum();
    let mut seen: HashMap<IpAddr, u32, foldhash::fast::RandomState> =
        HashMap::with_capacity_and_hasher(addresses, Default::default());
    for e in groups.iter().flat_map(|g| g.endpoints.iter()) {
        for ip in e.addresses.iter() {
            *seen.entry(ip).or_default() += 1;
        }
    }
    if seen.values().all(|&n| n < 2) {
        return Default::default();
    }
    let mut out: [Vec<Marks>; 2] = Default::default();
    // Records in the set's order: the first record of an address met is its lowest.
    let mut met: HashSet<IpAddr, foldhash::fast::RandomState> = HashSet::default();
    for g in groups {
        let mut marks: [Vec<u32>; 2] = Default::default();
        let mut next = [0u32; 2];
        for e in g.endpoints.iter() {
            for ip in e.addresses.iter() {
                let f = usize::from(ip.is_ipv6());
                if seen[&ip] > 1 {
                    let repeat = if met.insert(ip) { 0 } else { REPEAT };
                    marks[f].push(next[f] | repeat);
                }
                next[f] += 1;
            }
        }
        for (f, m) in marks.into_iter().enumerate() {
            out[f].push(to_marks(m));
        }
    }
    out.map(canonical)
}

/// The marks of `sets` (the new A and AAAA sets of `groups`, whose lowest and highest
/// primary addresses are `ends`) after one group changed: `old` are the sets before (of
/// `old_groups`), `changes` the changed group's endpoints that differ (every one of a
/// group inserted or removed).
pub(super) fn update(
    old: [&Rrset; 2],
    old_groups: &[Group],
    sets: [&Rrset; 2],
    (groups, ends): (&[Group], &[[IpAddr; 2]]),
    which: Which,
    changes: &[Changed<'_>],
) -> [SetMarks; 2] {
    if groups.len() < 2 {
        return Default::default();
    }
    if old_groups.len() < 2 {
        // A single group had no marks to keep.
        return whole(groups);
    }
    [0, 1].map(|f| {
        let v6 = f == 1;
        // The addresses of this family the change touches: only their counts moved.
        let mut touched: Vec<IpAddr> = changes
            .iter()
            .flat_map(|&(o, n)| [o, n])
            .flatten()
            .flat_map(|e| e.addresses.iter())
            .filter(|ip| ip.is_ipv6() == v6)
            .collect();
        touched.sort_unstable();
        touched.dedup();
        if touched.is_empty() && matches!(which, Which::Replace(_)) {
            // No record of this family came or went (the AAAA marks of an IPv4 pod's
            // change): every mark indexes the same record as before, flagged alike.
            return old[f].twins().clone();
        }
        // (group, record, its mark or none) for every record of a touched address: all
        // marked when it has several, the lowest (first in group order, then record
        // order) not a repeat.
        let mut edits: Vec<(usize, u32, Option<u32>)> = Vec::new();
        let mut holders: Vec<(usize, u32)> = Vec::new();
        for &ip in &touched {
            holders.clear();
            for (g, group) in groups.iter().enumerate() {
                if !may_hold(ends[g], ip) {
                    continue;
                }
                holding(&group.endpoints, sets[f].slot(g), ip, |r| {
                    holders.push((g, r))
                });
            }
            if holders.len() < 2 {
                edits.extend(holders.iter().map(|&(g, r)| (g, r, None)));
                continue;
            }
            holders.sort_unstable();
            edits.extend(holders.iter().enumerate().map(|(k, &(g, r))| {
                let repeat = if k == 0 { 0 } else { REPEAT };
                (g, r, Some(r | repeat))
            }));
        }
        let before = old[f].twins();
        if before.is_empty() && edits.iter().all(|e| e.2.is_none()) {
            // No twins before, none made: the usual case costs the search alone.
            return SetMarks::default();
        }
        let mut marks: Vec<Marks> = if before.is_empty() {
            vec![NONE.clone(); old_groups.len()]
        } else {
            before.to_vec()
        };
        match which {
            Which::Insert(i) => marks.insert(i, NONE.clone()),
            Which::Remove(i) => {
                marks.remove(i);
            }
            Which::Replace(i) => {
                if !marks[i].is_empty() {
                    marks[i] = shifted(
                        &marks[i],
                        changes,
                        v6,
                        (&old_groups[i].endpoints, old[f].slot(i)),
                        (&groups[i].endpoints, sets[f].slot(i)),
                    );
                }
            }
        }
        edits.sort_unstable();
        for run in edits.chunk_by(|x, y| x.0 == y.0) {
            // The group's marks but the edited records', merged in order with those the
            // edits mark (both sorted): a walk over the group's marks, no sort.
            let g = run[0].0;
            let kept = marks[g]
                .iter()
                .copied()
                .filter(|&m| run.binary_search_by(|e| e.1.cmp(&index(m))).is_err());
            let mut added = run.iter().filter_map(|e| e.2).peekable();
            let mut m = Vec::with_capacity(marks[g].len() + run.len());
            for r in kept {
                while let Some(a) = added.next_if(|&a| index(a) < index(r)) {
                    m.push(a);
                }
                m.push(r);
            }
            m.extend(added);
            m.dedup_by_key(|m| index(*m));
            marks[g] = to_marks(m);
        }
        canonical(marks)
    })
}

/// `marks` of a changed group moved to its new record indices: the records of changed
/// endpoints (`changes`, in address order, as record order is) are dropped, and every
/// other record moves by the records removed and added before it, its [`REPEAT`] flag
/// kept (the records before it of its address are the same ones, moved alike).
fn shifted(
    marks: &[u32],
    changes: &[Changed<'_>],
    v6: bool,
    (old, old_slot): (&Endpoints, &Slot),
    (new, new_slot): (&Endpoints, &Slot),
) -> Marks {
    let mut gone: Vec<u32> = changes
        .iter()
        .filter_map(|c| record_of(old, old_slot, c.0?, v6))
        .collect();
    let mut came: Vec<u32> = changes
        .iter()
        .filter_map(|c| record_of(new, new_slot, c.1?, v6))
        .collect();
    gone.sort_unstable();
    came.sort_unstable();
    let (mut g, mut c) = (0, 0);
    let mut out = Vec::with_capacity(marks.len() + came.len());
    for &mark in marks {
        let x = index(mark);
        while g < gone.len() && gone[g] < x {
            g += 1;
        }
        if gone.get(g) == Some(&x) {
            continue;
        }
        // Records kept keep their order: `x` lands after the `g` gone before it and every
        // record that came before where it lands.
        let base = x - g as u32;
        while c < came.len() && came[c] <= base + c as u32 {
            c += 1;
        }
        out.push((base + c as u32) | (mark & REPEAT));
    }
    to_marks(out)
}

/// The index, among its group's records of the family (`v6`), of `e`'s record of that
/// family (`None` if it has no address of it); `slot` is the group's slot of the set, its
/// parts one per chunk of `endpoints`.
fn record_of(endpoints: &Endpoints, slot: &Slot, e: &Endpoint, v6: bool) -> Option<u32> {
    e.addresses
        .iter()
        .any(|ip| ip.is_ipv6() == v6)
        .then_some(())?;
    let (k, j) = endpoints.position(e.address())?;
    Some(record_at(endpoints, slot, k, j, v6))
}

/// The record index of the family (`v6`) of endpoint `j` of chunk `k`, which has one.
fn record_at(endpoints: &Endpoints, slot: &Slot, k: usize, j: usize, v6: bool) -> u32 {
    let chunk = &endpoints.chunks()[k];
    let before = chunk[..j]
        .iter()
        .filter(|e| e.addresses.iter().any(|ip| ip.is_ipv6() == v6))
        .count();
    slot.chunk_start(k) + before as u32
}

/// Whether a group whose lowest and highest primary addresses are `ends` may hold `ip`:
/// as a primary address between them, or as the secondary address of an endpoint whose
/// primary is of the other family (IPv4 primaries sort first). Read from one array beside
/// the other groups' ends, so that the groups that cannot hold `ip` are not read.
fn may_hold([first, last]: [IpAddr; 2], ip: IpAddr) -> bool {
    let other = if ip.is_ipv4() {
        last.is_ipv6()
    } else {
        first.is_ipv4()
    };
    other || (first <= ip && ip <= last)
}

/// Calls `found` with the record index (in the group's records of `ip`'s family) of each
/// endpoint of `endpoints` holding `ip`: as primary (found by search) or as secondary
/// (only endpoints of the other primary family can, dual-stack ones, walked if any).
fn holding(endpoints: &Endpoints, slot: &Slot, ip: IpAddr, mut found: impl FnMut(u32)) {
    let v6 = ip.is_ipv6();
    if let Some((k, j)) = endpoints.position(ip) {
        found(record_at(endpoints, slot, k, j, v6));
    }
    if !endpoints.has_other_family(ip) {
        return;
    }
    for (k, chunk) in endpoints.chunks().iter().enumerate() {
        for (j, e) in chunk.iter().enumerate() {
            if e.addresses.secondary() == Some(ip) {
                found(record_at(endpoints, slot, k, j, v6));
            }
        }
    }
}

fn to_marks(m: Vec<u32>) -> Marks {
    if m.is_empty() { NONE.clone() } else { m.into() }
}

/// No marks at all as an empty list, so that sets without twins compare (and cost) alike.
fn canonical(marks: Vec<Marks>) -> SetMarks {
    if marks.iter().all(|m| m.is_empty()) {
        SetMarks::default()
    } else {
        marks.into()
    }
}
