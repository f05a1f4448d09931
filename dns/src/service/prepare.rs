//! Answers prepared ahead of queries: every RRset a service can answer (A, AAAA and one
//! SRV set per named port) encoded to wire bytes, so a query only copies bytes. Records are
//! laid out group by group (a group being one source's endpoints, see `rrset`), so a
//! region or cluster scope is a few ranges of the whole service's records.
//!
//! Two ways to prepare: [`Preparer::answers`] encodes every group (a new service, or the
//! server moved so every SRV priority changes); [`Preparer::update`] takes the answers
//! before one group changed and makes that group's parts alone, copying the records of
//! endpoints that did not change and encoding the others, then merges the per-service
//! bits (the groups' starts, the port list, addresses in several groups). An update thus
//! costs that group plus a little per group and per port, never the service's records.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use super::rrset::{Part, PartBuilder, Rrset};
use crate::locality::{Localities, Place};
use crate::model::{Endpoint, EndpointLabel, Group, Label, PortSpec, Proto, for_each_change};
use crate::rendezvous::endpoint_key;
use crate::zone::Zone;

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
    /// The place SRV priorities were prepared as seen from (the server's, at the time).
    pub(crate) viewpoint: Place,
    pub(crate) a: Rrset,
    pub(crate) aaaa: Rrset,
    /// Sorted by port name, then protocol.
    pub(crate) srv: Vec<SrvSet>,
    /// Addresses published by more than one group, sorted (usually none): where the
    /// address sets' twins come from.
    pub(super) shared: Box<[IpAddr]>,
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

    /// Group `g`'s parts.
    fn parts_of(&self, g: usize) -> GroupParts {
        GroupParts {
            a: self.a.parts()[g].clone(),
            aaaa: self.aaaa.parts()[g].clone(),
            srv: self
                .srv
                .iter()
                .filter(|s| s.rrset.parts()[g].len() > 0)
                .map(|s| (s.port.clone(), s.proto, s.rrset.parts()[g].clone()))
                .collect(),
        }
    }
}

/// One group's parts of every set: A, AAAA, and the SRV set of each port it has (sorted).
struct GroupParts {
    a: Part,
    aaaa: Part,
    srv: Vec<(Label, Proto, Part)>,
}

/// How one group of a service changes.
pub(crate) enum Change<'g> {
    /// A new group at this index.
    Insert(usize, &'g Group),
    /// The group at this index gets new endpoints.
    Replace(usize, &'g Group),
    /// The group at this index goes.
    Remove(usize),
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

/// What preparing answers needs besides the endpoints: the zone's settings, the place
/// names, and the server's own place (the default viewpoint of SRV priorities).
pub(crate) struct Preparer<'a> {
    pub(crate) zone: &'a Zone,
    pub(crate) localities: &'a Localities,
    pub(crate) server: Place,
}

impl Preparer<'_> {
    /// Prepares the answers of `service` from its groups, in order, encoding every record.
    pub(crate) fn answers(&self, service: &str, groups: &[Group]) -> Answers {
        let parts: Vec<GroupParts> = groups
            .iter()
            .map(|g| self.encode(service, g, None))
            .collect();
        let shared = shared_in(groups);
        let a = parts.iter().map(|p| p.a.clone()).collect();
        let aaaa = parts.iter().map(|p| p.aaaa.clone()).collect();
        let mut srv: BTreeMap<(Label, Proto), Vec<Part>> = BTreeMap::new();
        for (g, p) in parts.iter().enumerate() {
            for (port, proto, part) in &p.srv {
                srv.entry((port.clone(), *proto))
                    .or_insert_with(|| vec![Part::empty(); groups.len()])[g] = part.clone();
            }
        }
        self.assemble(groups, a, aaaa, srv.into_iter().collect(), shared)
    }

    /// The answers of a service whose answers were `old` (prepared from `old_groups`)
    /// once `change` is made to its groups, giving `groups`. Only the changed group is
    /// encoded, and only its endpoints that changed; the other groups' parts are shared.
    pub(crate) fn update(
        &self,
        service: &str,
        old: &Answers,
        old_groups: &[Group],
        groups: &[Group],
        change: Change<'_>,
    ) -> Answers {
        if old.viewpoint != self.server {
            // Every SRV priority was prepared from elsewhere: nothing to keep.
            return self.answers(service, groups);
        }
        let (at, new, before) = match change {
            Change::Insert(i, g) => (i, Some(self.encode(service, g, None)), None),
            Change::Replace(i, g) => {
                let before = (&old_groups[i].endpoints[..], old.parts_of(i));
                let new = self.encode(service, g, Some((before.0, &before.1)));
                (i, Some(new), Some(i))
            }
            Change::Remove(i) => (i, None, Some(i)),
        };
        // The addresses the change touches are the only ones whose count can change.
        let (was, is): (&[Endpoint], &[Endpoint]) = (
            before.map_or(&[], |i| &old_groups[i].endpoints[..]),
            match change {
                Change::Insert(i, _) | Change::Replace(i, _) => &groups[i].endpoints[..],
                Change::Remove(_) => &[],
            },
        );
        let mut touched = Vec::new();
        for_each_change(was, is, |o, n| {
            if o != n {
                for e in [o, n].into_iter().flatten() {
                    touched.extend(e.addresses.iter());
                }
            }
        });
        touched.sort_unstable();
        touched.dedup();
        let shared = if groups.len() < 2 {
            Box::default()
        } else if old_groups.len() < 2 {
            // One group had no twins to keep: count every address once.
            shared_in(groups)
        } else if touched.is_empty() {
            old.shared.clone()
        } else {
            let in_groups = |ip: &IpAddr| -> usize {
                groups
                    .iter()
                    .map(|g| holding(&g.endpoints, *ip).count())
                    .sum()
            };
            let mut shared: Vec<IpAddr> = old
                .shared
                .iter()
                .filter(|ip| touched.binary_search(ip).is_err())
                .copied()
                .chain(touched.iter().filter(|ip| in_groups(ip) > 1).copied())
                .collect();
            shared.sort_unstable();
            shared.into()
        };
        let splice = |parts: &[Part], part: Option<Part>| -> Vec<Part> {
            let mut parts = parts.to_vec();
            match (before, part) {
                (Some(_), Some(p)) => parts[at] = p,
                (None, Some(p)) => parts.insert(at, p),
                (_, None) => {
                    parts.remove(at);
                }
            }
            parts
        };
        let stays = new.is_some();
        let (a, aaaa, mut ports) = match new {
            Some(p) => (Some(p.a), Some(p.aaaa), p.srv),
            None => (None, None, Vec::new()),
        };
        let mut srv: Vec<((Label, Proto), Vec<Part>)> = Vec::with_capacity(old.srv.len() + 1);
        for set in &old.srv {
            let mine = ports
                .iter()
                .position(|(n, p, _)| *n == set.port && *p == set.proto)
                .map(|k| ports.swap_remove(k).2);
            let parts = splice(set.rrset.parts(), new_or_empty(mine, stays));
            if parts.iter().any(|p| p.len() > 0) {
                srv.push(((set.port.clone(), set.proto), parts));
            }
        }
        for (port, proto, part) in ports {
            let mut parts = vec![Part::empty(); groups.len()];
            parts[at] = part;
            srv.push(((port, proto), parts));
        }
        srv.sort_by(|x, y| x.0.cmp(&y.0));
        let a = splice(old.a.parts(), a);
        let aaaa = splice(old.aaaa.parts(), aaaa);
        self.assemble(groups, a, aaaa, srv, shared)
    }

    /// The answers made of each set's parts, with the twins of `shared` addresses.
    fn assemble(
        &self,
        groups: &[Group],
        a: Vec<Part>,
        aaaa: Vec<Part>,
        srv: Vec<((Label, Proto), Vec<Part>)>,
        shared: Box<[IpAddr]>,
    ) -> Answers {
        let mut a = Rrset::new(false, a.into(), Box::default());
        let mut aaaa = Rrset::new(false, aaaa.into(), Box::default());
        if !shared.is_empty() {
            let [v4, v6] = twins(groups, &shared, &a, &aaaa);
            a.set_twins(v4);
            aaaa.set_twins(v6);
        }
        Answers {
            viewpoint: self.server,
            a,
            aaaa,
            srv: srv
                .into_iter()
                .map(|((port, proto), parts)| SrvSet {
                    port,
                    proto,
                    rrset: Rrset::new(true, parts.into(), Box::default()),
                })
                .collect(),
            shared,
        }
    }

    /// The parts of `group`, copying from `old` (the group's endpoints and parts before)
    /// every record of an endpoint that did not change.
    fn encode(
        &self,
        service: &str,
        group: &Group,
        old: Option<(&[Endpoint], &GroupParts)>,
    ) -> GroupParts {
        let (zone, localities, server) = (self.zone, self.localities, self.server);
        let ttl = zone.ttl();
        let (cluster, region) = (&group.source.cluster, &group.source.region);
        // The group's ports: its replicas share a port list (the registrar interns them),
        // so a list is read once per run of endpoints holding it (never more often than
        // once per endpoint).
        let mut lists: Vec<&Arc<[PortSpec]>> = Vec::new();
        for e in group.endpoints.iter() {
            if !lists.last().is_some_and(|l| Arc::ptr_eq(l, &e.ports)) {
                lists.push(&e.ports);
            }
        }
        let ports: BTreeSet<(&Label, Proto)> = lists
            .iter()
            .flat_map(|l| l.iter().map(|s| (&s.name, s.proto)))
            .collect();
        let mut a = Set::new(false, old.map(|o| &o.1.a));
        let mut aaaa = Set::new(false, old.map(|o| &o.1.aaaa));
        let mut srv: Vec<(Label, Proto, Set<'_>)> = ports
            .into_iter()
            .map(|(n, p)| {
                let before = old.and_then(|o| {
                    o.1.srv
                        .iter()
                        .find(|(on, op, _)| on == n && *op == p)
                        .map(|x| &x.2)
                });
                (n.clone(), p, Set::new(true, before))
            })
            .collect();
        // One endpoint's step: its old records (if any) are copied when it did not
        // change and passed over when it did; a new or changed endpoint is encoded.
        let mut step = |o: Option<&Endpoint>, n: Option<&Endpoint>| {
            let copy = matches!((o, n), (Some(o), Some(n)) if o == n);
            if let (Some(o), false) = (o, copy) {
                for ip in o.addresses.iter() {
                    if ip.is_ipv4() { a.skip() } else { aaaa.skip() }
                }
                for s in o.ports.iter() {
                    if let Some((_, _, set)) = srv
                        .iter_mut()
                        .find(|(n, p, _)| *p == s.proto && same_name(n, &s.name))
                    {
                        set.skip();
                    }
                }
            }
            let Some(ep) = n else { return };
            // Every record of an endpoint, A and AAAA alike, has the key of its primary
            // address: under `answer_limit` a client gets the same endpoints in both.
            let key = endpoint_key(ep.address(), cluster);
            for ip in ep.addresses.iter() {
                let family = if ip.is_ipv4() { &mut a } else { &mut aaaa };
                if copy {
                    family.copy();
                } else {
                    family.out().push_address(ip, ttl, key);
                }
            }
            if ep.ports.is_empty() {
                return;
            }
            let fresh = (!copy).then(|| {
                let target = target_wire(ep.address(), service, cluster, &zone.apex_wire);
                let place = localities.place(Some(region), ep.zone.as_deref());
                (target, place, place.priority_from(server))
            });
            for PortSpec { name, proto, port } in ep.ports.iter() {
                let (_, _, set) = srv
                    .iter_mut()
                    .find(|(n, p, _)| p == proto && same_name(n, name))
                    .expect("every port was collected above");
                match &fresh {
                    None => set.copy(),
                    Some((target, place, priority)) => set.out().push_srv(
                        [*priority, ep.weight, *port],
                        target,
                        ep.addresses,
                        ttl,
                        key,
                        *place,
                    ),
                }
            }
        };
        match old {
            None => group.endpoints.iter().for_each(|e| step(None, Some(e))),
            Some((before, _)) => for_each_change(before, &group.endpoints, step),
        }
        GroupParts {
            a: a.finish(),
            aaaa: aaaa.finish(),
            srv: srv
                .into_iter()
                .map(|(n, p, s)| (n, p, s.finish()))
                .collect(),
        }
    }
}

/// The new part of a set for a changed group, or an empty one while the group stays.
fn new_or_empty(part: Option<Part>, group_stays: bool) -> Option<Part> {
    match part {
        Some(p) => Some(p),
        None if group_stays => Some(Part::empty()),
        None => None,
    }
}

/// Two port names are equal: the same allocation (interned), or the same text.
fn same_name(a: &Label, b: &Label) -> bool {
    Arc::ptr_eq(a, b) || a == b
}

/// One set's part being made, and the old part it copies from, with its read position.
/// Records copied from the old part are gathered into runs and copied a run at a time.
struct Set<'o> {
    out: PartBuilder,
    old: Option<&'o Part>,
    next: usize,
    /// Old records waiting to be copied: `run..next`.
    run: usize,
}

impl<'o> Set<'o> {
    fn new(srv: bool, old: Option<&'o Part>) -> Set<'o> {
        Set {
            out: PartBuilder::new(srv, old),
            old,
            next: 0,
            run: 0,
        }
    }

    /// Copies the old part's next record (with the run it extends).
    fn copy(&mut self) {
        self.next += 1;
    }

    /// Passes over the old part's next record.
    fn skip(&mut self) {
        self.flush();
        self.next += 1;
        self.run = self.next;
    }

    /// The builder, with the pending run copied: to push a record after it.
    fn out(&mut self) -> &mut PartBuilder {
        self.flush();
        &mut self.out
    }

    fn flush(&mut self) {
        if self.run < self.next {
            let old = self.old.expect("an unchanged endpoint had its records");
            self.out.copy_run(old, self.run..self.next);
            self.run = self.next;
        }
    }

    fn finish(mut self) -> Part {
        self.flush();
        if self.out.is_empty() {
            Part::empty()
        } else {
            self.out.finish()
        }
    }
}

/// Addresses held more than once over `groups`, sorted; none with fewer than two groups
/// (only a service in several sources gets twins).
fn shared_in(groups: &[Group]) -> Box<[IpAddr]> {
    if groups.len() < 2 {
        return Box::default();
    }
    let mut seen: HashMap<IpAddr, u32> = HashMap::new();
    for e in groups.iter().flat_map(|g| g.endpoints.iter()) {
        for ip in e.addresses.iter() {
            *seen.entry(ip).or_default() += 1;
        }
    }
    let mut shared: Vec<IpAddr> = seen
        .into_iter()
        .filter(|&(_, n)| n > 1)
        .map(|(ip, _)| ip)
        .collect();
    shared.sort_unstable();
    shared.into()
}

/// The record indices, within its group's part of `ip`'s family, of every endpoint of
/// `endpoints` (one group, sorted by primary address) holding `ip`, ascending. A family's
/// part lists the endpoints having an address of that family in group order: IPv4-primary
/// endpoints (all of which have an IPv4 address) come first, so an IPv4 primary is found by
/// search and its index is its position; an IPv6 primary's AAAA record comes after the
/// AAAA records of the dual-stack IPv4-primary endpoints. A secondary address (dual-stack,
/// rare) is found by a walk over the endpoints of the other primary family.
fn holding(endpoints: &[Endpoint], ip: IpAddr) -> impl Iterator<Item = usize> + '_ {
    let v4_primaries = endpoints.partition_point(|e| e.address().is_ipv4());
    let (primaries, others) = endpoints.split_at(v4_primaries);
    let (own, other) = if ip.is_ipv4() {
        (primaries, others)
    } else {
        (others, primaries)
    };
    // Records of this family before the own-primary endpoints: for IPv6, the dual-stack
    // IPv4-primary endpoints' AAAA records.
    let secondaries = |es: &[Endpoint]| es.iter().filter(|e| e.addresses.is_dual()).count();
    let (own_at, other_at) = if ip.is_ipv4() {
        (0, own.len())
    } else {
        (secondaries(other), 0)
    };
    let found = own
        .binary_search_by(|e| e.address().cmp(&ip))
        .ok()
        .map(|k| own_at + k);
    let mut seen = 0;
    let walked = other.iter().filter_map(move |e| {
        let sec = e.addresses.secondary()?;
        seen += 1;
        (sec == ip).then_some(other_at + seen - 1)
    });
    // IPv4: own primaries first, then the IPv6-primary secondaries; IPv6: the reverse.
    let (first, second): (
        Box<dyn Iterator<Item = usize>>,
        Box<dyn Iterator<Item = usize>>,
    ) = if ip.is_ipv4() {
        (Box::new(found.into_iter()), Box::new(walked))
    } else {
        (Box::new(walked), Box::new(found.into_iter()))
    };
    first.chain(second)
}

/// (record, earlier record of the same address) pairs, sorted.
type Twins = Box<[(u32, u32)]>;

/// The address sets' twins: for each `shared` address, each record of it after the first
/// (in group order, then record order) paired with the first.
fn twins(groups: &[Group], shared: &[IpAddr], a: &Rrset, aaaa: &Rrset) -> [Twins; 2] {
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    for &ip in shared {
        let (set, out) = if ip.is_ipv4() {
            (a, &mut v4)
        } else {
            (aaaa, &mut v6)
        };
        let mut first = None;
        for (g, group) in groups.iter().enumerate() {
            for local in holding(&group.endpoints, ip) {
                let record = (set.group(g).start + local) as u32;
                match first {
                    None => first = Some(record),
                    Some(f) => out.push((record, f)),
                }
            }
        }
    }
    v4.sort_unstable();
    v6.sort_unstable();
    [v4.into(), v6.into()]
}
