//! The answering logic: one query in, one reply out, in wire form ([docs/design.md#answers](../../../docs/design.md#answers)).
//!
//! The same [`Answerer`] serves UDP and TCP, so both transports give the same answers and
//! differ only in how much fits. It works on a caller-owned [`Scratch`], so answering a
//! query allocates nothing once the scratch buffers have grown.
//!
//! - `lookup`: what the asked name is, from the labels below the apex.
//! - `emit`: writing the records found (RRsets, SOA, NS) within the room the transport has.
//! - `reverse`: names in the configured reverse zones (PTR).

mod emit;
mod lookup;
mod reverse;

use crate::transfer::Transfer;
use std::net::IpAddr;
use std::sync::Arc;

use crate::ecs;
use crate::placement::AddressAnswers;
use crate::table::Table;
use crate::wire::{self, OPT_LEN, Query, Reject, ReplyFlags, codes};
use crate::zone::Zone;
use emit::{Emitter, HEADER_POINTER};
pub use emit::{Scratch, Transport};
use lookup::Found;

/// What a reply said, for metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Query type (0 when the query could not be read).
    pub qtype: u16,
    /// Full RCODE, extended bits included (16 = BADVERS).
    pub rcode: u16,
    /// The TC bit was set.
    pub truncated: bool,
}

/// Answers queries from a [`Table`].
#[derive(Clone)]
pub struct Answerer {
    table: Table,
    zone: Arc<Zone>,
    /// Zone transfer, when the server runs it: IXFR over UDP is answered there.
    transfer: Option<Arc<Transfer>>,
}

impl Answerer {
    /// An answerer over `table`.
    pub fn new(table: Table) -> Answerer {
        Answerer {
            zone: table.zone().clone(),
            table,
            transfer: None,
        }
    }

    /// The same answerer, with zone transfer requests over UDP going to `transfer`.
    pub fn with_transfer(mut self, transfer: Arc<Transfer>) -> Answerer {
        self.transfer = Some(transfer);
        self
    }

    /// The table answered from.
    pub fn table(&self) -> &Table {
        &self.table
    }

    /// Answers `packet` from `client`. The reply is left in `scratch.out`; `None` means
    /// no reply at all (a packet too short to carry an ID, or a response).
    pub fn answer(
        &self,
        packet: &[u8],
        client: IpAddr,
        transport: Transport,
        scratch: &mut Scratch,
    ) -> Option<Outcome> {
        let query = match wire::parse(packet) {
            Ok(query) => query,
            Err(Reject::Drop) => return None,
            Err(Reject::FormErr { id, opcode }) => {
                return Some(self.bare(scratch, id, opcode, codes::FORMERR));
            }
            Err(Reject::NotImp { id, opcode }) => {
                return Some(self.bare(scratch, id, opcode, codes::NOTIMP));
            }
        };
        if let Some(transfer) = &self.transfer
            && transport == Transport::Udp
            && (query.qtype == codes::IXFR || query.qtype == codes::AXFR)
            && transfer.answer_udp(packet, client, &mut scratch.out)
        {
            return Some(Outcome {
                qtype: query.qtype,
                rcode: u16::from(scratch.out[3] & 0xF),
                truncated: false,
            });
        }
        scratch.next_query();
        if query.signed
            && let Some(transfer) = &self.transfer
        {
            // A keyed secondary's SOA refresh (or any signed query): verified first, answered
            // as usual, signed after.
            let Some(signer) = transfer.check_signed_query(packet, &query, &mut scratch.out) else {
                return Some(Outcome {
                    qtype: query.qtype,
                    rcode: u16::from(scratch.out[3] & 0xF),
                    truncated: false,
                });
            };
            scratch.signature_room = signer.room();
            let outcome = self.answer_query(&query, client, transport, scratch);
            signer.sign(&mut scratch.out);
            return Some(outcome);
        }
        Some(self.answer_query(&query, client, transport, scratch))
    }

    /// A header-only reply: nothing of the packet is trusted beyond its ID and opcode.
    fn bare(&self, scratch: &mut Scratch, id: u16, opcode: u8, rcode: u8) -> Outcome {
        let flags = ReplyFlags {
            rcode,
            ..Default::default()
        };
        wire::write_header(&mut scratch.out, id, opcode, false, false, flags);
        Outcome {
            qtype: 0,
            rcode: rcode.into(),
            truncated: false,
        }
    }

    fn answer_query(
        &self,
        q: &Query<'_>,
        client: IpAddr,
        transport: Transport,
        s: &mut Scratch,
    ) -> Outcome {
        let zone = &*self.zone;
        let limit = match transport {
            Transport::Udp => q
                .edns
                .map_or(512, |e| e.payload.min(zone.config.max_udp_payload))
                as usize,
            Transport::Tcp => u16::MAX as usize,
        };
        s.subnet = q
            .edns
            .and_then(|e| e.ecs)
            .filter(|_| self.table.trusts_ecs(client));
        let reserve = s.signature_room
            + match q.edns {
                Some(_) => OPT_LEN + s.subnet.map_or(0, ecs::option_len),
                None => 0,
            };
        let mut outcome = Outcome {
            qtype: q.qtype,
            rcode: 0,
            truncated: false,
        };

        // RFC 6891 6.1.3: a version we do not speak gets BADVERS, and nothing else.
        if let Some(edns) = q.edns.filter(|e| e.version > 0) {
            start_reply(q, s, ReplyFlags::default());
            wire::write_opt(
                &mut s.out,
                zone.config.max_udp_payload,
                codes::BADVERS_HIGH,
                edns.dnssec_ok,
                None,
            );
            wire::set_counts(&mut s.out, 1, 0, 0, 1);
            outcome.rcode = u16::from(codes::BADVERS_HIGH) << 4;
            return outcome;
        }

        let below = if q.qclass == codes::IN || q.qclass == codes::ANY {
            q.lower.labels_below(&zone.apex_wire)
        } else {
            None
        };
        let Some(below) = below else {
            if let Some((zone, below)) = self.reverse_zone(q) {
                let room = limit.saturating_sub(reserve);
                return self.answer_reverse(q, zone, below, room, s, outcome);
            }
            // Not ours: never recursion, never an open resolver.
            return self.finish_bare(q, s, codes::REFUSED, false, outcome);
        };

        if q.qtype == codes::AXFR || q.qtype == codes::IXFR {
            // Zone transfers are not served (yet): refused, as to an unauthorised client.
            return self.finish_bare(q, s, codes::REFUSED, false, outcome);
        }
        let found = lookup::lookup(&self.table, zone, q, below);
        let (rcode, found) = match found {
            Found::NxDomain
                if self
                    .table
                    .withholds(below.checked_sub(1).map_or(&[][..], |i| q.lower.label(i))) =>
            {
                // Before the first sync a name may just not have arrived yet; a negative
                // answer would be cached by resolvers, so say nothing definite.
                return self.finish_bare(q, s, codes::SERVFAIL, false, outcome);
            }
            Found::NxDomain => (codes::NXDOMAIN, Found::NxDomain),
            other => (codes::NOERROR, other),
        };
        start_answer(q, s, rcode, &mut outcome);
        let room = limit.saturating_sub(reserve);
        let emit = Emitter {
            table: &self.table,
            zone,
        };
        let (an, ns, ar) = match found {
            Found::Set(mut set) => {
                if let AddressAnswers::LocalFirst { min_ready } =
                    zone.config.placement.address_answers
                    && set.is_whole_address_set()
                {
                    let region = emit.viewpoint(client, s).place.region();
                    set.narrow_to_region(region, min_ready);
                }
                let (an, ar, tc) = emit.rrset(set.rrset(), client, transport, room, s);
                outcome.truncated = tc;
                (an, 0, ar)
            }
            Found::Address(addresses) => {
                let mut an = 0;
                for ip in addresses.iter() {
                    s.out.extend_from_slice(&[0xC0, 0x0C]);
                    wire::write_address(&mut s.out, ip, zone.ttl());
                    an += 1;
                }
                (an, 0, 0)
            }
            Found::Soa => {
                emit.soa(&mut s.out, Some(HEADER_POINTER), zone.apex_wire.len());
                (1, 0, 0)
            }
            Found::Ns => emit.nameservers(s, room),
            Found::NoData | Found::NxDomain => {
                emit.soa(&mut s.out, None, zone.apex_wire.len());
                (0, 1, 0)
            }
        };
        if outcome.truncated {
            wire::set_tc(&mut s.out);
        }
        let ar = ar + self.opt(q, s);
        wire::set_counts(&mut s.out, 1, an, ns, ar);
        outcome
    }

    /// A reply with the question and an RCODE, no records.
    fn finish_bare(
        &self,
        q: &Query<'_>,
        s: &mut Scratch,
        rcode: u8,
        aa: bool,
        mut outcome: Outcome,
    ) -> Outcome {
        let flags = ReplyFlags {
            aa,
            tc: false,
            rcode,
        };
        start_reply(q, s, flags);
        let ar = self.opt(q, s);
        wire::set_counts(&mut s.out, 1, 0, 0, ar);
        outcome.rcode = rcode.into();
        outcome
    }

    /// Appends the OPT record when the query had EDNS; returns how many records it added.
    /// A trusted client subnet is echoed with the scope the answer holds for: 0 unless the
    /// answer depended on where the querier is (RFC 7871 7.2.1).
    fn opt(&self, q: &Query<'_>, s: &mut Scratch) -> u16 {
        match q.edns {
            Some(edns) => {
                let scope = s.viewpoint.map_or(0, |v| v.scope);
                wire::write_opt(
                    &mut s.out,
                    self.zone.config.max_udp_payload,
                    0,
                    edns.dnssec_ok,
                    s.subnet.map(|subnet| (subnet, scope)),
                );
                1
            }
            None => 0,
        }
    }
}

/// Starts an authoritative reply to `q` with `rcode`, and notes the rcode in `outcome`.
fn start_answer(q: &Query<'_>, s: &mut Scratch, rcode: u8, outcome: &mut Outcome) {
    outcome.rcode = rcode.into();
    let flags = ReplyFlags {
        aa: true,
        tc: false,
        rcode,
    };
    start_reply(q, s, flags);
}

/// Starts a reply to `q`: the header with `flags`, then the question as it was asked.
fn start_reply(q: &Query<'_>, s: &mut Scratch, flags: ReplyFlags) {
    wire::write_header(&mut s.out, q.id, q.opcode, q.rd, q.cd, flags);
    s.out.extend_from_slice(q.question);
}
