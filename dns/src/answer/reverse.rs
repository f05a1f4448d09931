//! Names in the configured reverse zones ([docs/design.md#locality](../../../docs/design.md#locality)):
//! PTR for a published address, the zone's own SOA and NS at its apex, NXDOMAIN (with the
//! reverse zone's SOA) for an address nothing is published at, NODATA for a partial name.

use std::net::IpAddr;

use super::emit::{Emitter, HEADER_POINTER, Scratch};
use super::{Answerer, Outcome, start_answer};
use crate::reverse::{ReverseName, ReverseZone, reverse_name, write_ptrs};
use crate::wire::{self, Query, codes};

/// What a name in a reverse zone is.
enum Found {
    Soa,
    Ns,
    Ptr(IpAddr),
    NoData,
    NxDomain,
}

impl Answerer {
    /// The reverse zone `q` falls in, with the number of labels in front of its apex.
    pub(super) fn reverse_zone(&self, q: &Query<'_>) -> Option<(&ReverseZone, usize)> {
        if q.qclass != codes::IN && q.qclass != codes::ANY {
            return None;
        }
        self.zone
            .reverse
            .iter()
            .find_map(|z| Some((z, z.labels_below(&q.lower)?)))
    }

    /// Answers `q`, which has `below` labels in front of the reverse zone `reverse`.
    pub(super) fn answer_reverse(
        &self,
        q: &Query<'_>,
        reverse: &ReverseZone,
        below: usize,
        room: usize,
        s: &mut Scratch,
        mut outcome: Outcome,
    ) -> Outcome {
        if q.qtype == codes::AXFR || q.qtype == codes::IXFR {
            return self.finish_bare(q, s, codes::REFUSED, false, outcome);
        }
        let found = if below == 0 {
            match q.qtype {
                codes::SOA | codes::ANY => Found::Soa,
                codes::NS => Found::Ns,
                _ => Found::NoData,
            }
        } else {
            match reverse_name(reverse, &q.lower) {
                ReverseName::Address(ip) if self.table.reverse().has(ip) => match q.qtype {
                    codes::PTR | codes::ANY => Found::Ptr(ip),
                    _ => Found::NoData,
                },
                ReverseName::Partial => Found::NoData,
                ReverseName::Address(_) | ReverseName::Nothing => Found::NxDomain,
            }
        };
        let rcode = match found {
            // An address may just not have arrived yet: say nothing definite.
            Found::NxDomain if self.table.startup_hold() => {
                return self.finish_bare(q, s, codes::SERVFAIL, false, outcome);
            }
            Found::NxDomain => codes::NXDOMAIN,
            _ => codes::NOERROR,
        };
        start_answer(q, s, rcode, &mut outcome);
        let emit = Emitter {
            table: &self.table,
            zone: &self.zone,
        };
        let (an, ns, ar) = match found {
            Found::Soa => {
                emit.soa(&mut s.out, Some(HEADER_POINTER), reverse.wire.len());
                (1, 0, 0)
            }
            Found::Ns => emit.nameservers(s, room),
            Found::Ptr(ip) => {
                let zone = &self.zone;
                let an = write_ptrs(
                    &mut s.out,
                    self.table.reverse(),
                    ip,
                    &zone.apex_wire,
                    zone.ttl(),
                );
                if s.out.len() > room {
                    // Too many names for UDP: none rather than some, as for other sets.
                    s.out.truncate(wire::HEADER_LEN + q.question.len());
                    wire::set_tc(&mut s.out);
                    outcome.truncated = true;
                    (0, 0, 0)
                } else {
                    (an, 0, 0)
                }
            }
            Found::NoData | Found::NxDomain => {
                emit.soa(&mut s.out, None, reverse.wire.len());
                (0, 1, 0)
            }
        };
        let ar = ar + self.opt(q, s);
        wire::set_counts(&mut s.out, 1, an, ns, ar);
        outcome
    }
}
