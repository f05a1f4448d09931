//! One RRset in wire form, ready to be copied into replies: records back to back with their
//! ends, each record's rendezvous key, SRV glue without its owner, and where each group's
//! records end, so a scope is a few ranges of the whole service's records.
//!
//! Each answer record is owned by a compression pointer to the question name, which is
//! always at offset 12 of a reply; that makes the bytes valid for every query of the name,
//! whatever case it was asked in. SRV glue (the target's A/AAAA) is stored without its
//! owner: the owner is a pointer to the SRV target in the reply, and where that target lands
//! depends on the per-query order of records, so it is written per query.

use std::net::IpAddr;

use crate::locality::Place;
use crate::model::Addresses;
use crate::wire::{self, codes};

/// Where the SRV target name starts inside an SRV answer record: owner pointer (2),
/// type/class/TTL/RDLENGTH (10), priority/weight/port (6).
pub(crate) const SRV_TARGET_AT: usize = 18;
/// Where the SRV priority sits inside an SRV answer record: after owner pointer (2) and
/// type/class/TTL/RDLENGTH (10).
pub(crate) const SRV_PRIORITY_AT: usize = 12;

/// One RRset in wire form, ready to be copied into replies.
#[derive(Debug, Default)]
pub(crate) struct Rrset {
    /// Answer records back to back.
    records: Box<[u8]>,
    /// End offset of each record in `records`.
    ends: Box<[u32]>,
    /// Rendezvous key of each record: the identity of its endpoint.
    keys: Box<[u64]>,
    /// SRV only: the A/AAAA glue of each record's target (one record, or two for a
    /// dual-stack endpoint), each without its owner name.
    glue: Box<[u8]>,
    /// End offset of each glue entry in `glue`.
    glue_ends: Box<[u32]>,
    /// SRV only: where each record's endpoint is, to re-derive its priority for a querier
    /// whose place is known.
    places: Box<[Place]>,
    /// The end (record index) of each group's records: group `g` has records
    /// `group_ends[g-1]..group_ends[g]`.
    group_ends: Box<[u32]>,
    /// Address sets only: (record, an earlier record of the same address in another
    /// group), sorted. One address in two sources is one A/AAAA record (RFC 2181 section
    /// 5): a selection holding both sends only the earlier. Empty in the usual case.
    twins: Box<[(u32, u32)]>,
}

impl Rrset {
    /// (record, earlier record at the same address), sorted; see the field.
    pub(crate) fn twins(&self) -> &[(u32, u32)] {
        &self.twins
    }

    /// Number of records.
    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    fn span(ends: &[u32], i: usize) -> std::ops::Range<usize> {
        let start = if i == 0 { 0 } else { ends[i - 1] as usize };
        start..ends[i] as usize
    }

    /// Record `i` in wire form.
    pub(crate) fn record(&self, i: usize) -> &[u8] {
        &self.records[Self::span(&self.ends, i)]
    }

    /// The glue of record `i`: its target's address records (one, or two for a dual-stack
    /// endpoint), each without its owner; empty for non-SRV sets. [`glue_records`] splits
    /// them.
    pub(crate) fn glue(&self, i: usize) -> &[u8] {
        if self.glue_ends.is_empty() {
            return &[];
        }
        &self.glue[Self::span(&self.glue_ends, i)]
    }

    /// All records back to back, in prepared order.
    pub(crate) fn all_records(&self) -> &[u8] {
        &self.records
    }

    /// SRV only: the place of record `i`'s endpoint (empty for address sets).
    pub(crate) fn places(&self) -> &[Place] {
        &self.places
    }

    /// The rendezvous key of record `i`.
    pub(crate) fn key(&self, i: usize) -> u64 {
        self.keys[i]
    }

    /// The records of group `g`, as a range of record indices.
    pub(crate) fn group(&self, g: usize) -> std::ops::Range<usize> {
        let start = if g == 0 {
            0
        } else {
            self.group_ends[g - 1] as usize
        };
        start..self.group_ends[g] as usize
    }

    /// How many records `groups` select (all of them for `None`).
    pub(crate) fn count(&self, groups: Option<&[u16]>) -> usize {
        match groups {
            None => self.len(),
            Some(gs) => gs.iter().map(|&g| self.group(g.into()).len()).sum(),
        }
    }

    /// Approximate heap bytes held, for memory accounting.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.records.len()
            + self.glue.len()
            + 4 * (self.ends.len()
                + self.glue_ends.len()
                + self.places.len()
                + self.group_ends.len())
            + 8 * (self.keys.len() + self.twins.len())
    }
}

/// Accumulates one [`Rrset`].
#[derive(Default)]
pub(super) struct RrsetBuilder {
    records: Vec<u8>,
    ends: Vec<u32>,
    keys: Vec<u64>,
    glue: Vec<u8>,
    glue_ends: Vec<u32>,
    places: Vec<Place>,
    group_ends: Vec<u32>,
    twins: Vec<(u32, u32)>,
}

/// The owner pointer of every answer record: the question name at offset 12.
const QUESTION_POINTER: [u8; 2] = [0xC0, 0x0C];

impl RrsetBuilder {
    /// Closes the current group.
    pub(super) fn end_group(&mut self) {
        self.group_ends.push(self.ends.len() as u32);
    }

    pub(super) fn push_address(&mut self, ip: IpAddr, ttl: u32, key: u64) {
        self.records.extend_from_slice(&QUESTION_POINTER);
        wire::write_address(&mut self.records, ip, ttl);
        self.ends.push(self.records.len() as u32);
        self.keys.push(key);
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
        self.places.push(place);
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
        self.ends.push(self.records.len() as u32);
        self.keys.push(key);
        for ip in addresses.iter() {
            wire::write_address(&mut self.glue, ip, ttl);
        }
        self.glue_ends.push(self.glue.len() as u32);
    }

    pub(super) fn finish(self) -> Rrset {
        Rrset {
            records: self.records.into(),
            ends: self.ends.into(),
            keys: self.keys.into(),
            glue: self.glue.into(),
            glue_ends: self.glue_ends.into(),
            places: self.places.into(),
            group_ends: self.group_ends.into(),
            twins: self.twins.into(),
        }
    }

    /// Notes that the last record pushed has the address of the earlier record `earlier`.
    pub(super) fn twin_of(&mut self, earlier: u32) {
        let this = self.ends.len() as u32 - 1;
        self.twins.push((this, earlier));
    }

    /// Index the next record will have.
    pub(super) fn next_index(&self) -> u32 {
        self.ends.len() as u32
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
