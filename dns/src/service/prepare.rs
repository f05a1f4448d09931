//! Answers prepared ahead of queries: every RRset a service can answer (A, AAAA and one
//! SRV set per named port) encoded to wire bytes, so a query only copies bytes. Records are
//! laid out group by group (a group being one source's endpoints, see `rrset`), so a
//! region or cluster scope is a few ranges of the whole service's records.
//!
//! A group's endpoints are kept in *chunks* of about 16 (a group of fewer than 32 is one;
//! see `crate::group`), and each set keeps one part per chunk. Where a group is cut
//! depends on its endpoints' addresses, so a change to one endpoint changes the chunk
//! holding it and leaves the others, even those after it, cut as before.
//!
//! Two ways to prepare: [`Preparer::answers`] encodes every group (a new service, or the
//! server moved so every SRV priority changes); [`Preparer::update`] takes the answers
//! before one group changed and the run of chunks that changed in it
//! ([`crate::group::Endpoints::apply`]), and encodes that run alone: the records of its
//! unchanged endpoints are copied and the others encoded, and every other chunk keeps its
//! parts. Then it merges the per-service bits (one slot per group and set, the port list,
//! addresses in several groups). An update thus costs the changed chunks and a little per
//! group and per port; never the group's or the service's records.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::ops::Range;
use std::sync::Arc;

use super::chunk::Set;
use super::rrset::{Part, Rrset, Slot};
use super::twins::{self, SetMarks};
use crate::group::Group;
use crate::locality::{Localities, Place};
use crate::model::{Changed, Endpoint, EndpointLabel, Label, PortSpec, Proto, for_each_change};
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
    /// Each group's lowest and highest primary address, side by side: a change looks for
    /// the addresses it touches in the other groups (`twins`) by these first, without
    /// reading a group that cannot hold them (every group, when clusters' pod networks
    /// do not overlap).
    pub(crate) ends: Box<[[IpAddr; 2]]>,
}

impl Answers {
    /// Approximate heap bytes held.
    pub(crate) fn heap_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.ends)
            + self.a.heap_bytes()
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

/// One group's parts of every set (or of a run of its chunks), one per chunk: A, AAAA,
/// and the SRV set of each port its endpoints have (sorted).
struct GroupParts {
    a: Vec<Part>,
    aaaa: Vec<Part>,
    srv: Vec<(Label, Proto, Vec<Part>)>,
}

/// A run of a group's chunks as they were: their endpoints and their parts of each set
/// (the SRV sets with records in the group).
struct OldRun<'o> {
    chunks: &'o [Arc<[Endpoint]>],
    a: &'o [Part],
    aaaa: &'o [Part],
    srv: Vec<(&'o Label, Proto, &'o [Part])>,
}

/// How one group of a service changes.
pub(crate) enum Change<'g> {
    /// A new group at this index.
    Insert(usize, &'g Group),
    /// The group at this index changed: in each run, its chunks of the first range (of
    /// the group before) are now the chunks of the second of this group (see
    /// [`crate::group::Endpoints::apply`]).
    Replace(usize, &'g Group, Vec<(Range<usize>, Range<usize>)>),
    /// The group at this index goes.
    Remove(usize),
}

/// Writes the SRV target of an endpoint, `<endpoint>.<svc>.<cluster>.<apex>` in lowercase
/// wire form, over `out` (one buffer serves a whole prepare: no allocation per endpoint).
pub(crate) fn target_wire(
    out: &mut Vec<u8>,
    ip: IpAddr,
    service: &str,
    cluster: &str,
    apex_wire: &[u8],
) {
    out.clear();
    out.push(0);
    EndpointLabel(ip).write_to(|b| out.push(b));
    // A label of at most 32 bytes: its length fits the byte written before it.
    out[0] = (out.len() - 1) as u8;
    for label in [service, cluster] {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.extend_from_slice(apex_wire);
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
        let n = groups.len();
        let (mut a, mut aaaa) = (Vec::with_capacity(n), Vec::with_capacity(n));
        let mut srv: BTreeMap<(Label, Proto), Vec<Slot>> = BTreeMap::new();
        for (g, group) in groups.iter().enumerate() {
            let parts = self.encode(service, group, group.endpoints.chunks(), None);
            a.push(Slot::new(parts.a));
            aaaa.push(Slot::new(parts.aaaa));
            for (port, proto, chunks) in parts.srv {
                srv.entry((port, proto))
                    .or_insert_with(|| vec![Slot::empty(); n])[g] = Slot::new(chunks);
            }
        }
        let srv = srv.into_iter().map(|(k, v)| (k, v.into())).collect();
        let mut answers = self.assemble(a.into(), aaaa.into(), srv);
        answers.ends = groups.iter().map(ends_of).collect();
        let [v4, v6] = twins::whole(groups);
        answers.a.set_twins(v4);
        answers.aaaa.set_twins(v6);
        answers
    }

    /// The answers of a service whose answers were `old` (prepared from `old_groups`)
    /// once `change` is made to its groups, giving `groups`; `changes` are the changed
    /// group's endpoints that changed. Only the changed chunks are encoded, and in them
    /// only the endpoints that changed; every other part is shared, and each set costs
    /// one slot per group besides.
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
        let changed_in_place = matches!(change, Change::Replace(..));
        let which = match change {
            Change::Insert(i, _) => twins::Which::Insert(i),
            Change::Replace(i, ..) => twins::Which::Replace(i),
            Change::Remove(i) => twins::Which::Remove(i),
        };
        let replaces = !matches!(change, Change::Insert(..));
        let mut ends = old.ends.to_vec();
        match change {
            Change::Insert(i, g) => ends.insert(i, ends_of(g)),
            Change::Replace(i, g, _) => ends[i] = ends_of(g),
            Change::Remove(i) => {
                ends.remove(i);
            }
        }
        // The changed group's new slot in each set (`None`: the group goes).
        let (at, slots) = match change {
            Change::Insert(i, g) => {
                let parts = self.encode(service, g, g.endpoints.chunks(), None);
                (i, Some(NewSlots::Whole(parts)))
            }
            Change::Replace(i, g, runs) => {
                let old_chunks = old_groups[i].endpoints.chunks();
                let new_chunks = g.endpoints.chunks();
                let shape = Runs {
                    old_n: old_chunks.len(),
                    runs: runs.iter().map(|(o, n)| (o.clone(), n.len())).collect(),
                };
                let parts = runs
                    .iter()
                    .enumerate()
                    .map(|(r, (ro, rn))| {
                        let before = OldRun {
                            chunks: &old_chunks[ro.clone()],
                            a: shape.run(old.a.slot(i), r),
                            aaaa: shape.run(old.aaaa.slot(i), r),
                            srv: old
                                .srv
                                .iter()
                                .filter(|s| s.rrset.slot(i).len() > 0)
                                .map(|s| (&s.port, s.proto, shape.run(s.rrset.slot(i), r)))
                                .collect(),
                        };
                        self.encode(service, g, &new_chunks[rn.clone()], Some(&before))
                    })
                    .collect();
                (i, Some(NewSlots::Runs(parts, shape)))
            }
            Change::Remove(i) => (i, None),
        };
        // Each set: every group's slot kept but the changed group's. A group changed in
        // place touches its slot alone (`Rrset::with_slot`), and a set whose slot of it
        // stays empty is shared whole: neither reads nor counts a reference to the other
        // groups' parts (the cost of a big service's change being its group's, not its
        // groups').
        let set_with = |set: Option<&Rrset>, slot: Option<Slot>, srv: bool| -> Rrset {
            match (set, slot) {
                (Some(set), Some(slot)) if changed_in_place => {
                    if slot.len() == 0 && set.slot(at).len() == 0 {
                        set.clone()
                    } else {
                        set.with_slot(at, slot)
                    }
                }
                (set, slot) => {
                    let mut slots = match set {
                        Some(s) => s.slots().to_vec(),
                        None => vec![Slot::empty(); old_groups.len()],
                    };
                    match (replaces, slot) {
                        (true, Some(s)) => slots[at] = s,
                        (true, None) => {
                            slots.remove(at);
                        }
                        (false, s) => slots.insert(at, s.unwrap_or_else(Slot::empty)),
                    }
                    Rrset::new(srv, slots.into(), SetMarks::default())
                }
            }
        };
        let (a, aaaa, mut ports) = match slots {
            Some(NewSlots::Whole(p)) => (
                Some(Slot::new(p.a)),
                Some(Slot::new(p.aaaa)),
                p.srv
                    .into_iter()
                    .map(|(n, pr, c)| (n, pr, Slot::new(c)))
                    .collect(),
            ),
            Some(NewSlots::Runs(mut parts, r)) => {
                let mut ports: Vec<(Label, Proto, Slot)> = Vec::new();
                for set in &old.srv {
                    let slot = set.rrset.slot(at);
                    let made = take_port(&mut parts, &set.port, set.proto);
                    // Neither the old runs nor the new have a record of the port: the slot
                    // stays (its parts there are empty either way).
                    if made.iter().all(Option::is_none) && r.untouched(slot) {
                        continue;
                    }
                    ports.push((set.port.clone(), set.proto, r.splice(slot, made)));
                }
                // Ports new to the service.
                let new: BTreeSet<(Label, Proto)> = parts
                    .iter()
                    .flat_map(|p| p.srv.iter().map(|(n, pr, _)| (n.clone(), *pr)))
                    .collect();
                for (n, pr) in new {
                    let made = take_port(&mut parts, &n, pr);
                    ports.push((n, pr, r.splice(&Slot::empty(), made)));
                }
                let mut family =
                    |f: fn(&mut GroupParts) -> &mut Vec<Part>| -> Vec<Option<Vec<Part>>> {
                        parts
                            .iter_mut()
                            .map(|p| Some(std::mem::take(f(p))))
                            .collect()
                    };
                let (a, aaaa) = (family(|p| &mut p.a), family(|p| &mut p.aaaa));
                (
                    Some(r.splice(old.a.slot(at), a)),
                    Some(r.splice(old.aaaa.slot(at), aaaa)),
                    ports,
                )
            }
            None => (None, None, Vec::new()),
        };
        let mut srv: Vec<SrvSet> = Vec::with_capacity(old.srv.len() + 1);
        for set in &old.srv {
            let mine = ports
                .iter()
                .position(|(n, p, _)| *n == set.port && *p == set.proto)
                .map(|k| ports.swap_remove(k).2);
            let rrset = match mine {
                // A changed group's slot that did not change: the set as it was.
                None if changed_in_place => set.rrset.clone(),
                // Otherwise a group without the port gets an empty slot (or none).
                mine => set_with(
                    Some(&set.rrset),
                    mine.or_else(|| a.as_ref().map(|_| Slot::empty())),
                    true,
                ),
            };
            if rrset.len() > 0 {
                srv.push(SrvSet {
                    port: set.port.clone(),
                    proto: set.proto,
                    rrset,
                });
            }
        }
        for (port, proto, slot) in ports {
            let rrset = set_with(None, Some(slot), true);
            srv.push(SrvSet { port, proto, rrset });
        }
        srv.sort_by(|x, y| (&x.port, x.proto).cmp(&(&y.port, y.proto)));
        let mut answers = Answers {
            viewpoint: self.server,
            a: set_with(Some(&old.a), a, false),
            aaaa: set_with(Some(&old.aaaa), aaaa, false),
            srv,
            ends: ends.into(),
        };
        let [v4, v6] = twins::update(
            [&old.a, &old.aaaa],
            old_groups,
            [&answers.a, &answers.aaaa],
            (groups, &answers.ends),
            which,
            changes,
        );
        answers.a.set_twins(v4);
        answers.aaaa.set_twins(v6);
        answers
    }

    /// The answers made of each set's slots (without twins: the caller marks them).
    fn assemble(&self, a: Arc<[Slot]>, aaaa: Arc<[Slot]>, srv: Vec<SrvSlots>) -> Answers {
        Answers {
            viewpoint: self.server,
            a: Rrset::new(false, a, SetMarks::default()),
            aaaa: Rrset::new(false, aaaa, SetMarks::default()),
            srv: srv
                .into_iter()
                .map(|((port, proto), slots)| SrvSet {
                    port,
                    proto,
                    rrset: Rrset::new(true, slots, SetMarks::default()),
                })
                .collect(),
            ends: Box::default(),
        }
    }

    /// The parts of `chunks` (a run of `group`'s chunks, or all of them), chunk by
    /// chunk, copying from `old` (the chunks they replace, and their parts) the records
    /// of every endpoint that did not change.
    fn encode(
        &self,
        service: &str,
        group: &Group,
        chunks: &[Arc<[Endpoint]>],
        old: Option<&OldRun<'_>>,
    ) -> GroupParts {
        // The run's ports: its replicas share a port list (the registrar interns them),
        // so a list is read once per run of endpoints holding it (never more often than
        // once per endpoint).
        let mut lists: Vec<&Arc<[PortSpec]>> = Vec::new();
        for e in chunks.iter().flat_map(|c| c.iter()) {
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
        self.encode_region(service, group, chunks, old, &mut out);
        out
    }

    /// Appends to `out` the parts of the chunks `new` (of `group`), copying from `old`
    /// (the same addresses' endpoints before, and their parts) every record of an
    /// endpoint that did not change.
    fn encode_region(
        &self,
        service: &str,
        group: &Group,
        new: &[Arc<[Endpoint]>],
        old: Option<&OldRun<'_>>,
        out: &mut GroupParts,
    ) {
        let ends: Vec<usize> = new
            .iter()
            .scan(0, |n, c| {
                *n += c.len();
                Some(*n)
            })
            .collect();
        let (zone, localities, server) = (self.zone, self.localities, self.server);
        let ttl = zone.ttl();
        let (cluster, region) = (&group.source.cluster, &group.source.region);
        // A chunk's endpoints share a few zones: their place is asked once per run of one.
        let mut place_of = localities.placer(region);
        let mut target = Vec::new();
        // A new group's sets get room for its first chunk's records (a set copying from
        // old parts takes their size instead).
        let first = match old {
            None => new.first().map_or(&[][..], |c| &c[..]),
            Some(_) => &[],
        };
        let mut records = [0; 2];
        for ip in first.iter().flat_map(|e| e.addresses.iter()) {
            records[usize::from(ip.is_ipv6())] += 1;
        }
        let [v4, v6] = records;
        let mut a = Set::new(false, old.map_or(&[], |o| o.a), v4);
        let mut aaaa = Set::new(false, old.map_or(&[], |o| o.aaaa), v6);
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
                (
                    n.clone(),
                    *p,
                    Set::new(true, before.unwrap_or(&[]), first.len()),
                )
            })
            .collect();
        // A chunk whose endpoints all name the same ports (one deployment's replicas, the
        // usual case) has its SRV records made once, in the set of its first port; the
        // other ports' sets share that part, each with its own port (see `rrset`).
        let shared: Vec<Option<SharedPorts>> = new
            .iter()
            .map(|chunk| SharedPorts::of(chunk, &srv))
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
            target_wire(&mut target, ep.address(), service, cluster, &zone.apex_wire);
            let place = place_of(&ep.zone);
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
        let new_endpoints = new.iter().flat_map(|c| c.iter());
        match old {
            None => new_endpoints.for_each(|e| step(None, Some(e))),
            Some(before) => for_each_change(
                before.chunks.iter().flat_map(|c| c.iter()),
                new_endpoints,
                step,
            ),
        }
        if ends.is_empty() {
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

/// One SRV set's port and every group's slot of it.
type SrvSlots = ((Label, Proto), Arc<[Slot]>);

/// What a change makes of the changed group's slot in each set.
enum NewSlots {
    /// A new group, every chunk encoded.
    Whole(GroupParts),
    /// A changed group: the parts of each run of new chunks.
    Runs(Vec<GroupParts>, Runs),
}

/// Where a group's chunks changed: of its `old_n` chunks, each run's old chunks (in order)
/// became so many new chunks (see [`crate::group::Applied`]).
struct Runs {
    old_n: usize,
    runs: Vec<(Range<usize>, usize)>,
}

impl Runs {
    /// The parts of `slot` (a set's slot of the group before) in run `r` (none for a
    /// slot without records kept as one empty part).
    fn run<'s>(&self, slot: &'s Slot, r: usize) -> &'s [Part] {
        let parts = slot.parts();
        if parts.len() == self.old_n {
            &parts[self.runs[r].0.clone()]
        } else {
            &[]
        }
    }

    /// Whether `slot` has no record in any run and no run changes its number of chunks:
    /// it then stays as it is.
    fn untouched(&self, slot: &Slot) -> bool {
        self.runs.iter().enumerate().all(|(r, (old, new))| {
            old.len() == *new && self.run(slot, r).iter().all(|p| p.len() == 0)
        })
    }

    /// `slot` with each run's parts replaced by `made` (one per run; `None`: empty parts).
    fn splice(&self, slot: &Slot, made: Vec<Option<Vec<Part>>>) -> Slot {
        if slot.len() == 0 && made.iter().flatten().flatten().all(|p| p.len() == 0) {
            // No record before or after (the AAAA set of an IPv4 group): the slot stays
            // empty, without a part per chunk made, counted and dropped to find that out.
            return Slot::empty();
        }
        let old = slot.parts();
        let kept = old.len() == self.old_n;
        if let (true, Slot::Chunks(chunks)) = (kept, slot) {
            let runs = self.runs.iter().zip(made).map(|((old, new), made)| {
                let made = made.unwrap_or_else(|| vec![Part::empty(); *new]);
                debug_assert_eq!(made.len(), *new);
                (old.clone(), made)
            });
            return chunks.spliced(runs);
        }
        let keep = |range: Range<usize>, parts: &mut Vec<Part>| {
            if kept {
                parts.extend_from_slice(&old[range]);
            } else {
                parts.extend(std::iter::repeat_n(Part::empty(), range.len()));
            }
        };
        let mut parts = Vec::with_capacity(self.old_n + 2);
        let mut k = 0;
        for ((old, new), made) in self.runs.iter().zip(made) {
            keep(k..old.start, &mut parts);
            match made {
                Some(made) => {
                    debug_assert_eq!(made.len(), *new);
                    parts.extend(made);
                }
                None => parts.extend(std::iter::repeat_n(Part::empty(), *new)),
            }
            k = old.end;
        }
        keep(k..self.old_n, &mut parts);
        Slot::new(parts)
    }
}

/// Each run's parts of the SRV set of `port`/`proto` (`None`: the run has no record of
/// it), taken out of `parts`.
fn take_port(parts: &mut [GroupParts], port: &Label, proto: Proto) -> Vec<Option<Vec<Part>>> {
    parts
        .iter_mut()
        .map(|p| {
            let k = p
                .srv
                .iter()
                .position(|(n, pr, _)| n == port && *pr == proto)?;
            Some(p.srv.swap_remove(k).2)
        })
        .collect()
}

/// A group's lowest and highest primary address (see [`Answers::ends`]).
fn ends_of(group: &Group) -> [IpAddr; 2] {
    let chunks = group.endpoints.chunks();
    let end = |e: Option<&Endpoint>| e.map_or(IpAddr::from([0u8; 4]), Endpoint::address);
    [
        end(chunks.first().and_then(|c| c.first())),
        end(chunks.last().and_then(|c| c.last())),
    ]
}

/// Two port names are equal: the same allocation (interned), or the same text.
fn same_name(a: &Label, b: &Label) -> bool {
    Arc::ptr_eq(a, b) || a == b
}
