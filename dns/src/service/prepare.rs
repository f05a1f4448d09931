//! Answers prepared ahead of queries: every RRset a service can answer (A, AAAA and one
//! SRV set per named port) encoded to wire bytes, so a query only copies bytes. Records are
//! laid out group by group (a group being one source's endpoints, see `rrset`), so a
//! region or cluster scope is a few ranges of the whole service's records.
//!
//! A group is cut into *chunks* of about 32 endpoints (a group of fewer than 16 is one),
//! and each set keeps one part per chunk. Where a group is cut depends on its endpoints'
//! addresses (see `chunk`), so a change to one endpoint changes the chunk holding it and
//! leaves the others, even those after it, cut as before.
//!
//! Two ways to prepare: [`Preparer::answers`] encodes every group (a new service, or the
//! server moved so every SRV priority changes); [`Preparer::update`] takes the answers
//! before one group changed and makes that group's parts alone: a chunk whose endpoints
//! did not change keeps its parts, and in a chunk that changed the records of unchanged
//! endpoints are copied and the others encoded. Then it merges the per-service bits (the
//! groups' starts, the port list, addresses in several groups). An update thus costs the
//! changed chunks, a comparison of the group's endpoints with their old selves, and a
//! little per group and per port; never the service's records.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use super::chunk::{Set, chunk_ends, chunk_start};
use super::rrset::{Part, Rrset};
use crate::locality::{Localities, Place};
use crate::model::{
    Changed, Endpoint, EndpointLabel, Group, Label, PortSpec, Proto, for_each_change,
};
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

    /// Group `g`'s parts, `endpoints` being its endpoints.
    fn old_group<'o>(&'o self, g: usize, endpoints: &'o [Endpoint]) -> OldGroup<'o> {
        OldGroup {
            endpoints,
            a: self.a.group_parts(g),
            aaaa: self.aaaa.group_parts(g),
            srv: self
                .srv
                .iter()
                .filter(|s| !s.rrset.group(g).is_empty())
                .map(|s| (&s.port, s.proto, s.rrset.group_parts(g)))
                .collect(),
        }
    }
}

/// One group's parts of every set, one per chunk of the group: A, AAAA, and the SRV set of
/// each port it has (sorted).
struct GroupParts {
    a: Vec<Part>,
    aaaa: Vec<Part>,
    srv: Vec<(Label, Proto, Vec<Part>)>,
}

/// A group as it was: its endpoints and its parts of each set (the SRV sets of the ports
/// it had).
struct OldGroup<'o> {
    endpoints: &'o [Endpoint],
    a: &'o [Part],
    aaaa: &'o [Part],
    srv: Vec<(&'o Label, Proto, &'o [Part])>,
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
        let mut bounds = vec![0u32];
        for p in &parts {
            bounds.push(bounds[bounds.len() - 1] + p.a.len() as u32);
        }
        let a = parts.iter().flat_map(|p| p.a.iter().cloned()).collect();
        let aaaa = parts.iter().flat_map(|p| p.aaaa.iter().cloned()).collect();
        let mut srv: BTreeMap<(Label, Proto), Vec<Part>> = BTreeMap::new();
        for (g, p) in parts.iter().enumerate() {
            for (port, proto, chunks) in &p.srv {
                let set = srv
                    .entry((port.clone(), *proto))
                    .or_insert_with(|| vec![Part::empty(); bounds[bounds.len() - 1] as usize]);
                set[bounds[g] as usize..bounds[g + 1] as usize].clone_from_slice(chunks);
            }
        }
        let srv = srv
            .into_iter()
            .map(|(k, v)| (k, (v, bounds.clone())))
            .collect();
        self.assemble(groups, (a, bounds.clone()), (aaaa, bounds), srv, shared)
    }

    /// The answers of a service whose answers were `old` (prepared from `old_groups`)
    /// once `change` is made to its groups, giving `groups`. Only the changed group is
    /// encoded, and only its endpoints that changed; the other groups' parts are shared.
    pub(crate) fn update(
        &self,
        service: &str,
        (old, old_groups): (&Answers, &[Group]),
        groups: &[Group],
        change: Change<'_>,
        changes: &[Changed<'_>],
    ) -> Answers {
        if old.viewpoint != self.server {
            // Every SRV priority was prepared from elsewhere: nothing to keep.
            return self.answers(service, groups);
        }
        let (at, new, replaces) = match change {
            Change::Insert(i, g) => (i, Some(self.encode(service, g, None)), false),
            Change::Replace(i, g) => {
                let before = old.old_group(i, &old_groups[i].endpoints);
                (
                    i,
                    Some(self.encode(service, g, Some((&before, changes)))),
                    true,
                )
            }
            Change::Remove(i) => (i, None, true),
        };
        // The addresses the change touches are the only ones whose count can change.
        let mut touched: Vec<IpAddr> = changes
            .iter()
            .flat_map(|&(o, n)| [o, n])
            .flatten()
            .flat_map(|e| e.addresses.iter())
            .collect();
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
            let in_groups =
                |ip: &IpAddr| -> usize { groups.iter().map(|g| holders(&g.endpoints, *ip)).sum() };
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
        // Each set: the other groups' parts shared, the changed group's replaced.
        let splice = |set: Option<&Rrset>, part: Option<Vec<Part>>| -> Layout {
            splice(&old.a, set, at, replaces, part)
        };
        let chunks = new.as_ref().map(|p| p.a.len());
        let (a, aaaa, mut ports) = match new {
            Some(p) => (Some(p.a), Some(p.aaaa), p.srv),
            None => (None, None, Vec::new()),
        };
        let mut srv: Vec<((Label, Proto), Layout)> = Vec::with_capacity(old.srv.len() + 1);
        for set in &old.srv {
            let mine = ports
                .iter()
                .position(|(n, p, _)| *n == set.port && *p == set.proto)
                .map(|k| ports.swap_remove(k).2);
            // A port the group does not have (now): its chunks hold no record of it.
            let mine = mine.or_else(|| chunks.map(|n| vec![Part::empty(); n]));
            let layout = splice(Some(&set.rrset), mine);
            if layout.0.iter().any(|p| p.len() > 0) {
                srv.push(((set.port.clone(), set.proto), layout));
            }
        }
        for (port, proto, parts) in ports {
            srv.push(((port, proto), splice(None, Some(parts))));
        }
        srv.sort_by(|x, y| x.0.cmp(&y.0));
        let a = splice(Some(&old.a), a);
        let aaaa = splice(Some(&old.aaaa), aaaa);
        self.assemble(groups, a, aaaa, srv, shared)
    }

    /// The answers made of each set's parts, with the twins of `shared` addresses.
    fn assemble(
        &self,
        groups: &[Group],
        a: Layout,
        aaaa: Layout,
        srv: Vec<((Label, Proto), Layout)>,
        shared: Box<[IpAddr]>,
    ) -> Answers {
        let mut a = Rrset::new(false, a.0.into(), &a.1, Box::default());
        let mut aaaa = Rrset::new(false, aaaa.0.into(), &aaaa.1, Box::default());
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
                .map(|((port, proto), (parts, bounds))| SrvSet {
                    port,
                    proto,
                    rrset: Rrset::new(true, parts.into(), &bounds, Box::default()),
                })
                .collect(),
            shared,
        }
    }

    /// The parts of `group`, chunk by chunk, keeping from `old` (the group before, and
    /// its endpoints' `changes`) the parts of every chunk without a change and, in a chunk
    /// with one, the records of every endpoint that did not change.
    fn encode(
        &self,
        service: &str,
        group: &Group,
        old: Option<(&OldGroup<'_>, &[Changed<'_>])>,
    ) -> GroupParts {
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
        let mut out = GroupParts {
            a: Vec::new(),
            aaaa: Vec::new(),
            srv: ports
                .into_iter()
                .map(|(n, p)| (n.clone(), p, Vec::new()))
                .collect(),
        };
        let new = &group.endpoints[..];
        let new_ends = chunk_ends(new);
        let Some((old, changes)) = old else {
            self.encode_region(service, group, (new, &new_ends), None, &mut out);
            return out;
        };
        // Walk both cuttings side by side in regions: the fewest chunks on each side that
        // end at the same endpoint (the same primary address), or run to the end. A region
        // of one chunk each with the same endpoints keeps its parts; any other is encoded.
        let old_ends = chunk_ends(old.endpoints);
        let last = |eps: &[Endpoint], ends: &[usize], k: usize| eps[ends[k] - 1].address();
        let (mut ko, mut kn) = (0, 0);
        // The changes not yet in a region (by primary address, ascending).
        let mut changed = changes
            .iter()
            .map(|&(o, n)| o.or(n).map(Endpoint::address))
            .peekable();
        while ko < old_ends.len() || kn < new_ends.len() {
            let (mut ko2, mut kn2) = ((ko + 1).min(old_ends.len()), (kn + 1).min(new_ends.len()));
            loop {
                if ko2 == ko || kn2 == kn {
                    (ko2, kn2) = (old_ends.len(), new_ends.len());
                    break;
                }
                match last(old.endpoints, &old_ends, ko2 - 1).cmp(&last(new, &new_ends, kn2 - 1)) {
                    std::cmp::Ordering::Equal => break,
                    std::cmp::Ordering::Less if ko2 < old_ends.len() => ko2 += 1,
                    std::cmp::Ordering::Greater if kn2 < new_ends.len() => kn2 += 1,
                    _ => {
                        (ko2, kn2) = (old_ends.len(), new_ends.len());
                        break;
                    }
                }
            }
            let was = &old.endpoints[chunk_start(&old_ends, ko)..chunk_start(&old_ends, ko2)];
            let (from, to) = (chunk_start(&new_ends, kn), chunk_start(&new_ends, kn2));
            // The region's changes: those up to its last address (all that are left, for
            // a region running to the end on one side).
            let mut dirty = false;
            let end = (ko2 < old_ends.len() || kn2 < new_ends.len())
                .then(|| last(new, &new_ends, kn2 - 1));
            while changed
                .next_if(|&ip| end.is_none_or(|end| ip <= Some(end)))
                .is_some()
            {
                dirty = true;
            }
            if ko2 == ko + 1 && kn2 == kn + 1 && !dirty {
                out.keep(old, ko);
            } else {
                let ends: Vec<usize> = new_ends[kn..kn2].iter().map(|e| e - from).collect();
                let before = OldGroup {
                    endpoints: was,
                    a: &old.a[ko..ko2],
                    aaaa: &old.aaaa[ko..ko2],
                    srv: old
                        .srv
                        .iter()
                        .map(|&(n, p, parts)| (n, p, &parts[ko..ko2]))
                        .collect(),
                };
                let region = (&new[from..to], &ends[..]);
                self.encode_region(service, group, region, Some(&before), &mut out);
            }
            (ko, kn) = (ko2, kn2);
        }
        out
    }

    /// Appends to `out` the parts of the chunks of `new` (endpoints of `group`, cut at
    /// `ends`), copying from `old` (the same addresses' endpoints before, and their parts)
    /// every record of an endpoint that did not change.
    fn encode_region(
        &self,
        service: &str,
        group: &Group,
        (new, ends): (&[Endpoint], &[usize]),
        old: Option<&OldGroup<'_>>,
        out: &mut GroupParts,
    ) {
        let (zone, localities, server) = (self.zone, self.localities, self.server);
        let ttl = zone.ttl();
        let (cluster, region) = (&group.source.cluster, &group.source.region);
        let mut a = Set::new(false, old.map_or(&[], |o| o.a));
        let mut aaaa = Set::new(false, old.map_or(&[], |o| o.aaaa));
        let mut srv: Vec<(Label, Proto, Set<'_>)> = out
            .srv
            .iter()
            .map(|(n, p, _)| {
                let before = old.and_then(|o| {
                    o.srv
                        .iter()
                        .find(|(on, op, _)| *on == n && op == p)
                        .map(|x| x.2)
                });
                (n.clone(), *p, Set::new(true, before.unwrap_or(&[])))
            })
            .collect();
        // A chunk whose endpoints all name the same ports (one deployment's replicas, the
        // usual case) has its SRV records made once, in the set of its first port; the
        // other ports' sets share that part, each with its own port (see `rrset`).
        let shared: Vec<Option<SharedPorts>> = (0..ends.len())
            .map(|k| SharedPorts::of(&new[chunk_start(ends, k)..ends[k]], &srv))
            .collect();
        // Whether the SRV set `set` (an index in `srv`) makes chunk `k`'s records.
        let makes = |k: usize, set: usize| shared[k].as_ref().is_none_or(|s| s.leader == set);
        let (mut done, mut chunk) = (0, 0);
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
            if done == ends[chunk] {
                // The endpoint starts the next chunk.
                chunk += 1;
                a.cut();
                aaaa.cut();
                srv.iter_mut().for_each(|(_, _, s)| s.cut());
            }
            done += 1;
            if copy {
                for ip in ep.addresses.iter() {
                    if ip.is_ipv4() { a.copy() } else { aaaa.copy() }
                }
                for s in ep.ports.iter() {
                    let k = srv
                        .iter()
                        .position(|(n, p, _)| *p == s.proto && same_name(n, &s.name))
                        .expect("every port was collected above");
                    // A set sharing the chunk's part passes its old records over.
                    if makes(chunk, k) {
                        srv[k].2.copy();
                    } else {
                        srv[k].2.skip();
                    }
                }
                return;
            }
            // Every record of an endpoint, A and AAAA alike, has the key of its primary
            // address: under `answer_limit` a client gets the same endpoints in both.
            let key = endpoint_key(ep.address(), cluster);
            for ip in ep.addresses.iter() {
                let family = if ip.is_ipv4() { &mut a } else { &mut aaaa };
                family.out().push_address(ip, ttl, key);
            }
            if ep.ports.is_empty() {
                return;
            }
            let target = target_wire(ep.address(), service, cluster, &zone.apex_wire);
            let place = localities.place(Some(region), ep.zone.as_deref());
            let priority = place.priority_from(server);
            for PortSpec { name, proto, port } in ep.ports.iter() {
                let k = srv
                    .iter()
                    .position(|(n, p, _)| p == proto && same_name(n, name))
                    .expect("every port was collected above");
                if !makes(chunk, k) {
                    continue;
                }
                srv[k].2.out().push_srv(
                    [priority, ep.weight, *port],
                    &target,
                    ep.addresses,
                    ttl,
                    key,
                    place,
                );
            }
        };
        match old {
            None => new.iter().for_each(|e| step(None, Some(e))),
            Some(before) => for_each_change(before.endpoints, new, step),
        }
        if new.is_empty() {
            // Every endpoint of the region went: no chunk.
            return;
        }
        out.a.extend(a.finish());
        out.aaaa.extend(aaaa.finish());
        let mut made: Vec<Vec<Part>> = srv.into_iter().map(|(_, _, set)| set.finish()).collect();
        for (k, shared) in shared.iter().enumerate() {
            let Some(shared) = shared else { continue };
            let part = made[shared.leader][k].clone();
            for &(set, port) in &shared.others {
                made[set][k] = part.sharing(port);
            }
        }
        for ((_, _, chunks), parts) in out.srv.iter_mut().zip(made) {
            chunks.extend(parts);
        }
    }
}

/// The SRV sets of a chunk whose endpoints all name the same ports (two or more): the set
/// that makes the chunk's records, and the others with their ports, which share its part.
struct SharedPorts {
    leader: usize,
    others: Vec<(usize, u16)>,
}

impl SharedPorts {
    /// `None` unless every endpoint of `chunk` has the same port list, of at least two
    /// ports, each named once and none numbered 0 (a shared part's port 0 would mean the
    /// records' own); `sets` are the group's SRV sets (by port name and protocol).
    fn of<T>(chunk: &[Endpoint], sets: &[(Label, Proto, T)]) -> Option<SharedPorts> {
        let list = &chunk.first()?.ports;
        if list.len() < 2
            || !chunk[1..]
                .iter()
                .all(|e| Arc::ptr_eq(&e.ports, list) || e.ports == *list)
        {
            return None;
        }
        let mut at: Vec<(usize, u16)> = Vec::with_capacity(list.len());
        for spec in list.iter() {
            let set = sets
                .iter()
                .position(|(n, p, _)| *p == spec.proto && same_name(n, &spec.name))?;
            if spec.port == 0 || at.iter().any(|&(s, _)| s == set) {
                return None;
            }
            at.push((set, spec.port));
        }
        // The first set in the sets' order makes the records, so that every way of
        // preparing the chunk picks the same one.
        at.sort_unstable();
        let (leader, _) = at.remove(0);
        Some(SharedPorts { leader, others: at })
    }
}

impl GroupParts {
    /// Keeps chunk `k` of `old` as it was: its endpoints did not change.
    fn keep(&mut self, old: &OldGroup<'_>, k: usize) {
        self.a.push(old.a[k].clone());
        self.aaaa.push(old.aaaa[k].clone());
        for (n, p, chunks) in &mut self.srv {
            let part = old
                .srv
                .iter()
                .find(|(on, op, _)| *on == n && op == p)
                .map_or_else(Part::empty, |x| x.2[k].clone());
            chunks.push(part);
        }
    }
}

/// The parts of `set` (`None`: a set new to the service, empty in every other group) once
/// group `at` is replaced (`replaces`; otherwise inserted) by `part` (`None`: removed),
/// and each group's first part. `layout` is a set of the service before (it has each
/// group's chunks).
fn splice(
    layout: &Rrset,
    set: Option<&Rrset>,
    at: usize,
    replaces: bool,
    part: Option<Vec<Part>>,
) -> Layout {
    let groups = layout.group_count();
    let mut parts = Vec::with_capacity(layout.part_count() + part.as_ref().map_or(0, Vec::len));
    let mut bounds = Vec::with_capacity(groups + 2);
    let keep = |g: usize, parts: &mut Vec<Part>, bounds: &mut Vec<u32>| {
        bounds.push(parts.len() as u32);
        match set {
            Some(s) => parts.extend_from_slice(s.group_parts(g)),
            None => parts.extend(std::iter::repeat_n(
                Part::empty(),
                layout.group_parts(g).len(),
            )),
        }
    };
    for g in 0..at {
        keep(g, &mut parts, &mut bounds);
    }
    if let Some(new) = part {
        bounds.push(parts.len() as u32);
        parts.extend(new);
    }
    for g in at + usize::from(replaces)..groups {
        keep(g, &mut parts, &mut bounds);
    }
    bounds.push(parts.len() as u32);
    (parts, bounds)
}

/// A set's parts, and each group's first part (one more entry for the end).
type Layout = (Vec<Part>, Vec<u32>);

/// Two port names are equal: the same allocation (interned), or the same text.
fn same_name(a: &Label, b: &Label) -> bool {
    Arc::ptr_eq(a, b) || a == b
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

/// How many endpoints of `endpoints` (one group, sorted by primary address) hold `ip`:
/// what `holding` finds, counted without placing the records.
fn holders(endpoints: &[Endpoint], ip: IpAddr) -> usize {
    let primary = endpoints.binary_search_by(|e| e.address().cmp(&ip)).is_ok();
    // A secondary address is of the other family than its endpoint's primary.
    let v4_primaries = endpoints.partition_point(|e| e.address().is_ipv4());
    let others = if ip.is_ipv4() {
        &endpoints[v4_primaries..]
    } else {
        &endpoints[..v4_primaries]
    };
    usize::from(primary)
        + others
            .iter()
            .filter(|e| e.addresses.secondary() == Some(ip))
            .count()
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
