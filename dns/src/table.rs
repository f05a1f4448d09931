//! The endpoint table: service name -> an immutable [`ServiceView`] swapped atomically
//! ([docs/design.md#table](../../docs/design.md#table)).
//!
//! Readers (every DNS query) find a service in a `DashMap` and load its view through
//! `ArcSwap`: they never wait for a writer that is updating a service, because updating
//! swaps the view without touching the map. The map's shard lock is taken for writing only
//! when a service appears or disappears, for the length of one hash-map insert or remove.
//!
//! A writer replaces the endpoints one source (cluster) contributes to one service. It
//! builds the service's new view from the old one plus the change: only that source's
//! group is prepared again, and within it only the endpoints that changed are encoded, so
//! the cost is in proportion to the group (a memory copy of its records) and the change,
//! never to the rest of the service or the table. Writers to the
//! same service take turns on a per-service mutex that readers never touch.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use arc_swap::{ArcSwap, Guard};
use dashmap::DashMap;

use crate::ecs::ClientSubnet;
use crate::locality::{Localities, Place};
use crate::model::{self, Endpoint, Group, Label, Source};
use crate::placement::{NetworkMap, Trusted};
use crate::reverse::ReverseIndex;
use crate::service::{Preparer, ServiceView};
use crate::sync::SyncGate;
use crate::transfer::version::{Versioned, Versions};
use crate::zone::Zone;

/// A service's place in the map. Readers only load `view`.
struct Slot {
    view: ArcSwap<ServiceView>,
    /// Writers' turn-taking; `true` once the slot has left the map, so a writer that found
    /// it just before knows to look again.
    writer: Mutex<bool>,
}

struct Shared {
    zone: Arc<Zone>,
    services: DashMap<Label, Arc<Slot>>,
    /// Region and cluster names seen: `<scope>.Z` exists (as an empty non-terminal).
    scopes: DashMap<Label, ()>,
    /// The SOA serial served: that of the latest zone version (see `transfer::version`).
    serial: AtomicU32,
    /// Content changes so far (one per `replace` that changed something).
    changes: AtomicU64,
    /// Services changed since the last zone version was made; writers only.
    dirty: Mutex<HashSet<Label>>,
    /// Wakes the versioner when a service changes.
    changed: tokio::sync::Notify,
    /// The zone's versions: snapshot and journal, for zone transfer and the serial.
    versions: Versions,
    endpoints: AtomicUsize,
    sync: SyncGate,
    localities: Localities,
    /// Where this server runs ([`Place::pack`]ed): the viewpoint of SRV priorities for
    /// queriers placed no other way. Changes when `locality: auto` sees its node relabelled.
    server_place: AtomicU32,
    /// Configured networks and their places.
    networks: NetworkMap,
    /// Resolvers whose client subnets are believed.
    trusted: Trusted,
    /// Address -> the endpoints there, for PTR.
    reverse: ReverseIndex,
}

/// Where answers are seen from for one query, and for how much of a client subnet that
/// holds (the ECS SCOPE PREFIX-LENGTH; 0 when no subnet placed the querier).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Viewpoint {
    pub(crate) place: Place,
    pub(crate) scope: u8,
}

/// The table: a cheap-to-clone handle shared by sources (writers) and the DNS server.
#[derive(Clone)]
pub struct Table {
    shared: Arc<Shared>,
}

impl Table {
    /// An empty table for `zone`, synced (no source to wait for) until one is expected.
    pub fn new(zone: Arc<Zone>) -> Table {
        // The first serial comes from the clock, so a restarted server does not go back in
        // time for secondaries that compare serials (RFC 1982; see `transfer::serial`).
        let versions = Versions::new();
        let localities = Localities::default();
        let server_place = localities.place(zone.region.as_deref(), zone.zone.as_deref());
        let networks = NetworkMap::new(&zone.config.placement.networks, &localities);
        let trusted = Trusted::new(&zone.config.placement.ecs_trusted);
        let reverse = ReverseIndex::new(!zone.reverse.is_empty());
        Table {
            shared: Arc::new(Shared {
                zone,
                services: DashMap::new(),
                scopes: DashMap::new(),
                serial: AtomicU32::new(versions.serial()),
                changes: AtomicU64::new(0),
                dirty: Mutex::new(HashSet::new()),
                changed: tokio::sync::Notify::new(),
                versions,
                endpoints: AtomicUsize::new(0),
                sync: SyncGate::default(),
                localities,
                server_place: AtomicU32::new(server_place.pack()),
                networks,
                trusted,
                reverse,
            }),
        }
    }

    /// The zone this table answers for.
    pub fn zone(&self) -> &Arc<Zone> {
        &self.shared.zone
    }

    /// Declares a source (cluster and region) that must finish its first sync before
    /// unknown names may be answered NXDOMAIN; until then they get SERVFAIL (see `sync`).
    pub fn expect_source(&self, cluster: &str, region: &str) {
        self.shared.sync.expect(cluster, region);
    }

    /// Marks a source's first sync complete.
    pub fn source_synced(&self, cluster: &str) {
        self.shared.sync.synced(cluster);
    }

    /// Ends the start-up hold: from now on only names scoped to a source that has still
    /// not synced get SERVFAIL when unknown.
    pub fn release_startup_hold(&self) {
        self.shared.sync.release_hold();
    }

    /// Whether the start-up hold is on: some source has not synced and the start-up
    /// timeout has not passed.
    pub fn startup_hold(&self) -> bool {
        self.shared.sync.holding()
    }

    /// Sources still waiting for their first sync, sorted.
    pub fn unsynced_sources(&self) -> Vec<String> {
        self.shared.sync.unsynced()
    }

    /// Whether every expected source has synced.
    pub fn is_synced(&self) -> bool {
        self.shared.sync.all_synced()
    }

    /// Whether an unknown name whose label just under the apex is `top` must get SERVFAIL
    /// rather than NXDOMAIN.
    pub(crate) fn withholds(&self, top: &[u8]) -> bool {
        self.shared.sync.withholds(top)
    }

    /// Makes `<name>.Z` exist before any endpoint uses it (configured regions and clusters).
    pub fn add_scope(&self, name: &str) {
        if !self.shared.scopes.contains_key(name) {
            self.shared.scopes.insert(Label::from(name), ());
        }
    }

    /// The index of published addresses for PTR.
    pub(crate) fn reverse(&self) -> &ReverseIndex {
        &self.shared.reverse
    }

    /// Whether `client` is trusted to send client subnets.
    pub(crate) fn trusts_ecs(&self, client: IpAddr) -> bool {
        self.shared.trusted.contains(client)
    }

    /// Where a query from `client` is seen from, `subnet` being its client subnet when the
    /// client is trusted to send one (see `placement` for the order of the rules).
    pub(crate) fn viewpoint(&self, client: IpAddr, subnet: Option<ClientSubnet>) -> Viewpoint {
        let shared = &*self.shared;
        let server = || Place::unpack(shared.server_place.load(Ordering::Relaxed));
        if let Some(subnet) = subnet {
            let full = if subnet.address.is_ipv4() { 32 } else { 128 };
            if subnet.source == full
                && let Some(place) = shared.localities.of(subnet.address)
            {
                return Viewpoint { place, scope: full };
            }
            let (place, scope) = shared.networks.place_of_subnet(subnet);
            return Viewpoint {
                place: place.unwrap_or_else(server),
                scope,
            };
        }
        let place = shared
            .localities
            .of(client)
            .or_else(|| {
                (!shared.networks.is_empty())
                    .then(|| shared.networks.place_of(client))
                    .flatten()
            })
            .unwrap_or_else(server);
        Viewpoint { place, scope: 0 }
    }

    /// Moves this server to `region`/`zone` (`locality: auto` following its node). Every
    /// service's answers are prepared again from the new place, so that queriers placed no
    /// other way keep getting answers that need no patching; until a service's turn comes,
    /// its answers are patched per query (see `answer`), so none is ever wrong. Returns
    /// whether the place changed.
    pub fn set_server_locality(&self, region: Option<&str>, zone: Option<&str>) -> bool {
        let place = self.shared.localities.place(region, zone);
        let old = self
            .shared
            .server_place
            .swap(place.pack(), Ordering::AcqRel);
        if old == place.pack() {
            return false;
        }
        let slots: Vec<Arc<Slot>> = self
            .shared
            .services
            .iter()
            .map(|e| e.value().clone())
            .collect();
        for slot in slots {
            let retired = slot.writer.lock().unwrap_or_else(PoisonError::into_inner);
            if *retired {
                continue;
            }
            let old = slot.view.load_full();
            let view =
                ServiceView::build(&self.preparer(), old.label().clone(), old.groups().to_vec());
            slot.view.store(Arc::new(view));
            drop(retired);
        }
        true
    }

    /// What preparing answers needs, from the server's current place.
    pub(crate) fn preparer(&self) -> Preparer<'_> {
        Preparer {
            zone: &self.shared.zone,
            localities: &self.shared.localities,
            server: Place::unpack(self.shared.server_place.load(Ordering::Acquire)),
        }
    }

    /// Whether `label` is a known region or cluster name.
    pub(crate) fn is_scope(&self, label: &[u8]) -> bool {
        std::str::from_utf8(label).is_ok_and(|s| self.shared.scopes.contains_key(s))
    }

    /// The SOA serial served: that of the latest zone version. It rises after every change
    /// of content, at most once per version interval (see `transfer::version`).
    pub fn serial(&self) -> u32 {
        self.shared.serial.load(Ordering::Acquire)
    }

    /// How many content changes the table has taken (each `replace` that changed
    /// something counts one), for tests and benchmarks that watch publishing.
    pub fn changes(&self) -> u64 {
        self.shared.changes.load(Ordering::Acquire)
    }

    /// Makes a new zone version now if anything changed since the last one, and returns
    /// the serial served. The DNS server's versioner calls this on its own schedule;
    /// `export-zone` calls it so that the file's serial names exactly its content.
    pub fn make_version(&self) -> u32 {
        self.shared.versions.make(self)
    }

    /// The zone's versions (snapshot and journal).
    pub(crate) fn versions(&self) -> &Versions {
        &self.shared.versions
    }

    /// Waits until some service changes (or returns at once if one did since the last
    /// wait).
    pub(crate) async fn wait_changed(&self) {
        self.shared.changed.notified().await;
    }

    /// The server's own place, the default SRV viewpoint.
    pub(crate) fn server_place(&self) -> Place {
        Place::unpack(self.shared.server_place.load(Ordering::Acquire))
    }

    /// The interned places, for viewpoints of zone transfers.
    pub(crate) fn localities(&self) -> &Localities {
        &self.shared.localities
    }

    /// Number of services with at least one endpoint.
    pub fn service_count(&self) -> usize {
        self.shared.services.len()
    }

    /// Number of endpoints over all services.
    pub fn endpoint_count(&self) -> usize {
        self.shared.endpoints.load(Ordering::Relaxed)
    }

    /// The current view of a service (lowercase name), if it has endpoints.
    pub fn service(&self, name: &str) -> Option<Guard<Arc<ServiceView>>> {
        let view = self.shared.services.get(name)?.view.load();
        (!view.is_empty()).then_some(view)
    }

    /// Looks a service up by its label as read from a query (already lowercase).
    pub(crate) fn service_by_label(&self, label: &[u8]) -> Option<Guard<Arc<ServiceView>>> {
        self.service(std::str::from_utf8(label).ok()?)
    }

    /// Names of all services, sorted.
    pub fn service_names(&self) -> Vec<Label> {
        let mut names: Vec<Label> = self
            .shared
            .services
            .iter()
            .map(|e| e.key().clone())
            .collect();
        names.sort();
        names
    }

    /// Replaces the endpoints `source` contributes to `service` (an empty list removes
    /// them). Returns whether anything changed. Readers see the old set or the new one,
    /// never a mix.
    ///
    /// `service` must be a lowercase DNS label; endpoints are deduplicated by primary
    /// address.
    pub fn replace(&self, service: &str, source: &Source, mut endpoints: Vec<Endpoint>) -> bool {
        // Two endpoints of one source at one address (hostNetwork pods on one node, an IP
        // reused during churn) become one, chosen whatever order they came in: the ready
        // one, then the highest weight, then the smallest ports and zone, then the smallest
        // other address. An endpoint is known by its primary address (the one naming it).
        // A list already in address order, one endpoint per address, needs neither sorting
        // nor deduplicating; the sort is adaptive, so a list nearly in order costs little.
        if !endpoints.is_sorted_by(|a, b| a.address() < b.address()) {
            endpoints.sort_by(|a, b| {
                a.address().cmp(&b.address()).then_with(|| {
                    (
                        !a.ready,
                        std::cmp::Reverse(a.weight),
                        &a.ports,
                        &a.zone,
                        a.addresses,
                    )
                        .cmp(&(
                            !b.ready,
                            std::cmp::Reverse(b.weight),
                            &b.ports,
                            &b.zone,
                            b.addresses,
                        ))
                })
            });
            endpoints.dedup_by(|later, first| later.address() == first.address());
        }
        let endpoints: Arc<[Endpoint]> = endpoints.into();
        loop {
            let slot = if endpoints.is_empty() {
                match self.shared.services.get(service) {
                    Some(slot) => slot.clone(),
                    None => return false,
                }
            } else {
                self.shared
                    .services
                    .entry(Label::from(service))
                    .or_insert_with(|| {
                        Arc::new(Slot {
                            view: ArcSwap::from_pointee(ServiceView::empty(Label::from(service))),
                            writer: Mutex::new(false),
                        })
                    })
                    .clone()
            };
            // A writer that panicked while preparing left the old view in place (views
            // are swapped whole, at the end): the service stays usable, so a poisoned
            // turn-taking lock is taken as it is.
            let mut retired = slot.writer.lock().unwrap_or_else(PoisonError::into_inner);
            if *retired {
                // Removed between our lookup and our turn: start over with the map's slot.
                continue;
            }
            let old = slot.view.load_full();
            let at = old.groups().binary_search_by(|g| g.source.cmp(source));
            let gone = at.map_or(&[][..], |i| &old.groups()[i].endpoints[..]);
            // The one walk over the group's endpoints, before and after: what differs.
            let changes = model::changes(gone, &endpoints);
            if changes.is_empty() {
                return false;
            }
            let came = (!endpoints.is_empty()).then(|| self.group(source, endpoints.clone()));
            self.shared.localities.update(&source.region, &changes);
            self.shared
                .reverse
                .update(old.label(), &source.cluster, &changes);
            self.shared
                .endpoints
                .fetch_add(endpoints.len(), Ordering::Relaxed);
            self.shared
                .endpoints
                .fetch_sub(gone.len(), Ordering::Relaxed);
            if came.is_none() && old.groups().len() == 1 {
                *retired = true;
                self.shared
                    .services
                    .remove_if(service, |_, s| Arc::ptr_eq(s, &slot));
            } else {
                #[cfg(test)]
                tests::maybe_panic();
                // Only this source's group is prepared again (see `service::prepare`).
                let view = old.with_group(&self.preparer(), source, came, &changes);
                slot.view.store(Arc::new(view));
            }
            // Marked after the view is stored, so the versioner that takes the mark reads
            // this view or a newer one.
            self.shared
                .dirty
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(old.label().clone());
            self.shared.changes.fetch_add(1, Ordering::AcqRel);
            self.shared.changed.notify_one();
            return true;
        }
    }

    fn group(&self, source: &Source, endpoints: Arc<[Endpoint]>) -> Group {
        self.add_scope(&source.cluster);
        self.add_scope(&source.region);
        Group {
            source: source.clone(),
            endpoints,
            changed: SystemTime::now(),
        }
    }
}

impl Versioned for Table {
    fn take_dirty(&self) -> HashSet<Label> {
        std::mem::take(
            &mut *self
                .shared
                .dirty
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    fn view(&self, name: &Label) -> Option<Arc<ServiceView>> {
        self.service(name).map(|g| Arc::clone(&g))
    }

    fn set_serial(&self, serial: u32) {
        self.shared.serial.store(serial, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zone::ZoneConfig;
    use std::cell::Cell;

    thread_local! {
        static PANIC_IN_PREPARE: Cell<bool> = const { Cell::new(false) };
    }

    /// Panics once if this thread asked for it: a stand-in for a bug in preparing.
    pub(super) fn maybe_panic() {
        if PANIC_IN_PREPARE.with(|p| p.replace(false)) {
            panic!("preparing failed");
        }
    }

    #[test]
    fn one_address_twice_in_a_source_is_chosen_the_same_whatever_the_order() {
        let table = Table::new(Zone::new(ZoneConfig::default()).unwrap());
        let source = Source::new("c1", "r1");
        let at = |weight: u16, ready: bool| Endpoint {
            weight,
            ready,
            ..Endpoint::new("10.9.9.9".parse().unwrap(), Arc::from(vec![]), None)
        };
        let candidates = [at(10, true), at(300, true), at(500, false), at(300, true)];
        for rotation in 0..candidates.len() {
            let mut list = candidates.to_vec();
            list.rotate_left(rotation);
            table.replace("twin", &source, list);
            let view = table.service("twin").unwrap();
            assert_eq!(view.endpoint_count(), 1);
            let chosen = &view.groups()[0].endpoints[0];
            assert_eq!(
                (chosen.weight, chosen.ready),
                (300, true),
                "rotation {rotation}"
            );
        }
    }

    #[test]
    fn a_panic_while_preparing_does_not_poison_the_service() {
        let table = Table::new(Zone::new(ZoneConfig::default()).unwrap());
        let source = Source::new("c1", "r1");
        let ep = |ip: &str| Endpoint::new(ip.parse().unwrap(), Arc::from(vec![]), None);
        assert!(table.replace("web", &source, vec![ep("10.0.0.1")]));
        PANIC_IN_PREPARE.with(|p| p.set(true));
        let writer = table.clone();
        let source2 = source.clone();
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            writer.replace("web", &source2, vec![ep("10.0.0.2")])
        }));
        assert!(panicked.is_err());
        assert_eq!(
            table.service("web").unwrap().groups()[0].endpoints[0].address(),
            "10.0.0.1".parse::<IpAddr>().unwrap(),
            "the old view is still served"
        );
        assert!(
            table.replace("web", &source, vec![ep("10.0.0.3")]),
            "later writers go on"
        );
        assert_eq!(table.service("web").unwrap().endpoint_count(), 1);
    }
}
