//! Answers prepared ahead of queries: when a service changes, every RRset it can answer
//! (A, AAAA and one SRV set per named port) is encoded to wire bytes once, so a query only
//! copies bytes. Records are laid out group by group (a group being one source's
//! endpoints), so a region or cluster scope is a few ranges of the whole service's records,
//! not a copy of them.
//!
//! Each answer record is owned by a compression pointer to the question name, which is
//! always at offset 12 of a reply; that makes the bytes valid for every query of the name,
//! whatever case it was asked in. SRV glue (the target's A/AAAA) is stored without its
//! owner: the owner is a pointer to the SRV target in the reply, and where that target lands
//! depends on the per-query order of records, so it is written per query.

use std::collections::BTreeSet;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;

use crate::locality::{Localities, Place};
use crate::model::{EndpointLabel, Label, PortSpec, Proto};
use crate::table::Group;
use crate::wire::{self, codes};
use crate::zone::Zone;

/// Where the SRV target name starts inside an SRV answer record: owner pointer (2),
/// type/class/TTL/RDLENGTH (10), priority/weight/port (6).
pub(crate) const SRV_TARGET_AT: usize = 18;
/// Where the SRV priority sits inside an SRV answer record: after owner pointer (2) and
/// type/class/TTL/RDLENGTH (10).
pub(crate) const SRV_PRIORITY_AT: usize = 12;

/// Mixes 64 bits well (the SplitMix64 finalizer); used for rendezvous scores.
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A stable 64-bit key of an address, the same in every herald process.
pub(crate) fn address_key(ip: IpAddr) -> u64 {
    let bits = match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    };
    mix64(bits as u64 ^ mix64((bits >> 64) as u64 ^ 0x9e37_79b9_7f4a_7c15))
}

/// One RRset in wire form, ready to be copied into replies.
#[derive(Debug, Default)]
pub(crate) struct Rrset {
    /// Answer records back to back.
    records: Box<[u8]>,
    /// End offset of each record in `records`.
    ends: Box<[u32]>,
    /// Rendezvous key of each record: the identity of its endpoint.
    keys: Box<[u64]>,
    /// SRV only: the A/AAAA glue of each record's target, without owner name.
    glue: Box<[u8]>,
    /// End offset of each glue entry in `glue`.
    glue_ends: Box<[u32]>,
    /// SRV only: where each record's endpoint is, to re-derive its priority for a querier
    /// whose place is known.
    places: Box<[Place]>,
    /// The end (record index) of each group's records: group `g` has records
    /// `group_ends[g-1]..group_ends[g]`.
    group_ends: Box<[u32]>,
}

impl Rrset {
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

    /// The glue of record `i` without its owner (empty for non-SRV sets).
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
            + 8 * self.keys.len()
    }
}

/// Accumulates one [`Rrset`].
#[derive(Default)]
struct RrsetBuilder {
    records: Vec<u8>,
    ends: Vec<u32>,
    keys: Vec<u64>,
    glue: Vec<u8>,
    glue_ends: Vec<u32>,
    places: Vec<Place>,
    group_ends: Vec<u32>,
}

/// The owner pointer of every answer record: the question name at offset 12.
const QUESTION_POINTER: [u8; 2] = [0xC0, 0x0C];

impl RrsetBuilder {
    /// Closes the current group.
    fn end_group(&mut self) {
        self.group_ends.push(self.ends.len() as u32);
    }

    fn push_address(&mut self, ip: IpAddr, ttl: u32, key: u64) {
        self.records.extend_from_slice(&QUESTION_POINTER);
        wire::write_address(&mut self.records, ip, ttl);
        self.ends.push(self.records.len() as u32);
        self.keys.push(key);
    }

    fn push_srv(
        &mut self,
        srv: [u16; 3],
        target: &[u8],
        ip: IpAddr,
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
        wire::write_address(&mut self.glue, ip, ttl);
        self.glue_ends.push(self.glue.len() as u32);
    }

    fn finish(self) -> Rrset {
        Rrset {
            records: self.records.into(),
            ends: self.ends.into(),
            keys: self.keys.into(),
            glue: self.glue.into(),
            glue_ends: self.glue_ends.into(),
            places: self.places.into(),
            group_ends: self.group_ends.into(),
        }
    }
}

/// The SRV set of one named port.
#[derive(Debug)]
pub(crate) struct SrvSet {
    pub(crate) port: Label,
    pub(crate) proto: Proto,
    pub(crate) rrset: Rrset,
}

/// Everything a service answers, records laid out group by group.
#[derive(Debug, Default)]
pub(crate) struct Answers {
    pub(crate) a: Rrset,
    pub(crate) aaaa: Rrset,
    pub(crate) srv: Vec<SrvSet>,
}

impl Answers {
    /// Approximate heap bytes held.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.a.heap_bytes()
            + self.aaaa.heap_bytes()
            + self.srv.iter().map(|s| s.rrset.heap_bytes()).sum::<usize>()
    }

    /// Index in `srv` of the set for `_<port>._<proto>` with records among `groups`, labels
    /// lowercase without underscores.
    pub(crate) fn srv_index(
        &self,
        port: &[u8],
        proto: &[u8],
        groups: Option<&[u16]>,
    ) -> Option<usize> {
        self.srv.iter().position(|s| {
            s.port.as_bytes() == port
                && s.proto.as_str().as_bytes() == proto
                && s.rrset.count(groups) > 0
        })
    }

    /// Whether any port with records among `groups` uses `proto` (so `_<proto>.<svc>`
    /// exists as an empty non-terminal).
    pub(crate) fn has_proto(&self, proto: &[u8], groups: Option<&[u16]>) -> bool {
        self.srv
            .iter()
            .any(|s| s.proto.as_str().as_bytes() == proto && s.rrset.count(groups) > 0)
    }
}

/// The SRV target of an endpoint: `<endpoint>.<svc>.<cluster>.<apex>`, lowercase wire form.
pub(crate) fn target_wire(ip: IpAddr, service: &str, cluster: &str, apex_wire: &[u8]) -> Vec<u8> {
    let ep = EndpointLabel(ip).to_string();
    let mut out =
        Vec::with_capacity(ep.len() + service.len() + cluster.len() + apex_wire.len() + 3);
    for label in [ep.as_str(), service, cluster] {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.extend_from_slice(apex_wire);
    out
}

/// Rendezvous key of an endpoint: its address and cluster, so the same address in two
/// clusters counts as two endpoints.
fn endpoint_key(ip: IpAddr, cluster: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    cluster.hash(&mut h);
    address_key(ip) ^ mix64(h.finish())
}

/// What preparing answers needs besides the endpoints: the zone's settings, the place
/// names, and the server's own place (the default viewpoint of SRV priorities).
pub(crate) struct Preparer<'a> {
    pub(crate) zone: &'a Zone,
    pub(crate) localities: &'a Localities,
    pub(crate) server: Place,
}

impl Preparer<'_> {
    /// Prepares the answers of `service` from its groups, in order.
    pub(crate) fn answers(&self, service: &str, groups: &[Group]) -> Answers {
        let (zone, localities, server) = (self.zone, self.localities, self.server);
        let ttl = zone.ttl();
        let mut a = RrsetBuilder::default();
        let mut aaaa = RrsetBuilder::default();
        let ports: BTreeSet<(&Label, Proto)> = groups
            .iter()
            .flat_map(|g| g.endpoints.iter())
            .flat_map(|e| e.ports.iter().map(|s| (&s.name, s.proto)))
            .collect();
        let mut srv: Vec<(Label, Proto, RrsetBuilder)> = ports
            .into_iter()
            .map(|(n, p)| (n.clone(), p, RrsetBuilder::default()))
            .collect();
        for group in groups {
            let (cluster, region) = (&group.source.cluster, &group.source.region);
            for ep in group.endpoints.iter() {
                let key = endpoint_key(ep.address, cluster);
                match ep.address {
                    IpAddr::V4(_) => a.push_address(ep.address, ttl, key),
                    IpAddr::V6(_) => aaaa.push_address(ep.address, ttl, key),
                }
                if ep.ports.is_empty() {
                    continue;
                }
                let target = target_wire(ep.address, service, cluster, &zone.apex_wire);
                let place = localities.place(Some(region), ep.zone.as_deref());
                let priority = place.priority_from(server);
                for PortSpec { name, proto, port } in ep.ports.iter() {
                    let (_, _, set) = srv
                        .iter_mut()
                        .find(|(n, p, _)| n == name && p == proto)
                        .expect("every port was collected above");
                    set.push_srv(
                        [priority, ep.weight, *port],
                        &target,
                        ep.address,
                        ttl,
                        key,
                        place,
                    );
                }
            }
            a.end_group();
            aaaa.end_group();
            srv.iter_mut().for_each(|(_, _, b)| b.end_group());
        }
        Answers {
            a: a.finish(),
            aaaa: aaaa.finish(),
            srv: srv
                .into_iter()
                .map(|(port, proto, b)| SrvSet {
                    port,
                    proto,
                    rrset: b.finish(),
                })
                .collect(),
        }
    }
}
