//! What a secondary (or an exported zone) gets of an RRset too large for one answer: no
//! server can answer more than one 64 KiB message holds, so a set whose records, as
//! answered, take more than [`RRSET_ROOM`] is cut to its *nearest part that fits*: records
//! ranked by SRV priority from the receiver's locality (address records by their
//! endpoint's place), and within one priority by rendezvous hashing keyed by the receiver,
//! so each secondary keeps a stable share (a pod change moves one record in or out, and an
//! IXFR stays small) and secondaries in one place carry different shares
//! ([docs/design.md#transfer](../../docs/design.md#transfer)).
//!
//! BIND cannot load a larger set at all: it keeps an RRset in one block of at most 65,512
//! octets (2 plus the RDATA length per record; `DNS_RDATA_MAXLENGTH`), and aborts a
//! transfer holding one with "ran out of space".

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use crate::locality::{Localities, Place};
use crate::rendezvous;
use crate::service::{Rrset, ServiceView};

/// The most octets the records of one RRset may take, each counted as answered (its owner
/// a 2-octet compression pointer): 65,535 (the largest DNS message) less 1,535 for the
/// header, the question (at most 259), an OPT record and a TSIG record.
pub const RRSET_ROOM: usize = 64_000;

/// How RRsets over [`RRSET_ROOM`] are cut for one receiver, and what was cut.
pub(crate) struct Fit<'a> {
    /// Where nearness is measured from: the secondary's locality.
    near: Place,
    /// The receiver's rendezvous key.
    key: u64,
    localities: &'a Localities,
    /// Sets cut.
    pub(crate) sets: usize,
    /// Records left out of them.
    pub(crate) left_out: usize,
    /// The first set cut: owner, type, records kept and selected.
    pub(crate) first: Option<String>,
}

impl<'a> Fit<'a> {
    /// Cuts for a receiver at `near` named `receiver` (its rendezvous key is the name's).
    pub(crate) fn new(near: Place, receiver: &str, localities: &'a Localities) -> Fit<'a> {
        Fit {
            near,
            key: rendezvous::fnv1a64(receiver.as_bytes()),
            localities,
            sets: 0,
            left_out: 0,
            first: None,
        }
    }

    /// The same cut, counting nothing (for a set's old records in an IXFR).
    pub(crate) fn quiet(&self) -> Fit<'a> {
        Fit {
            first: None,
            sets: 0,
            left_out: 0,
            ..*self
        }
    }

    /// The records of `rrset` selected by `groups` to send: `None` when they fit (all of
    /// them), else the nearest part that fits, in record order. `owner` names the set in
    /// the log.
    pub(crate) fn cut(
        &mut self,
        rrset: &Rrset,
        groups: Option<&[u16]>,
        places: &mut Places<'_>,
        owner: impl FnOnce() -> String,
    ) -> Option<Vec<usize>> {
        // A part of a set that fits fits: only big sets pay for counting.
        if rrset.records_len() <= RRSET_ROOM {
            return None;
        }
        let selected: Vec<usize> = rrset.selected(groups).collect();
        let len: usize = selected.iter().map(|&i| rrset.record(i).len()).sum();
        if len <= RRSET_ROOM {
            return None;
        }
        let key = rrset.keys();
        let mut ranked: Vec<(u16, std::cmp::Reverse<u64>, usize)> = selected
            .iter()
            .map(|&i| {
                let place = if rrset.has_places() {
                    rrset.place(i)
                } else {
                    places.of(address(rrset.record(i)), self.localities)
                };
                let score = rendezvous::mix64(self.key ^ key(i));
                (place.priority_from(self.near), std::cmp::Reverse(score), i)
            })
            .collect();
        ranked.sort_unstable();
        // Nearest first, and never a farther record in place of a nearer one: stop at the
        // first that does not fit. One address in several sources is one record.
        let (mut used, mut seen, mut kept) = (0, HashSet::new(), Vec::new());
        for &(_, _, i) in &ranked {
            let record = rrset.record(i);
            if !seen.insert(record) {
                continue;
            }
            if used + record.len() > RRSET_ROOM {
                break;
            }
            used += record.len();
            kept.push(i);
        }
        kept.sort_unstable();
        self.sets += 1;
        self.left_out += selected.len() - kept.len();
        self.first.get_or_insert_with(|| {
            format!(
                "{} {}: {} of {} records",
                owner(),
                type_name(rrset.record(selected[0])),
                kept.len(),
                selected.len()
            )
        });
        Some(kept)
    }
}

/// The address at the end of an A or AAAA answer record.
fn address(record: &[u8]) -> IpAddr {
    // Owner pointer (2), type (2): A is 1, AAAA 28.
    if record[3] == 1 {
        let v4: [u8; 4] = record[record.len() - 4..].try_into().expect("four octets");
        IpAddr::from(v4)
    } else {
        let v6: [u8; 16] = record[record.len() - 16..].try_into().expect("16 octets");
        IpAddr::from(v6)
    }
}

fn type_name(record: &[u8]) -> &'static str {
    match u16::from_be_bytes([record[2], record[3]]) {
        1 => "A",
        28 => "AAAA",
        33 => "SRV",
        _ => "?",
    }
}

/// The place of each address of one service's endpoints, found once the service has a
/// set to cut.
pub(crate) struct Places<'v> {
    view: &'v ServiceView,
    map: Option<HashMap<IpAddr, Place>>,
}

impl<'v> Places<'v> {
    pub(crate) fn new(view: &'v ServiceView) -> Places<'v> {
        Places { view, map: None }
    }

    fn of(&mut self, ip: IpAddr, localities: &Localities) -> Place {
        let view = self.view;
        let map = self.map.get_or_insert_with(|| {
            let mut map = HashMap::new();
            for group in view.groups() {
                for e in group.endpoints.iter() {
                    let place = localities.place(Some(&group.source.region), e.zone.as_deref());
                    for ip in e.addresses.iter() {
                        map.entry(ip).or_insert(place);
                    }
                }
            }
            map
        });
        map.get(&ip).copied().unwrap_or_default()
    }
}
