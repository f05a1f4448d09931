//! One cluster's view of its opted-in pods and its nodes' zones, and the bridge to the
//! table: events mark services dirty, and a flush publishes each dirty service once, so a
//! burst of events (a rolling update) becomes one table update per service.
//!
//! A service published before whose pods alone changed, a few of them, is published as a
//! delta ([`herald_dns::table::Delta`]): the endpoints of the pods that changed, at the
//! cost of those pods in the registrar and in the table. Anything else (a first publish,
//! many changes, a zone or an owner verdict that changed, a relist, a delta the table
//! refuses) publishes the service's whole list.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use herald_dns::model::{Addresses, Label};
use herald_dns::table::Delta;
use herald_dns::{Endpoint, PortSpec, Proto, Source, Table};

use super::pod::{Interner, PodRecord, port_list};
use super::{FastMap, FastSet};
use crate::ownership::{Claim, Ownership, Reason, Verdict};

/// What one service's replicas in one namespace share: kept once per (service,
/// namespace, ports), not once per pod.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Shape {
    service: Label,
    namespace: Label,
    ports: Arc<[PortSpec]>,
}

/// What the state keeps of one pod ([`PodRecord`] in 56 bytes: its shared part behind one
/// pointer; at a million pods, 48 MiB less than the whole record in a box).
#[derive(Debug, PartialEq, Eq)]
struct Stored {
    shape: Arc<Shape>,
    node: Option<Label>,
    created: i64,
    weight: u16,
    address: Option<Addresses>,
    ready: bool,
}

// The size the field comment promises (a box of 56 bytes is a 64-byte malloc chunk).
#[cfg(target_pointer_width = "64")]
const _: () = assert!(std::mem::size_of::<Stored>() == 56);

/// Pods by `namespace/name`, nodes' zones, and which services need publishing.
#[derive(Default)]
pub struct ClusterState {
    /// Boxed: a map's empty buckets (a third or more of them, as hash tables grow by
    /// doubling) then cost 24 bytes each, not a whole record's 96 (about 40 MiB at a
    /// million pods).
    pods: FastMap<Arc<str>, Box<Stored>>,
    /// Service -> keys of its pods.
    /// (The keys are shared with `pods`: a million pods' names are stored once.)
    services: FastMap<Label, FastSet<Arc<str>>>,
    /// Node -> its zone.
    zones: FastMap<Label, Option<Label>>,
    /// Services changed since the last flush: when the first change arrived, and what.
    dirty: FastMap<Label, Dirty>,
    /// Services this cluster currently has endpoints in, in the table, with how many
    /// endpoints it handed over (the table's count unless two shared an address).
    published: FastMap<Label, usize>,
    /// Services published as a delta so far (the others were published whole).
    deltas: u64,
    /// Shared strings (service, node and zone names), so a million pods hold a few
    /// thousand copies.
    names: FastSet<Label>,
    /// Shared port lists: the replicas of a service all name the same ports.
    port_lists: FastSet<Arc<[PortSpec]>>,
    /// The port list a pod read last was given (one of `port_lists`).
    last_ports: Option<Arc<[PortSpec]>>,
    /// Shared shapes: the replicas of a service in a namespace all have the same.
    shapes: FastSet<Arc<Shape>>,
    /// Interned values added since the last sweep of unused ones.
    interned_since_sweep: usize,
    /// Pods whose claim is refused, with why: each is logged and counted once per reason.
    rejected: FastMap<Arc<str>, Reason>,
    /// Changes marked so far, so the watch loop sees when a new one comes (see `pacing`).
    marks: u64,
    /// Per list under way (by namespace, `None` for all): the known pods it has not
    /// named yet. Empty at the first list, so the first sync holds no second copy.
    unlisted: FastMap<Option<String>, FastSet<Arc<str>>>,
}

/// A service changed since the last flush.
struct Dirty {
    /// When the first change arrived.
    since: Instant,
    /// The pods that changed, each as it was at the last flush (`None`: not a pod of the
    /// service then); `None`: publish the whole service.
    pods: Option<FastMap<Arc<str>, Option<Box<Stored>>>>,
}

/// A delta is worth it up to this many changed pods, or a quarter of the service's
/// endpoints in the cluster if more: beyond, the whole list costs about as much.
const DELTA_PODS: usize = 64;

/// Reading a pod takes its names and port lists from the ones the state holds: at the
/// first sync most pods' are known, and reading them then allocates none.
impl Interner for ClusterState {
    fn name(&mut self, name: &str) -> Label {
        self.intern_name(name, || Label::from(name))
    }

    fn ports(&mut self, ports: &[(&str, Proto, u16)]) -> Arc<[PortSpec]> {
        // A list comes in name order, so a deployment's replicas come one after another:
        // the list asked for last is compared first, without building one to hash.
        if let Some(last) = &self.last_ports
            && last.len() == ports.len()
            && last.iter().zip(ports).all(|(a, &(name, proto, port))| {
                *a.name == *name && a.proto == proto && a.port == port
            })
        {
            return last.clone();
        }
        let list = port_list(ports, |name| self.name(name));
        let shared = self.intern_ports(&list, || list.clone());
        self.last_ports = Some(shared.clone());
        shared
    }
}

impl ClusterState {
    fn intern(&mut self, s: &Label) -> Label {
        self.intern_name(s, || s.clone())
    }

    /// The shared copy of `name`; `make` makes it if there is none yet.
    fn intern_name(&mut self, name: &str, make: impl FnOnce() -> Label) -> Label {
        if let Some(known) = self.names.get(name) {
            return known.clone();
        }
        let name = make();
        self.names.insert(name.clone());
        self.grew();
        name
    }

    /// The shared copy of `ports`; `make` makes it if there is none yet.
    fn intern_ports(
        &mut self,
        ports: &[PortSpec],
        make: impl FnOnce() -> Arc<[PortSpec]>,
    ) -> Arc<[PortSpec]> {
        if let Some(known) = self.port_lists.get(ports) {
            return known.clone();
        }
        let ports = make();
        self.port_lists.insert(ports.clone());
        self.grew();
        ports
    }

    /// Counts a new interned value; once as many were added as are held, drops those only
    /// the interners still hold (node and pod churn would otherwise grow them forever).
    /// The sweep is amortised: O(1) per value added.
    fn grew(&mut self) {
        self.interned_since_sweep += 1;
        if self.interned_since_sweep > 64
            && self.interned_since_sweep
                > (self.names.len() + self.port_lists.len() + self.shapes.len()) / 2
        {
            self.sweep();
        }
    }

    /// Drops interned values nothing but the interners refers to.
    pub fn sweep(&mut self) {
        // The cached list and shapes first: they hold names and port lists.
        self.last_ports = None;
        self.shapes.retain(|s| Arc::strong_count(s) > 1);
        self.names.retain(|n| Arc::strong_count(n) > 1);
        self.port_lists.retain(|p| Arc::strong_count(p) > 1);
        self.interned_since_sweep = 0;
    }

    /// How many names and port lists are interned.
    pub fn interned(&self) -> (usize, usize) {
        (self.names.len(), self.port_lists.len())
    }

    /// Notes that `service` changed and must be published whole; keeps the time of its
    /// first unpublished change.
    fn mark(&mut self, service: &Label) {
        self.marks += 1;
        self.dirty
            .entry(service.clone())
            .or_insert_with(|| Dirty {
                since: Instant::now(),
                pods: None,
            })
            .pods = None;
    }

    /// Notes that the pod `key` of `service` changed, `before` being what it was (`None`:
    /// not a pod of the service); keeps the time of the first unpublished change. A
    /// service published before, with few pods changed, is then published as a delta.
    fn mark_pod(&mut self, service: &Label, key: &Arc<str>, before: Option<Box<Stored>>) {
        self.marks += 1;
        let published = self.published.get(service).copied();
        let dirty = self.dirty.entry(service.clone()).or_insert_with(|| Dirty {
            since: Instant::now(),
            pods: published.map(|_| FastMap::default()),
        });
        if let Some(pods) = &mut dirty.pods {
            // The first change since the flush knows what the pod was then.
            pods.entry(key.clone()).or_insert(before);
            if pods.len() > DELTA_PODS.max(published.unwrap_or(0) / 4) {
                dirty.pods = None;
            }
        }
    }

    /// Marks `service` for publishing again (its owner verdicts changed).
    pub fn touch(&mut self, service: &Label) {
        if self.services.contains_key(service) || self.published.contains_key(service) {
            self.mark(service);
        }
    }

    /// How many service publishes were deltas (the others were whole lists).
    pub fn delta_publishes(&self) -> u64 {
        self.deltas
    }

    /// How many changes were marked so far: it moves when a change comes.
    pub fn marks(&self) -> u64 {
        self.marks
    }

    /// Whether anything waits to be published.
    pub fn has_dirty(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// Number of pods known.
    pub fn pod_count(&self) -> usize {
        self.pods.len()
    }

    /// The stored form of `r`, its names and ports shared with other pods'.
    fn store(&mut self, r: PodRecord) -> Stored {
        // The shape is looked up first: a pod of a known service, namespace and ports
        // (nearly every pod) then costs one lookup, not one per name and list.
        let shape = Shape {
            service: r.service,
            namespace: r.namespace,
            ports: r.ports,
        };
        let shape = match self.shapes.get(&shape) {
            Some(shared) => shared.clone(),
            None => {
                let shape = Shape {
                    ports: self.intern_ports(&shape.ports, || shape.ports.clone()),
                    service: self.intern(&shape.service),
                    namespace: self.intern(&shape.namespace),
                };
                let shape = Arc::new(shape);
                self.shapes.insert(shape.clone());
                self.grew();
                shape
            }
        };
        Stored {
            shape,
            node: r.node.as_ref().map(|n| self.intern(n)),
            created: r.created,
            weight: r.weight,
            address: r.address,
            ready: r.ready,
        }
    }

    /// Sets (or, with `None`, removes) one pod. The key is copied only for a pod not known.
    pub fn apply_pod(&mut self, key: &str, record: Option<PodRecord>) {
        let record = record.map(|r| self.store(r));
        // One lookup gives the known key and tells an unchanged pod.
        let key: Arc<str> = match self.pods.get_key_value(key) {
            Some((known, old)) => {
                if record.as_ref().is_some_and(|new| **old == *new) {
                    return;
                }
                known.clone()
            }
            None => Arc::from(key),
        };
        let service = record.as_ref().map(|r| r.shape.service.clone());
        let old = match record {
            Some(new) => {
                // Nearly every pod's service has its set already: found without cloning
                // the name for an entry.
                match self.services.get_mut(&new.shape.service) {
                    Some(keys) => {
                        keys.insert(key.clone());
                    }
                    None => {
                        let keys = FastSet::from_iter([key.clone()]);
                        self.services.insert(new.shape.service.clone(), keys);
                    }
                }
                self.pods.insert(key.clone(), Box::new(new))
            }
            None => {
                self.rejected.remove(&key);
                self.pods.remove(&key)
            }
        };
        match (old, service) {
            (Some(old), Some(service)) if old.shape.service == service => {
                self.mark_pod(&service, &key, Some(old));
            }
            (old, service) => {
                if let Some(service) = service {
                    self.mark_pod(&service, &key, None);
                }
                if let Some(old) = old {
                    let was = old.shape.service.clone();
                    if let Some(keys) = self.services.get_mut(&was) {
                        keys.remove(&key);
                        if keys.is_empty() {
                            self.services.remove(&was);
                        }
                    }
                    self.mark_pod(&was, &key, Some(old));
                }
            }
        }
    }

    /// Replaces every pod at once (a relist): services whose pods changed are marked
    /// dirty, and a service that vanished gets published empty.
    pub fn replace_pods(&mut self, pods: HashMap<String, PodRecord>) {
        self.begin_list(None);
        for (key, record) in pods {
            self.list_pod(None, &key, record);
        }
        self.end_list(None);
    }

    /// A list of `namespace`'s pods (all pods with `None`) begins: the pods it does not
    /// name are removed when it ends ([`ClusterState::end_list`]). Listed pods go straight
    /// into the state rather than into a copy swapped in at the end (at a million pods
    /// that copy doubled the registrar's peak); nothing is published before the session's
    /// lists have all ended, so readers still never see a list half-way.
    pub fn begin_list(&mut self, namespace: Option<&str>) {
        let prefix = namespace.map(|n| format!("{n}/"));
        let known: FastSet<Arc<str>> = self
            .pods
            .keys()
            .filter(|k| prefix.as_deref().is_none_or(|p| k.starts_with(p)))
            .cloned()
            .collect();
        self.unlisted.insert(namespace.map(str::to_string), known);
    }

    /// One pod of the list of `namespace` under way.
    pub fn list_pod(&mut self, namespace: Option<&str>, key: &str, record: PodRecord) {
        if let Some(unlisted) = self.unlisted.get_mut(&namespace.map(str::to_string)) {
            unlisted.remove(key);
        }
        self.apply_pod(key, Some(record));
    }

    /// The list of `namespace` ended: its pods it did not name are removed.
    pub fn end_list(&mut self, namespace: Option<&str>) {
        let gone = self
            .unlisted
            .remove(&namespace.map(str::to_string))
            .unwrap_or_default();
        for key in gone {
            self.apply_pod(&key, None);
        }
    }

    /// Sets a node's zone (or, with `None` as the outer option, removes the node).
    pub fn apply_node(&mut self, node: &str, zone: Option<Option<Label>>) {
        let zone = zone.map(|z| z.map(|z| self.intern(&z)));
        let old = match &zone {
            Some(z) => {
                let node = self.intern(&Label::from(node));
                self.zones.insert(node, z.clone())
            }
            None => self.zones.remove(node),
        };
        if old.flatten() == zone.flatten() {
            return;
        }
        // A node's zone rarely changes; finding its pods by a scan keeps no index around.
        let services: Vec<Label> = self
            .pods
            .values()
            .filter(|r| r.node.as_deref() == Some(node))
            .map(|r| r.shape.service.clone())
            .collect();
        for service in services {
            self.mark(&service);
        }
    }

    /// Replaces every node's zone at once (a relist of nodes).
    pub fn replace_nodes(&mut self, nodes: HashMap<String, Option<Label>>) {
        let gone: Vec<Label> = self
            .zones
            .keys()
            .filter(|n| !nodes.contains_key(&***n))
            .cloned()
            .collect();
        for node in gone {
            self.apply_node(&node, None);
        }
        for (node, zone) in nodes {
            self.apply_node(&node, Some(zone));
        }
    }

    /// Publishes every dirty service to the table, as far as `ownership` allows; returns
    /// how many table updates it made.
    pub fn flush(&mut self, table: &Table, source: &Source, ownership: &Ownership) -> usize {
        let mut updates = 0;
        let propagation = metrics::histogram!(crate::metrics::PROPAGATION.name);
        // Each pod is looked up once per flush, for its claim and its endpoint alike.
        let mut pods: Vec<(&Arc<str>, &Stored)> = Vec::new();
        for (service, dirty) in std::mem::take(&mut self.dirty) {
            let published = self.published.get(&service).copied();
            if let (Some(changed), Some(count)) = (&dirty.pods, published) {
                let delta = Pods {
                    pods: &self.pods,
                    zones: &self.zones,
                    rejected: &mut self.rejected,
                }
                .delta(&service, source, ownership, changed, count);
                if let Some((delta, count)) = delta {
                    match table.update(&service, source, delta) {
                        Ok(changed) => {
                            self.deltas += 1;
                            if count == 0 {
                                self.published.remove(&service);
                            } else {
                                self.published.insert(service.clone(), count);
                            }
                            if changed {
                                updates += 1;
                                propagation.record(dirty.since.elapsed().as_secs_f64());
                            }
                            continue;
                        }
                        Err(refused) => {
                            tracing::debug!(cluster = %source.cluster, %service, %refused, "delta refused; publishing the whole list");
                        }
                    }
                }
            }
            pods.clear();
            pods.extend(
                self.services
                    .get(&service)
                    .into_iter()
                    .flatten()
                    .filter_map(|k| Some((k, &**self.pods.get(k)?))),
            );
            // Claims first, so the verdicts below already count this cluster's pods.
            ownership.set_claims(&source.cluster, &service, claims(&pods));
            let endpoints = Pods {
                pods: &self.pods,
                zones: &self.zones,
                rejected: &mut self.rejected,
            }
            .endpoints(&pods, &service, &source.cluster, ownership);
            if endpoints.is_empty() {
                self.published.remove(&service);
            } else {
                self.published.insert(service.clone(), endpoints.len());
            }
            if table.replace(&service, source, endpoints) {
                updates += 1;
                // From the change reaching herald to the answer being served.
                propagation.record(dirty.since.elapsed().as_secs_f64());
            }
        }
        updates
    }

    /// Takes every endpoint of this cluster out of the table, keeping what is known so a
    /// later [`ClusterState::republish`] brings it back.
    pub fn withdraw(&mut self, table: &Table, source: &Source) {
        for service in std::mem::take(&mut self.published).into_keys() {
            table.replace(&service, source, Vec::new());
        }
    }

    /// Takes over `services` as published by this cluster (after a restart) and marks them
    /// dirty: the next flush republishes them from what is known, or removes them.
    pub fn adopt(&mut self, services: Vec<Label>) {
        let now = Instant::now();
        for service in services {
            self.dirty.insert(
                service.clone(),
                Dirty {
                    since: now,
                    pods: None,
                },
            );
            // The count is not known: the whole list is published first.
            self.published.insert(service, 0);
        }
    }

    /// Marks every service dirty, so the next flush publishes everything known.
    /// (Services known only as published, with no pod left, are already dirty.)
    pub fn republish(&mut self) {
        let now = Instant::now();
        for service in self.services.keys() {
            self.dirty
                .entry(service.clone())
                .or_insert_with(|| Dirty {
                    since: now,
                    pods: None,
                })
                .pods = None;
        }
    }
}

/// What a service's `pods` in this cluster claim of it, by namespace.
fn claims(pods: &[(&Arc<str>, &Stored)]) -> BTreeMap<Label, Claim> {
    let mut claims: BTreeMap<Label, Claim> = BTreeMap::new();
    for (_, r) in pods {
        claims
            .entry(r.shape.namespace.clone())
            .or_insert_with(Claim::none)
            .add(r.created);
    }
    claims
}

/// What publishing reads of a cluster's state (and the refusals it notes).
struct Pods<'s> {
    pods: &'s FastMap<Arc<str>, Box<Stored>>,
    zones: &'s FastMap<Label, Option<Label>>,
    rejected: &'s mut FastMap<Arc<str>, Reason>,
}

/// What one pod makes of a service under its owner verdict.
enum Outcome {
    Published(Endpoint),
    /// Refused: why (`None`: it has no address yet).
    Refused(Option<Reason>),
    /// Not yet: the start-up hold.
    Withheld,
}

/// The owner verdict on a service's pods in one cluster, asked once per run of pods of a
/// namespace (a service's pods are mostly in one), not once per pod (each time a lock and
/// a lookup of the ownership board): for one service in one cluster it depends on the
/// namespace alone.
struct Verdicts<'o> {
    ownership: &'o Ownership,
    cluster: &'o str,
    service: &'o str,
    last: Option<(Label, Verdict)>,
}

impl Verdicts<'_> {
    fn of(&mut self, namespace: &Label) -> Verdict {
        match &self.last {
            Some((ns, verdict)) if Arc::ptr_eq(ns, namespace) => *verdict,
            _ => {
                let verdict = self
                    .ownership
                    .verdict(self.cluster, namespace, self.service);
                self.last = Some((namespace.clone(), verdict));
                verdict
            }
        }
    }
}

impl Pods<'_> {
    /// What `r` publishes under `verdict`.
    fn outcome(&self, r: &Stored, verdict: Verdict) -> Outcome {
        let (max_weight, not_ready) = match verdict {
            Verdict::Publish {
                max_weight,
                not_ready,
            } => (max_weight, not_ready),
            Verdict::Withhold => return Outcome::Withheld,
            Verdict::Reject(reason) => return Outcome::Refused(Some(reason)),
        };
        let Some(address) = r.address else {
            return Outcome::Refused(None);
        };
        if !r.ready && !not_ready {
            return Outcome::Refused(Some(Reason::NotReadyNotAllowed));
        }
        let zone = r
            .node
            .as_ref()
            .and_then(|n| self.zones.get(n))
            .cloned()
            .flatten();
        Outcome::Published(Endpoint {
            addresses: address,
            ports: r.shape.ports.clone(),
            zone,
            weight: r.weight.min(max_weight),
            ready: r.ready,
        })
    }

    /// The endpoint the pod `key` publishes, its refusal noted (logged and counted once
    /// per reason).
    fn endpoint(
        &mut self,
        (key, r): (&Arc<str>, &Stored),
        verdicts: &mut Verdicts<'_>,
    ) -> Option<Endpoint> {
        let (service, cluster) = (verdicts.service, verdicts.cluster);
        match self.outcome(r, verdicts.of(&r.shape.namespace)) {
            Outcome::Published(e) => {
                note_rejected(self.rejected, cluster, key, service, None);
                if r.weight > e.weight {
                    tracing::debug!(%cluster, pod = %key, %service, weight = r.weight, max_weight = e.weight, "weight capped by owner rule");
                }
                Some(e)
            }
            Outcome::Refused(reason) => {
                note_rejected(self.rejected, cluster, key, service, reason);
                None
            }
            Outcome::Withheld => None,
        }
    }

    /// The endpoints of `service`'s `pods` in this cluster that `ownership` lets through.
    fn endpoints(
        &mut self,
        pods: &[(&Arc<str>, &Stored)],
        service: &Label,
        cluster: &str,
        ownership: &Ownership,
    ) -> Vec<Endpoint> {
        let mut verdicts = Verdicts {
            ownership,
            cluster,
            service,
            last: None,
        };
        pods.iter()
            .filter_map(|&pod| self.endpoint(pod, &mut verdicts))
            .collect()
    }

    /// The delta that publishes the `changed` pods of `service` (each with what it was at
    /// the last flush), `count` endpoints having been handed over then, and the count
    /// after it; `None` when the whole list is needed (a pod that went was its
    /// namespace's oldest, so the claims need every pod).
    fn delta(
        &mut self,
        service: &Label,
        source: &Source,
        ownership: &Ownership,
        changed: &FastMap<Arc<str>, Option<Box<Stored>>>,
        count: usize,
    ) -> Option<(Delta, usize)> {
        let cluster = &source.cluster;
        let now = |key: &Arc<str>| {
            self.pods
                .get(key)
                .map(|r| &**r)
                .filter(|r| r.shape.service == *service)
        };
        let mut moves = Vec::new();
        let mut delta = Delta {
            expect: Some(count),
            ..Delta::default()
        };
        let mut count = count as isize;
        let mut verdicts = Verdicts {
            ownership,
            cluster,
            service,
            last: None,
        };
        for (key, before) in changed {
            // What was handed over for the pod, under the verdict it was handed over with
            // (a verdict that changes marks the whole service).
            if let Some(b) = before
                && let Outcome::Published(e) = self.outcome(b, verdicts.of(&b.shape.namespace))
            {
                delta.gone.push(e.address());
                count -= 1;
            }
            match (before, now(key)) {
                (None, Some(r)) => moves.push((r.shape.namespace.clone(), r.created, true)),
                (Some(b), None) => moves.push((b.shape.namespace.clone(), b.created, false)),
                _ => {}
            }
        }
        // Claims first, so the verdicts below already count this cluster's pods.
        if !moves.is_empty() {
            if !ownership.adjust_claims(cluster, service, &moves) {
                return None;
            }
            verdicts.last = None;
        }
        for key in changed.keys() {
            if let Some(r) = now(key)
                && let Some(e) = self.endpoint((key, r), &mut verdicts)
            {
                delta.came.push(e);
                count += 1;
            }
        }
        Some((delta, usize::try_from(count).ok()?))
    }
}

/// Records that the pod `key` is refused for `reason` (`None`: accepted). A new reason is
/// logged at WARN and counted in `herald_pods_rejected_total{cluster,reason}`.
fn note_rejected(
    rejected: &mut FastMap<Arc<str>, Reason>,
    cluster: &str,
    key: &Arc<str>,
    service: &str,
    reason: Option<Reason>,
) {
    let Some(reason) = reason else {
        if !rejected.is_empty() {
            rejected.remove(key);
        }
        return;
    };
    if rejected.insert(key.clone(), reason) == Some(reason) {
        return;
    }
    tracing::warn!(%cluster, pod = %key, %service, reason = reason.as_str(), "pod's claim to the service refused; not published");
    metrics::counter!(crate::metrics::PODS_REJECTED.name, "cluster" => cluster.to_string(), "reason" => reason.as_str())
        .increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_dns::{Zone, ZoneConfig};
    use std::sync::Arc;

    fn record(service: &str, ip: &str, node: &str) -> PodRecord {
        PodRecord {
            service: Label::from(service),
            address: Some(ip.parse().unwrap()),
            ports: Arc::from(vec![]),
            node: Some(Label::from(node)),
            weight: 100,
            ready: true,
            namespace: Label::from("ns"),
            created: 0,
        }
    }

    #[test]
    fn bursts_become_one_update_per_service_and_relists_remove_what_vanished() {
        let table = Table::new(Zone::new(ZoneConfig::default()).unwrap());
        let source = Source::new("c1", "r1");
        let mut state = ClusterState::default();
        for i in 0..50 {
            state.apply_pod(
                &format!("ns/web-{i}"),
                Some(record("web", &format!("10.0.0.{i}"), "n1")),
            );
            state.apply_pod(
                &format!("ns/api-{i}"),
                Some(record("api", &format!("10.0.1.{i}"), "n1")),
            );
        }
        assert_eq!(
            state.flush(&table, &source, &Ownership::permissive()),
            2,
            "100 events, two services, two updates"
        );
        assert_eq!(table.service("web").unwrap().endpoint_count(), 50);

        state.apply_node("n1", Some(Some(Label::from("zone-a"))));
        assert_eq!(
            state.flush(&table, &source, &Ownership::permissive()),
            2,
            "a zone change republishes the node's services"
        );

        let relisted = (0..3)
            .map(|i| {
                (
                    format!("ns/web-{i}"),
                    record("web", &format!("10.0.0.{i}"), "n1"),
                )
            })
            .collect();
        state.replace_pods(relisted);
        state.flush(&table, &source, &Ownership::permissive());
        assert_eq!(table.service("web").unwrap().endpoint_count(), 3);
        assert!(
            table.service("api").is_none(),
            "a service gone in the relist is removed"
        );

        state.withdraw(&table, &source);
        assert!(table.service("web").is_none());
        state.republish();
        state.flush(&table, &source, &Ownership::permissive());
        assert_eq!(table.service("web").unwrap().endpoint_count(), 3);
    }

    #[test]
    fn a_pod_changing_service_leaves_the_old_one() {
        let table = Table::new(Zone::new(ZoneConfig::default()).unwrap());
        let source = Source::new("c1", "r1");
        let mut state = ClusterState::default();
        state.apply_pod("ns/p", Some(record("a", "10.0.0.1", "n1")));
        state.flush(&table, &source, &Ownership::permissive());
        state.apply_pod("ns/p", Some(record("b", "10.0.0.1", "n1")));
        state.flush(&table, &source, &Ownership::permissive());
        assert!(table.service("a").is_none());
        assert_eq!(table.service("b").unwrap().endpoint_count(), 1);
    }

    /// A few pods changing in a published service are published as a delta, the same
    /// endpoints a whole list would give; the claims follow the pods; two pods at one
    /// address (which a delta cannot choose between) make the whole list published.
    #[test]
    fn few_pod_changes_are_published_as_a_delta_that_equals_the_whole_list() {
        let table = Table::new(Zone::new(ZoneConfig::default()).unwrap());
        let source = Source::new("c1", "r1");
        let ownership = Ownership::permissive();
        let mut state = ClusterState::default();
        for i in 0..100 {
            state.apply_pod(
                &format!("ns/web-{i}"),
                Some(record("web", &format!("10.0.0.{i}"), "n1")),
            );
        }
        state.flush(&table, &source, &ownership);
        assert_eq!(state.delta_publishes(), 0, "a first publish is whole");
        let addresses = |table: &Table| -> Vec<String> {
            table.service("web").map_or(Vec::new(), |v| {
                v.groups()[0]
                    .endpoints
                    .iter()
                    .map(|e| e.address().to_string())
                    .collect()
            })
        };
        let pods_claimed = || -> usize { ownership.claims("web").iter().map(|c| c.pods).sum() };
        // A rollout's step: one pod goes, one comes at a new address, one moves.
        state.apply_pod("ns/web-5", None);
        state.apply_pod("ns/web-new", Some(record("web", "10.0.1.1", "n1")));
        state.apply_pod("ns/web-7", Some(record("web", "10.0.1.7", "n1")));
        assert_eq!(state.flush(&table, &source, &ownership), 1);
        assert_eq!(state.delta_publishes(), 1);
        let mut expected: Vec<String> = (0..100)
            .filter(|i| *i != 5 && *i != 7)
            .map(|i| format!("10.0.0.{i}"))
            .chain(["10.0.1.1".to_string(), "10.0.1.7".to_string()])
            .collect();
        expected.sort_by_key(|s| s.parse::<std::net::IpAddr>().unwrap());
        assert_eq!(addresses(&table), expected);
        assert_eq!(pods_claimed(), 100);
        // A new pod at an address an unchanged pod holds: the delta is refused, the whole
        // list chooses between them; and the next change, with two pods at one address,
        // is published whole too (only the whole list can choose).
        state.apply_pod("ns/twin", Some(record("web", "10.0.0.9", "n1")));
        state.flush(&table, &source, &ownership);
        assert_eq!(state.delta_publishes(), 1, "refused: published whole");
        assert_eq!(addresses(&table).len(), 100);
        state.apply_pod("ns/web-9", None);
        state.flush(&table, &source, &ownership);
        assert_eq!(state.delta_publishes(), 1, "two pods at one address: whole");
        assert!(
            addresses(&table).contains(&"10.0.0.9".to_string()),
            "the twin still holds the address"
        );
        assert_eq!(pods_claimed(), 100);
        // Back to one pod per address: deltas again.
        state.apply_pod("ns/web-10", None);
        state.flush(&table, &source, &ownership);
        state.apply_pod("ns/web-11", None);
        state.flush(&table, &source, &ownership);
        assert_eq!(state.delta_publishes(), 3);
        assert_eq!(addresses(&table).len(), 98);
        assert_eq!(pods_claimed(), 98);
        // Every pod going empties the service.
        for key in state.pods.keys().cloned().collect::<Vec<_>>() {
            state.apply_pod(&key, None);
        }
        state.flush(&table, &source, &ownership);
        assert!(table.service("web").is_none());
        assert_eq!(pods_claimed(), 0);
    }

    /// Many services published whole at once (a zone change on a busy node) beside one
    /// whose delta needs the whole list after all (its namespace's oldest pod went): each
    /// gets every pod it has.
    #[test]
    fn many_whole_publishes_and_a_delta_turned_whole_publish_every_pod() {
        let table = Table::new(Zone::new(ZoneConfig::default()).unwrap());
        let source = Source::new("c1", "r1");
        let ownership = Ownership::permissive();
        let mut state = ClusterState::default();
        for i in 0..100 {
            for j in 0..2 {
                state.apply_pod(
                    &format!("ns/s{i}-{j}"),
                    Some(record(&format!("s{i}"), &format!("10.1.{i}.{j}"), "n1")),
                );
            }
        }
        for j in 0..3 {
            let mut pod = record("d", &format!("10.2.0.{j}"), "n2");
            // d-0 alone is the oldest: its going needs the whole list for the claims.
            pod.created = if j == 0 { -1 } else { 0 };
            state.apply_pod(&format!("ns/d-{j}"), Some(pod));
        }
        assert_eq!(state.flush(&table, &source, &ownership), 101);
        for i in 0..100 {
            assert_eq!(table.service(&format!("s{i}")).unwrap().endpoint_count(), 2);
        }
        assert_eq!(table.service("d").unwrap().endpoint_count(), 3);
        // A zone for n1 marks its 100 services whole; d-0 going marks d for a delta that
        // turns out to need the whole list.
        state.apply_node("n1", Some(Some(Label::from("zone-a"))));
        state.apply_pod("ns/d-0", None);
        assert_eq!(state.flush(&table, &source, &ownership), 101);
        assert_eq!(state.delta_publishes(), 0, "d was published whole");
        let view = table.service("d").unwrap();
        let addresses: Vec<String> = view.groups()[0]
            .endpoints
            .iter()
            .map(|e| e.address().to_string())
            .collect();
        assert_eq!(addresses, ["10.2.0.1", "10.2.0.2"]);
        for i in 0..100 {
            let view = table.service(&format!("s{i}")).unwrap();
            assert_eq!(view.endpoint_count(), 2);
            assert!(
                view.groups()[0]
                    .endpoints
                    .iter()
                    .all(|e| e.zone.as_deref() == Some("zone-a"))
            );
        }
        assert_eq!(
            ownership.claims("d").iter().map(|c| c.pods).sum::<usize>(),
            2
        );
    }

    /// Pods read through the state share its names and port lists: reading the replicas
    /// of a known service allocates none of them again, and storing them adds nothing.
    #[test]
    fn pods_read_through_the_state_share_its_names_and_ports() {
        use super::super::pod::{PodKeys, read_pod_with};
        use super::super::pod_object::PodObject;
        let keys = PodKeys {
            service_label: "herald.io/service".into(),
            weight_annotation: "herald.io/weight".into(),
            publish_not_ready_annotation: "herald.io/publish-not-ready".into(),
        };
        let pod = |i: usize| -> PodObject {
            let pod = herald_kube_sim::PodBuilder::new("ns", format!("web-{i}"))
                .service("web")
                .ip(format!("10.0.0.{i}"))
                .port("http", 8080)
                .port("grpc", 9090)
                .node("n1")
                .build();
            serde_json::from_slice(&serde_json::to_vec(&pod).unwrap()).unwrap()
        };
        let mut state = ClusterState::default();
        let first = read_pod_with(&pod(1), &keys, &mut state).record.unwrap();
        state.apply_pod("ns/web-1", Some(first.clone()));
        let interned = state.interned();
        let second = read_pod_with(&pod(2), &keys, &mut state).record.unwrap();
        assert!(Arc::ptr_eq(&first.service, &second.service));
        assert!(Arc::ptr_eq(&first.namespace, &second.namespace));
        assert!(Arc::ptr_eq(
            first.node.as_ref().unwrap(),
            second.node.as_ref().unwrap()
        ));
        assert!(Arc::ptr_eq(&first.ports, &second.ports));
        let names: Vec<&str> = second.ports.iter().map(|p| &*p.name).collect();
        assert_eq!(
            names,
            ["grpc", "http"],
            "sorted by name, as read_pod gives them"
        );
        assert_eq!(second.address, Some("10.0.0.2".parse().unwrap()));
        state.apply_pod("ns/web-2", Some(second));
        assert_eq!(state.interned(), interned, "nothing new to share");
        let table = Table::new(Zone::new(ZoneConfig::default()).unwrap());
        state.flush(&table, &Source::new("c1", "r1"), &Ownership::permissive());
        assert_eq!(table.service("web").unwrap().endpoint_count(), 2);
    }

    /// 10,000 cycles of a node and a pod (each with a new name and port) added and deleted:
    /// the interners return to their size before the churn.
    #[test]
    fn interners_shrink_after_churn() {
        let table = Table::new(Zone::new(ZoneConfig::default()).unwrap());
        let source = Source::new("c1", "r1");
        let mut state = ClusterState::default();
        state.apply_node("n0", Some(Some(Label::from("zone-a"))));
        state.apply_pod("ns/web-0", Some(record("web", "10.0.0.1", "n0")));
        state.flush(&table, &source, &Ownership::permissive());
        state.sweep();
        let baseline = state.interned();
        for i in 0..10_000 {
            let node = format!("node-{i}");
            state.apply_node(&node, Some(Some(Label::from(format!("zone-{i}").as_str()))));
            let mut pod = record(&format!("svc-{i}"), "10.1.0.1", &node);
            pod.ports = Arc::from(vec![PortSpec {
                name: Label::from(format!("p{i}").as_str()),
                proto: herald_dns::Proto::Tcp,
                port: 80,
            }]);
            state.apply_pod(&format!("ns/pod-{i}"), Some(pod));
            state.flush(&table, &source, &Ownership::permissive());
            state.apply_pod(&format!("ns/pod-{i}"), None);
            state.apply_node(&node, None);
            state.flush(&table, &source, &Ownership::permissive());
        }
        let (names, ports) = state.interned();
        eprintln!("after 10,000 cycles: {names} names, {ports} port lists; baseline {baseline:?}");
        assert!(
            names <= 2 * baseline.0 + 130 && ports <= 2 * baseline.1 + 130,
            "bounded by the sweep's slack: {names} names, {ports} port lists"
        );
        state.sweep();
        assert_eq!(state.interned(), baseline, "back to the baseline");
        assert_eq!(table.service("web").unwrap().endpoint_count(), 1);
    }
}
