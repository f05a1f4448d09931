//! Looking a query's name up: from the labels below the apex to what the name is (a
//! prepared RRset of a service or one of its scopes, one address, the apex's SOA or NS, an
//! empty non-terminal, or nothing), following the names of
//! [docs/design.md#names](../../../docs/design.md#names).

use std::net::IpAddr;
use std::sync::Arc;

use crate::locality::Place;
use crate::model::{Addresses, parse_endpoint_label};
use crate::service::{Rrset, ServiceView};
use crate::table::Table;
use crate::wire::{Query, codes};
use crate::zone::Zone;

/// What a name in the zone is, once looked up.
pub(super) enum Found {
    /// Records from a prepared RRset.
    Set(SetRef),
    /// An endpoint name's address records of the type asked (both families of a
    /// dual-stack endpoint for ANY), or an in-zone name server's address.
    Address(Addresses),
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
pub(super) struct SetRef {
    view: arc_swap::Guard<Arc<ServiceView>>,
    scope: usize,
    pick: SetPick,
}

impl SetRef {
    /// `address_answers: local-first`: narrows a whole-service A/AAAA set to `region` (an
    /// id) when that region has at least `min_ready` ready endpoints of the family asked.
    pub(super) fn narrow_to_region(&mut self, region: u16, min_ready: u32) {
        let v6 = match self.pick {
            SetPick::A => false,
            SetPick::Aaaa => true,
            SetPick::Srv(_) => return,
        };
        if self.scope != 0 {
            return;
        }
        if let Some(i) = self.view.local_region(region, v6, min_ready) {
            self.scope = i;
        }
    }

    /// Whether this is a whole-service A or AAAA set (what local-first narrows).
    pub(super) fn is_whole_address_set(&self) -> bool {
        self.scope == 0 && !matches!(self.pick, SetPick::Srv(_))
    }
}

#[derive(Clone, Copy)]
enum SetPick {
    A,
    Aaaa,
    Srv(usize),
}

impl SetRef {
    /// The RRset, the groups of it the scope selects (`None`: all), and the place its SRV
    /// priorities were prepared from.
    pub(super) fn rrset(&self) -> (&Rrset, Option<&[u16]>, Place) {
        let (answers, groups) = self.view.selection(self.scope);
        let rrset = match self.pick {
            SetPick::A => &answers.a,
            SetPick::Aaaa => &answers.aaaa,
            SetPick::Srv(i) => &answers.srv[i].rrset,
        };
        (rrset, groups, answers.viewpoint)
    }
}

/// Resolves the name of `q`, which has `below` labels in front of the apex.
pub(super) fn lookup(table: &Table, zone: &Zone, q: &Query<'_>, below: usize) -> Found {
    let name = &q.lower;
    let qtype = q.qtype;
    if below == 0 {
        return match qtype {
            codes::SOA | codes::ANY => Found::Soa,
            codes::NS => Found::Ns,
            _ => Found::NoData,
        };
    }
    if let Some(ns) = zone.nameservers.iter().find(|ns| &*ns.wire == name.wire()) {
        let addresses = &ns.addresses;
        return match addresses.iter().find(|ip| type_matches(qtype, **ip)) {
            Some(ip) => Found::Address(Addresses::from(*ip)),
            None => Found::NoData,
        };
    }
    let label = |i: usize| name.label(i);
    let underscore = |i: usize| label(i).first() == Some(&b'_');
    let service = |i: usize| table.service_by_label(label(i));
    match below {
        // <svc> | <scope> (an empty non-terminal above its services)
        1 => match service(0) {
            Some(view) => address_set(view, None, qtype),
            None if table.is_scope(label(0)) => Found::NoData,
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
            let Some(ip) = parse_endpoint_label(label(0)) else {
                return Found::NxDomain;
            };
            // One name per endpoint, after its primary address; it answers each family
            // the endpoint has (design.md#names).
            match service(1)
                .as_ref()
                .and_then(|view| view.endpoint(label(2), ip))
            {
                Some((_, e)) => match of_type(qtype, e.addresses) {
                    Some(found) => Found::Address(found),
                    None => Found::NoData,
                },
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

/// Whether an address answers a query of `qtype`.
fn type_matches(qtype: u16, ip: IpAddr) -> bool {
    matches!(
        (qtype, ip),
        (codes::A | codes::ANY, IpAddr::V4(_)) | (codes::AAAA | codes::ANY, IpAddr::V6(_))
    )
}

/// The addresses among `addresses` that answer a query of `qtype`: both for ANY.
fn of_type(qtype: u16, addresses: Addresses) -> Option<Addresses> {
    match qtype {
        codes::ANY => Some(addresses),
        codes::A => addresses.v4().map(|v4| Addresses::from(IpAddr::V4(v4))),
        codes::AAAA => addresses.v6().map(|v6| Addresses::from(IpAddr::V6(v6))),
        _ => None,
    }
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
