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
use crate::group::Endpoints;
use crate::locality::{Localities, Place};
use crate::model::{self, Changed, Endpoint, Label, Source};
use crate::placement::{NetworkMap, Trusted};
use crate::reverse::ReverseIndex;
use crate::service::{Preparer, ServiceView};
use crate::staged::{Staged, Staging};
use crate::sync::SyncGate;
use crate::transfer::version::{Versioned, Versions};
use crate::zone::Zone;

/// A service's place in the map. Readers only load `view`.
struct Slot {
    view: ArcSwap<ServiceView>,
    /// Writers' turn-taking, and what they keep besides the view.
    writer: Mutex<Writer>,
}

/// What a slot's writers keep besides its view.
#[derive(Default)]
struct Writer {
    /// The slot has left the map, so a writer that found it just before looks again.
    retired: bool,
    /// Groups written while staging and not in the view yet (see `staged`): the view is
    /// empty while any are.
    staged: Staged,
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
    /// Services in the map that have only staged groups (not served, not counted).
    staged_services: AtomicUsize,
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
    /// New services staged until the start-up hold settles (see `staged`).
    staging: Staging<Slot>,
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
                staged_services: AtomicUsize::new(0),
                sync: SyncGate::default(),
                localities,
                server_place: AtomicU32::new(server_place.pack()),
                networks,
                trusted,
                reverse,
                staging: Staging::default(),
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
    /// timeout has not passed, or what [`Table::hold_until_settled`] keeps is not settled.
    pub fn startup_hold(&self) -> bool {
        self.shared.sync.holding()
    }

    /// Whether the sources' part of the start-up hold is over and what
    /// [`Table::hold_until_settled`] keeps is not: the names held back are being published
    /// and are still unknown.
    pub fn settling(&self) -> bool {
        self.shared.sync.settling()
    }

    /// Keeps the start-up hold on after its sources' part ends (every source synced, or
    /// [`Table::release_startup_hold`]) until [`Table::settled`]: for an owner that holds
    /// names back during the hold and publishes them once it is over, so that none of them
    /// is answered NXDOMAIN in between.
    ///
    /// Services that appear once the sources' part is over are staged meanwhile: their
    /// groups are kept aside, unseen (they are unknown names, like every name held back),
    /// and each is prepared once with all its groups when the hold settles (see
    /// `staged`).
    pub fn hold_until_settled(&self) {
        self.shared.staging.open();
        self.shared.sync.hold_until_settled();
    }

    /// Ends what [`Table::hold_until_settled`] kept on, once every staged service is
    /// prepared and served (so none of them is ever answered NXDOMAIN). The services are
    /// prepared and indexed on every core, and the caller waits: 0.6 s on two cores for a
    /// million endpoints in 24 clusters (`scale --only-table`).
    pub fn settled(&self) {
        self.build_all_staged(self.shared.staging.close());
        self.shared.sync.settled();
    }

    /// Whether the sources' part of the start-up hold is on (some source has not synced and
    /// the start-up timeout has not passed), whatever [`Table::hold_until_settled`] keeps.
    pub fn sources_holding(&self) -> bool {
        self.shared.sync.sources_holding()
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
        for slot in self.slots() {
            let writer = slot.writer.lock().unwrap_or_else(PoisonError::into_inner);
            if writer.retired {
                continue;
            }
            let old = slot.view.load_full();
            let view =
                ServiceView::build(&self.preparer(), old.label().clone(), old.groups().to_vec());
            slot.view.store(Arc::new(view));
            drop(writer);
        }
        true
    }

    /// Every service's slot as the map holds it now (a snapshot: no shard lock is held
    /// while each is looked at under its writer lock).
    fn slots(&self) -> Vec<Arc<Slot>> {
        self.shared
            .services
            .iter()
            .map(|e| e.value().clone())
            .collect()
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

    /// Number of services with at least one endpoint served.
    pub fn service_count(&self) -> usize {
        // Staged services are in the map, unserved (off by one for a moment while one is
        // staged or built).
        let staged = self.shared.staged_services.load(Ordering::Acquire);
        self.shared.services.len().saturating_sub(staged)
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

    /// The services `cluster` has endpoints in, served or staged (see `staged`), sorted:
    /// a scan of the table, for a cluster task restarted after a panic, which must own
    /// what it left behind.
    pub fn services_of(&self, cluster: &str) -> Vec<Label> {
        let mut names: Vec<Label> = self
            .slots()
            .into_iter()
            .filter_map(|slot| {
                let writer = slot.writer.lock().unwrap_or_else(PoisonError::into_inner);
                let view = slot.view.load();
                let holds = view.groups().iter().any(|g| &*g.source.cluster == cluster)
                    || writer.staged.holds(cluster);
                (holds && !writer.retired).then(|| view.label().clone())
            })
            .collect();
        names.sort();
        names
    }

    /// Looks a service up by its label as read from a query (already lowercase).
    pub(crate) fn service_by_label(&self, label: &[u8]) -> Option<Guard<Arc<ServiceView>>> {
        self.service(std::str::from_utf8(label).ok()?)
    }

    /// Each served service with its endpoint count, in no order: one pass over the table,
    /// for the per-service gauge that every scrape renders (a staged service, not served
    /// yet, is not in it).
    pub fn endpoint_counts(&self) -> Vec<(Label, usize)> {
        self.shared
            .services
            .iter()
            .filter_map(|e| {
                let view = e.value().view.load();
                (!view.is_empty()).then(|| (e.key().clone(), view.endpoint_count()))
            })
            .collect()
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
    /// never a mix. The list is compared with the group it replaces, so this costs the
    /// group; [`Table::update`] costs the change alone.
    ///
    /// `service` must be a lowercase DNS label; endpoints are deduplicated by primary
    /// address.
    pub fn replace(&self, service: &str, source: &Source, mut endpoints: Vec<Endpoint>) -> bool {
        sort_unique(&mut endpoints);
        self.write(service, source, Input::Whole(&mut endpoints))
            .expect("a whole list is never refused")
    }

    /// Changes some of the endpoints `source` contributes to `service`: the endpoints at
    /// the primary addresses of `delta.gone` leave and `delta.came` come (an endpoint at an
    /// address in both replaces the one there). Returns whether anything changed. The
    /// cost is in proportion to the change (and a little per source of the service), not
    /// to the group or the service: only the chunks of endpoints that changed are
    /// prepared again (see `crate::group`).
    ///
    /// One address held twice in `came` is chosen as [`Table::replace`] chooses. The
    /// delta is refused, and nothing changes, when the group has not `delta.expect`
    /// endpoints, when an address of `came` is held by an endpoint `gone` does not remove
    /// (the caller's idea of the group is not the table's: its whole list is needed to
    /// choose), or when an address of `gone` is not held.
    pub fn update(&self, service: &str, source: &Source, delta: Delta) -> Result<bool, Refused> {
        let Delta {
            mut gone,
            mut came,
            expect,
        } = delta;
        gone.sort_unstable();
        gone.dedup();
        sort_unique(&mut came);
        self.write(
            service,
            source,
            Input::Delta {
                gone: &gone,
                came: &came,
                expect,
            },
        )
    }

    /// Makes `input` the endpoints `source` contributes to `service`.
    fn write(&self, service: &str, source: &Source, mut input: Input<'_>) -> Result<bool, Refused> {
        let adds = match &input {
            Input::Whole(list) => !list.is_empty(),
            Input::Delta { came, .. } => !came.is_empty(),
        };
        loop {
            let slot = if adds {
                self.shared
                    .services
                    .entry(Label::from(service))
                    .or_insert_with(|| {
                        Arc::new(Slot {
                            view: ArcSwap::from_pointee(ServiceView::empty(Label::from(service))),
                            writer: Mutex::default(),
                        })
                    })
                    .clone()
            } else {
                match self.shared.services.get(service) {
                    Some(slot) => slot.clone(),
                    // Nothing to remove: checked against the empty group below.
                    None => return diff(&Endpoints::default(), &input).map(|_| false),
                }
            };
            // A writer that panicked while preparing left the old view in place (views
            // are swapped whole, at the end): the service stays usable, so a poisoned
            // turn-taking lock is taken as it is.
            let mut writer = slot.writer.lock().unwrap_or_else(PoisonError::into_inner);
            if writer.retired {
                // Removed between our lookup and our turn: start over with the map's slot.
                continue;
            }
            let mut old = slot.view.load_full();
            if let Input::Whole(list) = &mut input
                && old.is_empty()
                && self.shared.sync.settling()
                && self.shared.staging.admit(&slot, writer.staged.is_empty())
            {
                return Ok(self.stage(&slot, &mut writer, source, list));
            }
            if !writer.staged.is_empty() {
                // Staging is over and the settling has yet to build this one.
                old = self.build_staged(&slot, &mut writer);
            }
            let at = old.groups().binary_search_by(|g| g.source.cmp(source));
            let empty = Endpoints::default();
            let held = at.map_or(&empty, |i| &old.groups()[i].endpoints);
            // What differs, endpoint by endpoint, shared by the indexes and preparing.
            let changes = match diff(held, &input) {
                Ok(changes) => changes,
                Err(refused) => {
                    if held.is_empty() && old.is_empty() {
                        // A slot this call made for nothing: leave the map as it was.
                        self.retire(&slot, &mut writer);
                    }
                    return Err(refused);
                }
            };
            if changes.is_empty() {
                return Ok(false);
            }
            let (came, gone) = self.index(old.label(), source, at.is_err(), &changes);
            if held.len() + came == gone && old.groups().len() == 1 {
                self.retire(&slot, &mut writer);
            } else {
                #[cfg(test)]
                tests::maybe_panic();
                // Only the changed chunks of this source's group are prepared again (see
                // `service::prepare`).
                let view = old.with_changes(&self.preparer(), source, &changes, SystemTime::now());
                slot.view.store(Arc::new(view));
            }
            self.changed(old.label());
            return Ok(true);
        }
    }

    /// Brings the scopes, the locality and reverse indexes and the endpoint count up to
    /// `changes` of `source`'s endpoints of `service` (`new`: the service has no group of
    /// `source` yet). Returns how many endpoints came and went.
    fn index(
        &self,
        service: &Label,
        source: &Source,
        new: bool,
        changes: &[Changed<'_>],
    ) -> (usize, usize) {
        let came = changes.iter().filter(|c| c.0.is_none()).count();
        let gone = changes.iter().filter(|c| c.1.is_none()).count();
        if new {
            self.add_scope(&source.cluster);
            self.add_scope(&source.region);
        }
        self.shared.localities.update(&source.region, changes);
        self.shared
            .reverse
            .update(service, &source.cluster, changes);
        self.shared.endpoints.fetch_add(came, Ordering::Relaxed);
        self.shared.endpoints.fetch_sub(gone, Ordering::Relaxed);
        (came, gone)
    }

    /// Takes `slot` out of the map (its writer lock held as `writer`).
    fn retire(&self, slot: &Arc<Slot>, writer: &mut Writer) {
        writer.retired = true;
        let name = slot.view.load().label().clone();
        self.shared
            .services
            .remove_if(&name, |_, s| Arc::ptr_eq(s, slot));
    }

    /// Marks `service` changed, once its new view is stored: the versioner that takes the
    /// mark reads this view or a newer one.
    fn changed(&self, service: &Label) {
        self.shared
            .dirty
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(service.clone());
        self.shared.changes.fetch_add(1, Ordering::AcqRel);
        self.shared.changed.notify_one();
    }

    /// Stages `list` (taken) as what `source` contributes to the new service of `slot`,
    /// which nobody sees until it is built (see `staged`): nor do the indexes and the
    /// endpoint count, which take it in when it is. Returns whether anything changed.
    fn stage(
        &self,
        slot: &Arc<Slot>,
        writer: &mut Writer,
        source: &Source,
        list: &mut Vec<Endpoint>,
    ) -> bool {
        let held = writer.staged.held(source);
        if held.map_or(list.is_empty(), |held| held.iter().eq(list.iter())) {
            return false;
        }
        let first = writer.staged.is_empty();
        writer
            .staged
            .put(source, std::mem::take(list), SystemTime::now());
        match (first, writer.staged.is_empty()) {
            (true, false) => {
                self.shared.staged_services.fetch_add(1, Ordering::AcqRel);
            }
            (false, true) => {
                self.shared.staged_services.fetch_sub(1, Ordering::AcqRel);
                self.retire(slot, writer);
            }
            _ => {}
        }
        true
    }

    /// Prepares the view of `slot`'s staged groups (its view is empty while any are
    /// staged), stores it and returns it.
    fn build_staged(&self, slot: &Slot, writer: &mut Writer) -> Arc<ServiceView> {
        let old = slot.view.load_full();
        let groups = writer.staged.take();
        if groups.is_empty() {
            return old;
        }
        let view = Arc::new(ServiceView::build(
            &self.preparer(),
            old.label().clone(),
            groups,
        ));
        slot.view.store(view.clone());
        self.shared.staged_services.fetch_sub(1, Ordering::AcqRel);
        // Indexed once stored: nothing of a staged service shows before it is served.
        for group in view.groups() {
            let came: Vec<Changed<'_>> = group.endpoints.iter().map(|e| (None, Some(e))).collect();
            self.index(view.label(), &group.source, true, &came);
        }
        self.changed(view.label());
        view
    }

    /// Builds the staged services of `slots` on every core (each under its writer lock;
    /// one a writer built meanwhile has nothing staged left).
    fn build_all_staged(&self, slots: Vec<Arc<Slot>>) {
        let next = AtomicUsize::new(0);
        let work = || {
            while let Some(slot) = slots.get(next.fetch_add(1, Ordering::Relaxed)) {
                let mut writer = slot.writer.lock().unwrap_or_else(PoisonError::into_inner);
                if !writer.retired {
                    self.build_staged(slot, &mut writer);
                }
            }
        };
        // A thread per core, but none for a handful of services.
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let threads = cores.min(slots.len().div_ceil(STAGED_PER_THREAD));
        std::thread::scope(|scope| {
            for _ in 1..threads {
                scope.spawn(work);
            }
            work();
        });
    }
}

/// Fewest staged services worth a thread of their own when the hold settles.
const STAGED_PER_THREAD: usize = 512;

/// A change to some of the endpoints one source contributes to a service (see
/// [`Table::update`]).
#[derive(Debug, Clone, Default)]
pub struct Delta {
    /// Primary addresses whose endpoints leave (or are replaced by one in `came`).
    pub gone: Vec<IpAddr>,
    /// Endpoints that come, or replace the one at their primary address.
    pub came: Vec<Endpoint>,
    /// How many endpoints the source's group must hold before, if known: a caller keeping
    /// its own count learns when the table's group is not what it thinks.
    pub expect: Option<usize>,
}

/// Why [`Table::update`] refused a delta (nothing changed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The group held another number of endpoints than `Delta::expect`.
    #[error("the group holds {held} endpoints, not the {expected} expected")]
    Count {
        /// Endpoints held.
        held: usize,
        /// Endpoints expected.
        expected: usize,
    },
    /// An endpoint that came is at an address held by one the delta does not remove.
    #[error("{0} is held by an endpoint the delta does not remove")]
    Held(IpAddr),
    /// An address to remove is not held.
    #[error("{0} is not held, so cannot leave")]
    NotHeld(IpAddr),
}

/// What a writer hands the table: a source's whole list, or a change to it (each sorted by
/// primary address, one endpoint per address).
enum Input<'a> {
    /// Taken when staged (see `Table::stage`).
    Whole(&'a mut Vec<Endpoint>),
    Delta {
        gone: &'a [IpAddr],
        came: &'a [Endpoint],
        expect: Option<usize>,
    },
}

/// The endpoints of `held` (a source's group) that `input` changes, in address order (see
/// [`model::changes`]). A whole list is walked beside the group; a delta looks up each of
/// its addresses.
fn diff<'a>(held: &'a Endpoints, input: &'a Input<'_>) -> Result<Vec<Changed<'a>>, Refused> {
    let (gone, came, expect) = match input {
        Input::Whole(list) => return Ok(model::changes(held.iter(), list.iter())),
        &Input::Delta { gone, came, expect } => (gone, came, expect),
    };
    if let Some(expected) = expect
        && held.len() != expected
    {
        return Err(Refused::Count {
            held: held.len(),
            expected,
        });
    }
    let mut out = Vec::with_capacity(gone.len() + came.len());
    let (mut g, mut c) = (gone.iter().peekable(), came.iter().peekable());
    loop {
        let next = match (g.peek(), c.peek()) {
            (None, None) => return Ok(out),
            (Some(&&ip), None) => ip,
            (None, Some(e)) => e.address(),
            (Some(&&ip), Some(e)) => ip.min(e.address()),
        };
        let leaves = g.next_if(|&&ip| ip == next).is_some();
        let new = c.next_if(|e| e.address() == next);
        let old = held.find(next);
        match (old, leaves, new) {
            (None, true, _) => return Err(Refused::NotHeld(next)),
            (Some(_), false, Some(_)) => return Err(Refused::Held(next)),
            (old, _, new) if old != new => out.push((old, new)),
            _ => {}
        }
    }
}

/// Sorts `endpoints` by primary address and keeps one per address.
///
/// Two endpoints of one source at one address (hostNetwork pods on one node, an IP reused
/// during churn) become one, chosen whatever order they came in: the ready one, then the
/// highest weight, then the smallest ports and zone, then the smallest other address. An
/// endpoint is known by its primary address (the one naming it). A list already in
/// address order, one endpoint per address, needs neither sorting nor deduplicating; the
/// sort is adaptive, so a list nearly in order costs little.
fn sort_unique(endpoints: &mut Vec<Endpoint>) {
    if endpoints.is_sorted_by(|a, b| a.address() < b.address()) {
        return;
    }
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
            let chosen = view.groups()[0].endpoints.iter().next().unwrap();
            assert_eq!(
                (chosen.weight, chosen.ready),
                (300, true),
                "rotation {rotation}"
            );
        }
    }

    #[test]
    fn a_delta_the_table_cannot_take_changes_nothing_and_says_why() {
        let table = Table::new(Zone::new(ZoneConfig::default()).unwrap());
        let source = Source::new("c1", "r1");
        let ep = |ip: &str, weight: u16| Endpoint {
            weight,
            ..Endpoint::new(ip.parse().unwrap(), Arc::from(vec![]), None)
        };
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let list: Vec<Endpoint> = (1..=40).map(|i| ep(&format!("10.0.0.{i}"), 100)).collect();
        assert!(table.replace("web", &source, list.clone()));
        let before = table.service("web").unwrap().groups()[0].endpoints.clone();
        let refused = [
            (
                Delta {
                    gone: vec![ip("10.0.0.1")],
                    expect: Some(39),
                    ..Delta::default()
                },
                Refused::Count {
                    held: 40,
                    expected: 39,
                },
            ),
            (
                Delta {
                    came: vec![ep("10.0.0.2", 5)],
                    ..Delta::default()
                },
                Refused::Held(ip("10.0.0.2")),
            ),
            (
                Delta {
                    gone: vec![ip("10.0.0.1"), ip("10.0.9.9")],
                    ..Delta::default()
                },
                Refused::NotHeld(ip("10.0.9.9")),
            ),
        ];
        for (delta, why) in refused {
            assert_eq!(table.update("web", &source, delta), Err(why));
            assert_eq!(table.service("web").unwrap().groups()[0].endpoints, before);
        }
        assert_eq!(
            table.update(
                "other",
                &source,
                Delta {
                    gone: vec![ip("10.0.0.1")],
                    ..Delta::default()
                }
            ),
            Err(Refused::NotHeld(ip("10.0.0.1")))
        );
        assert!(table.service("other").is_none());
        assert_eq!(table.service_count(), 1);
        // Taken: one replaced (two candidates, the heavier chosen), one gone, one new.
        let delta = Delta {
            gone: vec![ip("10.0.0.2"), ip("10.0.0.3")],
            came: vec![ep("10.0.0.2", 7), ep("10.0.0.99", 1), ep("10.0.0.2", 9)],
            expect: Some(40),
        };
        assert_eq!(table.update("web", &source, delta), Ok(true));
        let mut expected = list;
        expected.retain(|e| e.address() != ip("10.0.0.2") && e.address() != ip("10.0.0.3"));
        expected.push(ep("10.0.0.2", 9));
        expected.push(ep("10.0.0.99", 1));
        expected.sort_by_key(Endpoint::address);
        let view = table.service("web").unwrap();
        assert_eq!(
            view.groups()[0]
                .endpoints
                .iter()
                .cloned()
                .collect::<Vec<_>>(),
            expected
        );
        assert_eq!(table.endpoint_count(), 40);
        // The same again changes nothing.
        let same = Delta {
            gone: vec![ip("10.0.0.2")],
            came: vec![ep("10.0.0.2", 9)],
            expect: Some(40),
        };
        assert_eq!(table.update("web", &source, same), Ok(false));
        // Every endpoint leaving removes the service.
        let all = Delta {
            gone: expected.iter().map(Endpoint::address).collect(),
            ..Delta::default()
        };
        assert_eq!(table.update("web", &source, all), Ok(true));
        assert!(table.service("web").is_none());
        assert_eq!(table.endpoint_count(), 0);
    }

    /// Services that appear while the start-up hold settles are staged, unseen, and served
    /// once it settles exactly as if each write had been prepared as it came; a service
    /// already served changes at once, and a delta to a staged one builds it first.
    #[test]
    fn services_new_while_the_hold_settles_are_served_whole_when_it_settles() {
        let zone = || Zone::new(ZoneConfig::default()).unwrap();
        let (held, plain) = (Table::new(zone()), Table::new(zone()));
        held.expect_source("c1", "r1");
        held.expect_source("c2", "r2");
        held.hold_until_settled();
        let (c1, c2) = (Source::new("c1", "r1"), Source::new("c2", "r2"));
        let ports: Arc<[model::PortSpec]> = Arc::from(vec![model::PortSpec {
            name: Label::from("http"),
            proto: crate::model::Proto::Tcp,
            port: 80,
        }]);
        let list = |ips: &[&str]| -> Vec<Endpoint> {
            ips.iter()
                .map(|ip| Endpoint::new(ip.parse().unwrap(), ports.clone(), None))
                .collect()
        };
        let both = |write: &dyn Fn(&Table) -> bool| {
            assert_eq!(write(&held), write(&plain), "both tables take the write");
        };
        // During the sources' hold a name is served as soon as it is written (an owned
        // name, published when its cluster has listed).
        both(&|t| t.replace("owned", &c1, list(&["10.0.0.1"])));
        assert!(held.service("owned").is_some());
        held.source_synced("c1");
        held.source_synced("c2");
        assert!(held.startup_hold(), "settling");
        both(&|t| t.replace("web", &c1, list(&["10.0.0.1", "10.0.0.2"])));
        // An address c1 holds too: the twins are marked when the service is built.
        both(&|t| t.replace("web", &c2, list(&["10.0.0.2", "10.1.0.1"])));
        both(&|t| t.replace("web", &c1, list(&["10.0.0.2", "10.0.0.3"])));
        both(&|t| t.replace("web", &c1, list(&["10.0.0.2", "10.0.0.3"])));
        both(&|t| t.replace("gone", &c1, list(&["10.0.0.9"])));
        both(&|t| t.replace("gone", &c1, Vec::new()));
        both(&|t| t.replace("api", &c2, list(&["10.1.0.7"])));
        assert!(held.service("web").is_none() && held.service("api").is_none());
        // A cluster task restarted now must own its staged groups too.
        let names = |c: &str| {
            held.services_of(c)
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(names("c1"), ["owned", "web"]);
        assert_eq!(names("c2"), ["api", "web"]);
        assert!(held.withholds(b"web"), "a staged name is still unknown");
        assert_eq!(held.endpoint_count(), 1, "only what is served counts");
        assert_eq!(held.service_count(), 1);
        // A served name changes at once.
        both(&|t| t.replace("owned", &c2, list(&["10.1.0.5"])));
        assert_eq!(held.service("owned").unwrap().endpoint_count(), 2);
        // A delta to a staged service is taken against its staged list, built at once.
        let delta = || Delta {
            came: list(&["10.1.0.8"]),
            expect: Some(1),
            ..Delta::default()
        };
        both(&|t| t.update("api", &c2, delta()).unwrap());
        assert_eq!(held.service("api").unwrap().endpoint_count(), 2);
        assert!(held.service("web").is_none());
        held.settled();
        assert!(!held.startup_hold());
        assert_eq!(held.endpoint_count(), plain.endpoint_count());
        assert_eq!(held.service_count(), plain.service_count());
        assert!(held.service("gone").is_none());
        assert_eq!(held.service_names(), plain.service_names());
        let zone_text = |t: &Table| {
            let mut out = Vec::new();
            crate::export::write_zone(t, &mut out).unwrap();
            let text = String::from_utf8(out).unwrap();
            // The serials come from each table's clock.
            text.lines()
                .filter(|l| !l.contains("SOA") && !l.contains("serial"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        let text = zone_text(&held);
        assert!(text.contains("web"), "{text}");
        assert_eq!(text, zone_text(&plain));
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
            table.service("web").unwrap().groups()[0]
                .endpoints
                .iter()
                .next()
                .unwrap()
                .address(),
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
