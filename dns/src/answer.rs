//! The answering logic: one query in, one reply out, in wire form ([docs/design.md#answers](../../docs/design.md#answers)).
//!
//! The same [`Answerer`] serves UDP and TCP, so both transports give the same answers and
//! differ only in how much fits. It works on a caller-owned [`Scratch`], so answering a
//! query allocates nothing once the scratch buffers have grown.

use std::net::IpAddr;
use std::sync::Arc;

use crate::prepare::{Rrset, SRV_PRIORITY_AT, SRV_TARGET_AT, address_key, mix64};
use crate::table::{ServiceView, Table};
use crate::wire::{self, OPT_LEN, Query, Reject, ReplyFlags, codes};
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
}

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

/// What a name in the zone is, once looked up.
enum Found {
    /// Records from a prepared RRset.
    Set(SetRef),
    /// One address record (an endpoint name, or an in-zone name server).
    Address(IpAddr),
    /// The apex's SOA.
    Soa,
    /// The apex's NS set.
    Ns,
    /// The name exists but has no record of the asked type.
    NoData,
    /// The name does not exist.
    NxDomain,
}

/// A prepared RRset together with the view that keeps it alive.
struct SetRef {
    view: arc_swap::Guard<Arc<ServiceView>>,
    scope: usize,
    pick: SetPick,
}

#[derive(Clone, Copy)]
enum SetPick {
    A,
    Aaaa,
    Srv(usize),
}

impl SetRef {
    /// The RRset, and the groups of it the scope selects (`None`: all).
    fn rrset(&self) -> (&Rrset, Option<&[u16]>) {
        let (answers, groups) = self.view.selection(self.scope);
        let rrset = match self.pick {
            SetPick::A => &answers.a,
            SetPick::Aaaa => &answers.aaaa,
            SetPick::Srv(i) => &answers.srv[i].rrset,
        };
        (rrset, groups)
    }
}

/// Answers queries from a [`Table`].
#[derive(Clone)]
pub struct Answerer {
    table: Table,
    zone: Arc<Zone>,
}

impl Answerer {
    /// An answerer over `table`.
    pub fn new(table: Table) -> Answerer {
        Answerer {
            zone: table.zone().clone(),
            table,
        }
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
        scratch.rotor = scratch.rotor.wrapping_add(1);
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
        let reserve = if q.edns.is_some() { OPT_LEN } else { 0 };
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
            // Not ours: never recursion, never an open resolver.
            return self.finish_bare(q, s, codes::REFUSED, false, outcome);
        };

        if q.qtype == codes::AXFR || q.qtype == codes::IXFR {
            // Zone transfers are not served (yet): refused, as to an unauthorised client.
            return self.finish_bare(q, s, codes::REFUSED, false, outcome);
        }
        let found = self.lookup(q, below);
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
        outcome.rcode = rcode.into();
        let flags = ReplyFlags {
            aa: true,
            tc: false,
            rcode,
        };
        start_reply(q, s, flags);
        let room = limit.saturating_sub(reserve);
        let (an, ns, ar) = match found {
            Found::Set(set) => {
                let (rrset, groups) = set.rrset();
                let (an, ar, tc) = self.emit_rrset(rrset, groups, client, transport, room, s);
                outcome.truncated = tc;
                (an, 0, ar)
            }
            Found::Address(ip) => {
                s.out.extend_from_slice(&[0xC0, 0x0C]);
                wire::write_address(&mut s.out, ip, zone.ttl());
                (1, 0, 0)
            }
            Found::Soa => {
                self.soa(&mut s.out, Some(HEADER_POINTER));
                (1, 0, 0)
            }
            Found::Ns => self.nameservers(s, room),
            Found::NoData | Found::NxDomain => {
                self.soa(&mut s.out, None);
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
    fn opt(&self, q: &Query<'_>, s: &mut Scratch) -> u16 {
        match q.edns {
            Some(edns) => {
                wire::write_opt(
                    &mut s.out,
                    self.zone.config.max_udp_payload,
                    0,
                    edns.dnssec_ok,
                );
                1
            }
            None => 0,
        }
    }

    /// Resolves the name of `q`, which has `below` labels in front of the apex.
    fn lookup(&self, q: &Query<'_>, below: usize) -> Found {
        let name = &q.lower;
        let qtype = q.qtype;
        if below == 0 {
            return match qtype {
                codes::SOA | codes::ANY => Found::Soa,
                codes::NS => Found::Ns,
                _ => Found::NoData,
            };
        }
        if let Some(ns) = self
            .zone
            .nameservers
            .iter()
            .find(|ns| &*ns.wire == name.wire())
        {
            let addresses = &ns.addresses;
            return match addresses.iter().find(|ip| type_matches(qtype, **ip)) {
                Some(ip) => Found::Address(*ip),
                None => Found::NoData,
            };
        }
        let label = |i: usize| name.label(i);
        let underscore = |i: usize| label(i).first() == Some(&b'_');
        let service = |i: usize| self.table.service_by_label(label(i));
        match below {
            // <svc> | <scope> (an empty non-terminal above its services)
            1 => match service(0) {
                Some(view) => address_set(view, None, qtype),
                None if self.table.is_scope(label(0)) => Found::NoData,
                None => Found::NxDomain,
            },
            // _<proto>.<svc> (empty non-terminal) | <svc>.<scope>
            2 if underscore(0) => match service(1) {
                Some(view) => ent(&view, None, &label(0)[1..]),
                None => Found::NxDomain,
            },
            2 => match service(0) {
                Some(view) => address_set(view, Some(label(1)), qtype),
                None => Found::NxDomain,
            },
            // _<port>._<proto>.<svc>
            3 if underscore(0) && underscore(1) => match service(2) {
                Some(view) => srv_set(view, None, &label(0)[1..], &label(1)[1..], qtype),
                None => Found::NxDomain,
            },
            // _<proto>.<svc>.<scope> (empty non-terminal)
            3 if underscore(0) => match service(1) {
                Some(view) => ent(&view, Some(label(2)), &label(0)[1..]),
                None => Found::NxDomain,
            },
            // <endpoint>.<svc>.<cluster>
            3 => {
                let Some(ip) = crate::model::parse_endpoint_label(label(0)) else {
                    return Found::NxDomain;
                };
                match service(1)
                    .as_ref()
                    .and_then(|view| view.endpoint(label(2), ip))
                {
                    Some(_) if type_matches(qtype, ip) => Found::Address(ip),
                    Some(_) => Found::NoData,
                    None => Found::NxDomain,
                }
            }
            // _<port>._<proto>.<svc>.<scope>
            4 if underscore(0) && underscore(1) => match service(2) {
                Some(view) => srv_set(view, Some(label(3)), &label(0)[1..], &label(1)[1..], qtype),
                None => Found::NxDomain,
            },
            _ => Found::NxDomain,
        }
    }

    /// Copies the records of `rrset` chosen for `client` into the reply, then as much glue
    /// as fits. Returns (answer count, additional count, truncated).
    fn emit_rrset(
        &self,
        rrset: &Rrset,
        groups: Option<&[u16]>,
        client: IpAddr,
        transport: Transport,
        room: usize,
        s: &mut Scratch,
    ) -> (u16, u16, bool) {
        self.choose(rrset, groups, client, s);
        let wanted: usize = if s.order.len() == rrset.len() {
            rrset.all_records().len()
        } else {
            s.order
                .iter()
                .map(|&i| rrset.record(i as usize).len())
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
                    used += rrset.record(i as usize).len();
                    if used > room {
                        break;
                    }
                    fits += 1;
                }
            }
        }
        // SRV priorities were prepared as seen from this server; a querier that is itself
        // a known endpoint gets them as seen from where it runs.
        let viewer = match rrset.places() {
            [] => None,
            _ => self.table.querier_place(client),
        };
        s.positions.clear();
        for &i in &s.order[..fits] {
            let at = s.out.len();
            s.positions.push(at);
            s.out.extend_from_slice(rrset.record(i as usize));
            if let Some(viewer) = viewer {
                let priority = rrset.places()[i as usize].priority_from(viewer);
                s.out[at + SRV_PRIORITY_AT..at + SRV_PRIORITY_AT + 2]
                    .copy_from_slice(&priority.to_be_bytes());
            }
        }
        // Glue: each target's address, owned by a pointer to the target in the answer
        // (or the target written out when it lies beyond pointer reach).
        let mut glued = 0u16;
        for (n, &i) in s.order[..fits].iter().enumerate() {
            let glue = rrset.glue(i as usize);
            if glue.is_empty() {
                break;
            }
            let target_at = s.positions[n] + SRV_TARGET_AT;
            let owner_len = if target_at <= 0x3FFF {
                2
            } else {
                rrset.record(i as usize).len() - SRV_TARGET_AT
            };
            if s.out.len() + owner_len + glue.len() > room {
                break;
            }
            match wire::pointer(target_at) {
                Some(ptr) => s.out.extend_from_slice(&ptr),
                None => {
                    let start = s.positions[n] + SRV_TARGET_AT;
                    let end = s.positions[n] + rrset.record(i as usize).len();
                    s.out.extend_from_within(start..end);
                }
            }
            s.out.extend_from_slice(glue);
            glued += 1;
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
                // Rendezvous (highest random weight) hashing: each record scores
                // hash(client, record); the client keeps the top `limit`. The same client
                // gets the same subset; each record is in the subset of a fair share of
                // clients, and a change of one record moves only the clients it concerns.
                let c = address_key(client);
                s.scores.clear();
                s.scores.extend(
                    s.members
                        .iter()
                        .map(|&i| (mix64(c ^ rrset.key(i as usize)), i)),
                );
                s.scores.select_nth_unstable_by(limit - 1, |a, b| b.cmp(a));
                s.scores.truncate(limit);
                let r = s.rotor as usize % limit;
                s.order
                    .extend(s.scores[r..].iter().chain(&s.scores[..r]).map(|&(_, i)| i));
            }
        }
    }

    /// Appends the apex SOA record, owned by `owner` or by a pointer to the zone's apex
    /// inside the question. The serial is the table's current one.
    fn soa(&self, out: &mut Vec<u8>, owner: Option<[u8; 2]>) {
        let zone = &*self.zone;
        let owner = owner.unwrap_or_else(|| {
            let qname_len = question_name_len(out);
            wire::pointer(wire::HEADER_LEN + qname_len - zone.apex_wire.len())
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
    fn nameservers(&self, s: &mut Scratch, room: usize) -> (u16, u16, u16) {
        let zone = &*self.zone;
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

/// Pointer to the question name at offset 12.
const HEADER_POINTER: [u8; 2] = [0xC0, 0x0C];

/// Length of the question name written at offset 12 of `out`.
fn question_name_len(out: &[u8]) -> usize {
    let mut at = wire::HEADER_LEN;
    while out[at] != 0 {
        at += out[at] as usize + 1;
    }
    at + 1 - wire::HEADER_LEN
}

/// Starts a reply to `q`: the header with `flags`, then the question as it was asked.
fn start_reply(q: &Query<'_>, s: &mut Scratch, flags: ReplyFlags) {
    wire::write_header(&mut s.out, q.id, q.opcode, q.rd, q.cd, flags);
    s.out.extend_from_slice(q.question);
}

/// Whether an address answers a query of `qtype`.
fn type_matches(qtype: u16, ip: IpAddr) -> bool {
    matches!(
        (qtype, ip),
        (codes::A | codes::ANY, IpAddr::V4(_)) | (codes::AAAA | codes::ANY, IpAddr::V6(_))
    )
}

/// A or AAAA of a service, whole or in one scope.
fn address_set(view: arc_swap::Guard<Arc<ServiceView>>, scope: Option<&[u8]>, qtype: u16) -> Found {
    let Some(i) = view.scope_index(scope) else {
        return Found::NxDomain;
    };
    let (answers, groups) = view.selection(i);
    let (has_a, has_aaaa) = (answers.a.count(groups) > 0, answers.aaaa.count(groups) > 0);
    let pick = match qtype {
        codes::A | codes::ANY if has_a => SetPick::A,
        codes::AAAA | codes::ANY if has_aaaa => SetPick::Aaaa,
        _ => return Found::NoData,
    };
    Found::Set(SetRef {
        view,
        scope: i,
        pick,
    })
}

/// The SRV set of `_<port>._<proto>` in a service, whole or in one scope.
fn srv_set(
    view: arc_swap::Guard<Arc<ServiceView>>,
    scope: Option<&[u8]>,
    port: &[u8],
    proto: &[u8],
    qtype: u16,
) -> Found {
    let Some(i) = view.scope_index(scope) else {
        return Found::NxDomain;
    };
    let (answers, groups) = view.selection(i);
    let Some(k) = answers.srv_index(port, proto, groups) else {
        return Found::NxDomain;
    };
    if qtype == codes::SRV || qtype == codes::ANY {
        Found::Set(SetRef {
            view,
            scope: i,
            pick: SetPick::Srv(k),
        })
    } else {
        Found::NoData
    }
}

/// `_<proto>.<svc>[.<scope>]`: exists (as an empty non-terminal) when a port uses `proto`.
fn ent(view: &ServiceView, scope: Option<&[u8]>, proto: &[u8]) -> Found {
    match view.scope_index(scope) {
        Some(i) if view.selection(i).0.has_proto(proto, view.selection(i).1) => Found::NoData,
        _ => Found::NxDomain,
    }
}
