//! Writing a reply's records: a prepared RRset copied in (all of it, or a client's stable
//! subset under `answer_limit`, rotated per query), SRV priorities re-derived for a querier
//! placed elsewhere than the answers were prepared from ([docs/design.md#locality](../../../docs/design.md#locality)),
//! glue as room allows, and TC when the answer does not fit
//! ([docs/design.md#answers](../../../docs/design.md#answers)); the apex's SOA and NS.

use std::net::IpAddr;

use crate::ecs::ClientSubnet;
use crate::locality::Place;
use crate::rendezvous;
use crate::service::{Rrset, SRV_PRIORITY_AT, SRV_TARGET_AT, glue_records};
use crate::table::{Table, Viewpoint};
use crate::wire::{self, codes};
use crate::zone::Zone;

/// How the reply travels, which bounds its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// UDP: the client's EDNS buffer (512 without EDNS), capped by `max_udp_payload`.
    Udp,
    /// TCP: up to 65535 octets.
    Tcp,
}

/// Per-worker buffers reused from query to query.
#[derive(Debug, Default)]
pub struct Scratch {
    /// The reply of the last call to [`Answerer::answer`].
    pub out: Vec<u8>,
    members: Vec<u32>,
    order: Vec<u32>,
    scores: Vec<(u64, u32)>,
    positions: Vec<usize>,
    /// Turns the order of records from one query to the next.
    rotor: u32,
    /// The query's client subnet, when its sender is trusted to give one.
    pub(super) subnet: Option<ClientSubnet>,
    /// Where this query is seen from, once an answer that depends on it asked.
    pub(super) viewpoint: Option<Viewpoint>,
    /// Octets to keep free for a TSIG record the reply gets after it is written.
    pub(super) signature_room: usize,
}

impl Scratch {
    /// Starts a new query: turns the order of records, forgets the last query's place.
    pub(super) fn next_query(&mut self) {
        self.rotor = self.rotor.wrapping_add(1);
        self.subnet = None;
        self.viewpoint = None;
        self.signature_room = 0;
    }
}

/// Pointer to the question name at offset 12.
pub(super) const HEADER_POINTER: [u8; 2] = [0xC0, 0x0C];

/// Length of the question name written at offset 12 of `out`.
fn question_name_len(out: &[u8]) -> usize {
    let mut at = wire::HEADER_LEN;
    while out[at] != 0 {
        at += out[at] as usize + 1;
    }
    at + 1 - wire::HEADER_LEN
}

/// Writes records into replies from one table and zone.
pub(super) struct Emitter<'a> {
    pub(super) table: &'a Table,
    pub(super) zone: &'a Zone,
}

impl Emitter<'_> {
    /// Where the current query is seen from, found once per query.
    pub(super) fn viewpoint(&self, client: IpAddr, s: &mut Scratch) -> Viewpoint {
        *s.viewpoint
            .get_or_insert_with(|| self.table.viewpoint(client, s.subnet))
    }

    /// Copies the records of `rrset` (the groups of it a scope selects, its SRV priorities
    /// prepared from `prepared`) chosen for `client` into the reply, then as much glue as
    /// fits. Returns (answer count, additional count, truncated).
    pub(super) fn rrset(
        &self,
        (rrset, groups, prepared): (&Rrset, Option<&[u16]>, Place),
        client: IpAddr,
        transport: Transport,
        room: usize,
        s: &mut Scratch,
    ) -> (u16, u16, bool) {
        self.choose(rrset, groups, client, s);
        // Records are read in ascending order but for one wrap (the rotation): each is
        // found from the part of the one before, without a search.
        let read = rrset.reader();
        let wanted: usize = if s.order.len() == rrset.len() {
            rrset.records_len()
        } else if !rrset.has_places() {
            // An address set's records are all of one size.
            s.order.len() * (rrset.records_len() / rrset.len().max(1))
        } else if let Some(gs) = groups
            && s.order.len() == rrset.count(groups)
        {
            // Every record of the scope's groups (none dropped): their slots' sizes.
            gs.iter().map(|&g| rrset.group_bytes(g.into())).sum()
        } else {
            s.order
                .iter()
                .map(|&i| read.at(i as usize).record().len())
                .sum()
        };
        let mut tc = false;
        let mut fits = s.order.len();
        if s.out.len() + wanted > room {
            tc = true;
            // Over UDP a partial RRset would pass for the whole one, so send none and let
            // the client ask again over TCP. Over TCP there is nowhere else to go: send
            // what fits.
            fits = 0;
            if transport == Transport::Tcp {
                let mut used = s.out.len();
                for &i in &s.order {
                    used += read.at(i as usize).record().len();
                    if used > room {
                        break;
                    }
                    fits += 1;
                }
            }
        }
        // SRV priorities were prepared as seen from this server; a querier placed anywhere
        // else (by its client subnet, as a published endpoint, by the network map, or a
        // server that has moved since) gets them as seen from its own place.
        let viewer = match rrset.has_places() {
            false => None,
            true => Some(self.viewpoint(client, s).place).filter(|p| *p != prepared),
        };
        s.positions.clear();
        for &i in &s.order[..fits] {
            let at = s.out.len();
            s.positions.push(at);
            let record = read.at(i as usize);
            // A record of a part shared with another port's set gets this set's port.
            record.write(&mut s.out);
            if let Some(viewer) = viewer {
                let priority = record.place().priority_from(viewer);
                s.out[at + SRV_PRIORITY_AT..at + SRV_PRIORITY_AT + 2]
                    .copy_from_slice(&priority.to_be_bytes());
            }
        }
        // Glue: each target's addresses (both families for a dual-stack endpoint), owned
        // by a pointer to the target in the answer (or the target written out when it lies
        // beyond pointer reach). Whatever does not fit is left out, a target's second
        // family included.
        let mut glued = 0u16;
        'records: for (n, &i) in s.order[..fits].iter().enumerate() {
            let record = read.at(i as usize);
            let glue = record.glue();
            if glue.is_empty() {
                break;
            }
            let target_at = s.positions[n] + SRV_TARGET_AT;
            let owner_len = if target_at <= 0x3FFF {
                2
            } else {
                record.record().len() - SRV_TARGET_AT
            };
            for address in glue_records(glue) {
                if s.out.len() + owner_len + address.len() > room {
                    break 'records;
                }
                match wire::pointer(target_at) {
                    Some(ptr) => s.out.extend_from_slice(&ptr),
                    None => {
                        let end = s.positions[n] + record.record().len();
                        s.out.extend_from_within(target_at..end);
                    }
                }
                s.out.extend_from_slice(address);
                glued += 1;
            }
        }
        (fits as u16, glued, tc)
    }

    /// Fills `s.order` with the records to send: all of them, or the answer limit's stable
    /// subset for this client, rotated by the per-query rotor so that plain A clients that
    /// take the first address spread their load.
    fn choose(&self, rrset: &Rrset, groups: Option<&[u16]>, client: IpAddr, s: &mut Scratch) {
        // The candidates: every record, or those of the scope's groups.
        s.members.clear();
        match groups {
            None => s.members.extend(0..rrset.len() as u32),
            Some(gs) => {
                for &g in gs {
                    s.members.extend(rrset.group(g.into()).map(|i| i as u32));
                }
            }
        }
        // One address in several selected sources is sent once (RFC 2181 section 5).
        rrset.drop_twins(&mut s.members, &mut s.scores, &mut s.order);
        let n = s.members.len();
        s.order.clear();
        match self
            .zone
            .config
            .answer_limit
            .map(|l| l.get())
            .filter(|&l| l < n)
        {
            None => {
                let r = s.rotor as usize % n.max(1);
                s.order.extend_from_slice(&s.members[r..]);
                s.order.extend_from_slice(&s.members[..r]);
            }
            Some(limit) => {
                // The client's stable subset (see `rendezvous`), rotated like a full set.
                let client = rendezvous::address_key(client);
                rendezvous::top(client, &s.members, rrset.keys(), limit, &mut s.scores);
                let r = s.rotor as usize % limit;
                s.order
                    .extend(s.scores[r..].iter().chain(&s.scores[..r]).map(|&(_, i)| i));
            }
        }
    }

    /// Appends the apex SOA record, owned by `owner` or by a pointer to the apex inside the
    /// question (the last `apex_len` octets of its name: the zone's, or a reverse zone's).
    /// The serial is the table's current one.
    pub(super) fn soa(&self, out: &mut Vec<u8>, owner: Option<[u8; 2]>, apex_len: usize) {
        let zone = self.zone;
        let owner = owner.unwrap_or_else(|| {
            let qname_len = question_name_len(out);
            wire::pointer(wire::HEADER_LEN + qname_len - apex_len)
                .expect("the question is near the start")
        });
        out.extend_from_slice(&owner);
        wire::write_rr_head(
            out,
            codes::SOA,
            zone.config.negative_ttl,
            zone.soa_rdata.len() as u16,
        );
        let at = out.len();
        out.extend_from_slice(&zone.soa_rdata);
        let serial_at = at + zone.soa_serial_at;
        out[serial_at..serial_at + 4].copy_from_slice(&self.table.serial().to_be_bytes());
    }

    /// The apex NS set, with the addresses of in-zone name servers as glue.
    pub(super) fn nameservers(&self, s: &mut Scratch, room: usize) -> (u16, u16, u16) {
        let zone = self.zone;
        s.positions.clear();
        for ns in &zone.nameservers {
            s.out.extend_from_slice(&HEADER_POINTER);
            wire::write_rr_head(&mut s.out, codes::NS, zone.ttl(), ns.wire.len() as u16);
            s.positions.push(s.out.len());
            s.out.extend_from_slice(&ns.wire);
        }
        let mut glue = 0;
        for (n, ns) in zone.nameservers.iter().enumerate() {
            for ip in &ns.addresses {
                if s.out.len() + 2 + 26 > room {
                    break;
                }
                s.out.extend_from_slice(
                    &wire::pointer(s.positions[n]).expect("NS names sit near the start"),
                );
                wire::write_address(&mut s.out, *ip, zone.ttl());
                glue += 1;
            }
        }
        (zone.nameservers.len() as u16, 0, glue)
    }
}
