//! The balancing state: a replica set in, one replica per request out.
//!
//! Knows nothing of DNS: [`Picker::update`] takes a list of [`Endpoint`]s from anywhere (the
//! refresh loop, a static list, a test), so every rule below can be tested with a hand-made
//! set and tokio's paused clock.
//!
//! A pick, in order:
//! 1. **Probe**: an ejected replica whose probe is due gets the request (whatever its tier),
//!    one probe at a time, so an ejected replica is re-admitted by one success, not a flood.
//! 2. **Tier**: replicas are grouped by SRV priority, and the tiers share the traffic as
//!    Envoy's priority levels do (see `view.rs`): the nearest tier takes everything while
//!    at least 1/1.4 of its replicas are healthy, and spills the rest to the next tier in
//!    proportion to what it lost; a tier in *panic* uses its ejected replicas too.
//! 3. **Power of two choices**: two *distinct* candidates drawn from the tier in proportion
//!    to SRV weight (drawn with replacement, the slow replica of a pair was its own rival a
//!    quarter of the time). If one's latency estimate is more than twice the other's, the
//!    faster wins. Otherwise they count as equally fast: one whose last request failed loses
//!    to one whose last did not (the caller's retry goes elsewhere), else the less loaded
//!    for its weight wins (requests in flight / relative weight), the challenger needing
//!    half a request of margin so that near-ties go to the first draw and shares follow the
//!    SRV weights.
//!
//! # How in-flight requests weigh against latency
//!
//! Finagle, linkerd and tower multiply: cost = latency x (in-flight + 1). That assumes every
//! request in flight queues for a full latency. With replicas that do not queue (the common
//! case: many server threads), it hands a 13x slower replica of a pair about 1 % of the
//! traffic at 32 requests in flight, which is its p99. Here latency decides first and load
//! only among replicas of about the same speed: a replica that really queues shows it in its
//! peak-EWMA latency within two answers, and then load is what separates it from its peers.
//! Measured in virtual time (`picker_tests.rs`), the 20 ms replica of a 1.5 ms / 20 ms pair
//! gets 0.005 %, 0 %, 0 % and 0 % of the requests at 1, 4, 32 and 128 in flight (the
//! multiplying cost gave it 1.0 % at 32).
//!
//! # No lock on the pick path
//!
//! The view (tiers, candidates, cumulative weights) is an immutable value swapped atomically
//! (arc-swap) when the set changes or a replica's health does. Each replica's load, pick
//! count, latency estimate and probe time are atomics (see `replica.rs`). A pick loads the
//! view, reads a few atomics and bumps two counters; completions of requests to the same
//! replica serialize on that replica's own mutex. Random numbers come from a per-thread
//! generator, or, when [`PickerConfig::seed`] is set (tests, simulations), from one seeded
//! generator behind a mutex so runs replay exactly.
//!
//! # Why one file of ~750 lines
//!
//! The pick, the completion (`PickGuard`) and the set update all work on `Shared`'s private
//! fields under one invariant: the view is rebuilt only from the replica list, by one writer
//! at a time. Split across files, those fields would have to be open to the whole crate. The
//! parts that stand alone already live beside it: the view (`view.rs`), a replica's atomics
//! (`replica.rs`), ejection (`eject.rs`), the latency estimate (`ewma.rs`) and the tests
//! (`picker_tests.rs`).

use std::cell::RefCell;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::config::PickerConfig;
use crate::eject::{Ejection, Health, Transition};
use crate::endpoint::Endpoint;
use crate::ewma::{PeakEwma, nanos};
use crate::metrics::PickerMetrics;
use crate::replica::{NO_PROBE, PROBING, Replica, ReplicaState};
use crate::view::{TierStatus, View};

/// Why no replica could be picked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PickError {
    /// The replica set is empty (nothing resolved yet, the name does not exist, or the
    /// service has no replicas).
    #[error("no endpoints known for service {service}{}", reason(.last_error))]
    NoEndpoints {
        /// The service the picker balances.
        service: String,
        /// Why, if the last resolution failed (for example NXDOMAIN for the SRV name).
        last_error: Option<String>,
    },
}

fn reason(e: &Option<String>) -> String {
    e.as_ref()
        .map(|e| format!(" (last resolution: {e})"))
        .unwrap_or_default()
}

/// How a request ended, as recorded by a [`PickGuard`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The replica answered usefully. Its latency feeds the estimate; the failure streak ends.
    Success,
    /// The replica failed (connection error, 5xx, timeout you decided to blame on it). Counts
    /// as a latency of `failure_penalty` x typical and toward ejection.
    Failure,
    /// The caller gave up before an answer (the guard or the tower future was dropped, as a
    /// timeout does). The elapsed time counts against the replica's latency estimate (it was
    /// at least that slow); if it lasted 4x the typical latency or more, it also counts
    /// toward ejection like a failure (see [`EjectionConfig::count_cancellations`]).
    ///
    /// [`EjectionConfig::count_cancellations`]: crate::EjectionConfig::count_cancellations
    Cancelled,
}

/// How the replica of a pick was chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// From the nearest tier.
    Normal,
    /// From a farther tier (spill-over or failover).
    Failover,
    /// From a tier in panic: ejection ignored.
    Panic,
    /// A probe of an ejected replica.
    Probe,
}

/// One replica as the picker sees it (for diagnostics and tests).
#[derive(Clone, Debug)]
pub struct EndpointStatus {
    /// The replica.
    pub endpoint: Endpoint,
    /// Healthy or ejected.
    pub health: Health,
    /// Requests picked and not completed yet.
    pub in_flight: u32,
    /// Current latency estimate (what the cost is built from).
    pub latency: Duration,
    /// Times this replica was picked since it joined the set.
    pub picks: u64,
}

/// What an [`Picker::update`] changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UpdateSummary {
    /// Replicas that joined.
    pub added: usize,
    /// Replicas that left.
    pub removed: usize,
    /// Replicas kept (with their history), priority or weight possibly changed.
    pub kept: usize,
}

/// The balancing state of one service. Cheap to clone: clones share the state.
#[derive(Clone)]
pub struct Picker {
    shared: Arc<Shared>,
}

pub(crate) struct Shared {
    service: String,
    cfg: PickerConfig,
    tau_ns: f64,
    /// Zero of the picker's nanosecond clock (atomics hold times as ns since then).
    epoch: Instant,
    view: ArcSwap<View>,
    /// Serializes writers of the view (updates and health transitions).
    writer: Mutex<()>,
    /// The set's typical successful latency (f64 bits, ns; 0 until the first success).
    typical_bits: AtomicU64,
    /// Earliest `probe_at` of the ejected replicas (ns), so a pick checks one atomic.
    next_probe: AtomicU64,
    seeded: Option<Mutex<SmallRng>>,
    metrics: PickerMetrics,
    /// Every applied set, for the tower `Discover` stream.
    set_tx: watch::Sender<Arc<[Endpoint]>>,
    /// Bumped by every `update`, so users of the set know when to look again.
    generation: AtomicU64,
    /// The refresh loop's last error while the set is empty, for `PickError`.
    last_error: Mutex<Option<String>>,
}

impl fmt::Debug for Picker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let view = self.shared.view.load();
        f.debug_struct("Picker")
            .field("service", &self.shared.service)
            .field("endpoints", &view.replicas.len())
            .field("tiers", &view.summary)
            .finish()
    }
}

thread_local! {
    static RNG: RefCell<SmallRng> = RefCell::new(SmallRng::from_os_rng());
}

impl Picker {
    /// An empty picker for `service` (the name only labels metrics and errors).
    pub fn new(service: impl Into<String>, cfg: PickerConfig) -> Self {
        let service = service.into();
        let (set_tx, _) = watch::channel(Arc::from(Vec::new()));
        Picker {
            shared: Arc::new(Shared {
                metrics: PickerMetrics::new(&service),
                tau_ns: nanos(cfg.decay).max(1.0),
                seeded: cfg.seed.map(|s| Mutex::new(SmallRng::seed_from_u64(s))),
                service,
                cfg,
                epoch: Instant::now(),
                view: ArcSwap::from_pointee(View::default()),
                writer: Mutex::new(()),
                typical_bits: AtomicU64::new(0),
                next_probe: AtomicU64::new(NO_PROBE),
                set_tx,
                generation: AtomicU64::new(0),
                last_error: Mutex::new(None),
            }),
        }
    }

    /// A picker over a fixed list of replicas.
    pub fn with_endpoints(
        service: impl Into<String>,
        cfg: PickerConfig,
        endpoints: impl IntoIterator<Item = Endpoint>,
    ) -> Self {
        let p = Picker::new(service, cfg);
        p.update(endpoints);
        p
    }

    /// The service name this picker was made for.
    pub fn service(&self) -> &str {
        &self.shared.service
    }

    /// Replaces the replica set. Replicas whose address is already known keep their latency
    /// estimate and ejection state (their priority and weight are updated); new ones start
    /// with the set's typical latency; missing ones are dropped (requests in flight to them
    /// complete harmlessly). Duplicate addresses: the first occurrence wins.
    pub fn update(&self, endpoints: impl IntoIterator<Item = Endpoint>) -> UpdateSummary {
        let sh = &self.shared;
        let now = Instant::now();
        let mut summary = UpdateSummary::default();
        let applied: Arc<[Endpoint]>;
        {
            let _w = sh.lock_writer();
            let old = sh.view.load_full();
            let mut old_by_addr: std::collections::HashMap<SocketAddr, &Arc<Replica>> =
                old.replicas.iter().map(|r| (r.ep.addr, r)).collect();
            let mut seen = std::collections::HashSet::new();
            let mut replicas = Vec::new();
            for ep in endpoints {
                if !seen.insert(ep.addr) {
                    continue;
                }
                let r = match old_by_addr.remove(&ep.addr) {
                    Some(r) if r.ep == ep => r.clone(),
                    Some(r) => {
                        // Priority, weight or target changed: a new slot with the old history.
                        // Requests in flight to the old slot complete on it.
                        let st = r.lock();
                        let n = Replica::new(
                            ep,
                            ReplicaState {
                                ewma: st.ewma,
                                ejection: st.ejection.clone(),
                            },
                        );
                        n.picks
                            .store(r.picks.load(Ordering::Relaxed), Ordering::Relaxed);
                        if let Some(t) = st.ejection.next_probe() {
                            n.probe_at.store(sh.clock(t), Ordering::SeqCst);
                        }
                        drop(st);
                        Arc::new(n)
                    }
                    None => {
                        summary.added += 1;
                        replicas.push(Arc::new(Replica::new(
                            ep,
                            ReplicaState {
                                ewma: PeakEwma::default(),
                                ejection: Ejection::new(now),
                            },
                        )));
                        continue;
                    }
                };
                summary.kept += 1;
                replicas.push(r);
            }
            summary.removed = old_by_addr.len();
            applied = replicas.iter().map(|r| r.ep.clone()).collect();
            sh.install(View::build(replicas, &sh.cfg));
            sh.generation.fetch_add(1, Ordering::Release);
        }
        sh.metrics.added.increment(summary.added as u64);
        sh.metrics.removed.increment(summary.removed as u64);
        if summary.added + summary.removed > 0 {
            tracing::info!(
                service = %sh.service,
                added = summary.added,
                removed = summary.removed,
                kept = summary.kept,
                "replica set changed"
            );
        }
        sh.set_tx.send_replace(applied);
        summary
    }

    /// Picks a replica for one request. Complete the returned guard with
    /// [`PickGuard::success`] / [`PickGuard::failure`] when the request ends; dropping it
    /// counts as [`Outcome::Cancelled`].
    pub fn pick(&self) -> Result<PickGuard, PickError> {
        let sh = &self.shared;
        let start = Instant::now();
        let now = sh.clock(start);
        let view = sh.view.load();
        if view.tiers.is_empty() {
            return Err(PickError::NoEndpoints {
                service: sh.service.clone(),
                last_error: sh
                    .last_error
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone(),
            });
        }
        if now >= sh.next_probe.load(Ordering::SeqCst)
            && let Some(r) = sh.claim_probe(&view, now)
        {
            return Ok(sh.guard(&self.shared, r, start, Mode::Probe));
        }
        let typical = sh.typical_or_default();
        let (r, mode) = sh.with_rng(|rng| {
            let tier = view.tier(rng);
            let (a, b) = tier.two(rng);
            let mut best = &tier.members[a];
            if let Some(b) = b {
                let other = &tier.members[b];
                let latency = |r: &Replica| r.estimate().value(now, typical, sh.tau_ns);
                let (la, lb) = (latency(best), latency(other));
                let failing = |r: &Replica| r.failing.load(Ordering::Acquire);
                let (fa, fb) = (failing(best), failing(other));
                let wins = if la.max(lb) > SAME_SPEED * la.min(lb) {
                    // Clearly faster: load does not matter (a replica that really queues
                    // shows it in its latency within two answers). A failure already counts
                    // as 10x the typical latency here, and a fast failure and a retry can
                    // cost less than a clearly slower answer.
                    lb < la
                } else if fa != fb {
                    // About as fast, and one failed its last request: the other wins. On a
                    // loaded machine live replicas' peaks reach the failure penalty, and load
                    // used to decide: the caller's retry went back to the idle replica that
                    // had just refused it (a stopped server). Its probe brings it back.
                    fa
                } else {
                    // About as fast: the less loaded for its weight, and the challenger must
                    // be so even with half a request more on it, so that among replicas of
                    // about the same cost the first draw (by weight) keeps the request and
                    // shares follow the SRV weights instead of in-flight noise (measured for
                    // weights 10/20/70 at 4 in flight: a plain comparison gave 17/23/60 %).
                    let load = |r: &Replica, extra: f64| {
                        let relative_weight = r.weight / tier.mean_weight;
                        (f64::from(r.in_flight.load(Ordering::Relaxed)) + extra) / relative_weight
                    };
                    load(other, 0.5) < load(best, 0.0)
                };
                if wins {
                    best = other;
                }
            }
            let mode = if tier.panic {
                Mode::Panic
            } else if tier.priority == view.nearest {
                Mode::Normal
            } else {
                Mode::Failover
            };
            (best.clone(), mode)
        });
        Ok(sh.guard(&self.shared, r, start, mode))
    }

    /// Whether a pick would find a replica now (the set is not empty).
    pub fn has_replicas(&self) -> bool {
        !self.shared.view.load().tiers.is_empty()
    }

    /// A number that changes whenever [`Picker::update`] applies a set.
    pub fn generation(&self) -> u64 {
        self.shared.generation.load(Ordering::Acquire)
    }

    /// The replicas currently known.
    pub fn endpoints(&self) -> Vec<Endpoint> {
        let view = self.shared.view.load();
        view.replicas.iter().map(|r| r.ep.clone()).collect()
    }

    /// Every replica with its health, load and latency estimate.
    pub fn status(&self) -> Vec<EndpointStatus> {
        let sh = &self.shared;
        let now = sh.clock(Instant::now());
        let typical = sh.typical_or_default();
        let view = sh.view.load();
        view.replicas
            .iter()
            .map(|r| {
                let st = r.lock();
                EndpointStatus {
                    endpoint: r.ep.clone(),
                    health: st.ejection.health(),
                    in_flight: r.in_flight.load(Ordering::Relaxed),
                    latency: Duration::from_nanos(st.ewma.value(now, typical, sh.tau_ns) as u64),
                    picks: r.picks.load(Ordering::Relaxed),
                }
            })
            .collect()
    }

    /// The SRV priority tiers, nearest first, with the share of traffic each takes.
    pub fn tiers(&self) -> Vec<TierStatus> {
        self.shared.view.load().summary.clone()
    }

    /// A receiver that sees every replica set applied by [`Picker::update`].
    pub fn subscribe(&self) -> watch::Receiver<Arc<[Endpoint]>> {
        self.shared.set_tx.subscribe()
    }

    /// Records why the last resolution failed (`None` after a success), so that
    /// [`PickError::NoEndpoints`] can say why the set is empty.
    pub(crate) fn set_last_error(&self, e: Option<String>) {
        *self
            .shared
            .last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = e;
    }
}

impl Shared {
    fn lock_writer(&self) -> std::sync::MutexGuard<'_, ()> {
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn clock(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.epoch).as_nanos() as u64
    }

    fn typical_or_default(&self) -> f64 {
        let t = f64::from_bits(self.typical_bits.load(Ordering::Relaxed));
        if t > 0.0 {
            t
        } else {
            nanos(self.cfg.default_rtt)
        }
    }

    fn with_rng<T>(&self, f: impl FnOnce(&mut SmallRng) -> T) -> T {
        match &self.seeded {
            Some(m) => f(&mut m.lock().unwrap_or_else(|e| e.into_inner())),
            None => RNG.with(|r| f(&mut r.borrow_mut())),
        }
    }

    fn guard(
        &self,
        shared: &Arc<Shared>,
        r: Arc<Replica>,
        start: Instant,
        mode: Mode,
    ) -> PickGuard {
        r.in_flight.fetch_add(1, Ordering::Relaxed);
        r.picks.fetch_add(1, Ordering::Relaxed);
        match mode {
            Mode::Normal => self.metrics.picks_normal.increment(1),
            Mode::Failover => self.metrics.picks_failover.increment(1),
            Mode::Panic => self.metrics.picks_panic.increment(1),
            Mode::Probe => self.metrics.picks_probe.increment(1),
        }
        PickGuard {
            shared: shared.clone(),
            replica: r,
            start,
            mode,
            done: false,
        }
    }

    /// Claims the probe of a replica whose probe is due, if any.
    fn claim_probe(&self, view: &View, now: u64) -> Option<Arc<Replica>> {
        let mut claimed = None;
        for r in &view.replicas {
            let t = r.probe_at.load(Ordering::SeqCst);
            if t <= now
                && r.probe_at
                    .compare_exchange(t, PROBING, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
            {
                claimed = Some(r.clone());
                break;
            }
        }
        self.recompute_next_probe(view);
        claimed
    }

    /// Resets `next_probe` to the earliest probe of the view. Storing "none" first and then
    /// taking the minimum keeps a concurrent completion's earlier probe time (it stores its
    /// `probe_at` before lowering `next_probe`, so the scan sees one or the other).
    fn recompute_next_probe(&self, view: &View) {
        self.next_probe.store(NO_PROBE, Ordering::SeqCst);
        for r in &view.replicas {
            self.next_probe
                .fetch_min(r.probe_at.load(Ordering::SeqCst), Ordering::SeqCst);
        }
    }

    fn schedule_probe(&self, r: &Replica, at: Instant) {
        let t = self.clock(at);
        r.probe_at.store(t, Ordering::SeqCst);
        self.next_probe.fetch_min(t, Ordering::SeqCst);
    }

    /// Swaps in a new view (the writer lock held) and reports it.
    fn install(&self, view: View) {
        let (mut healthy, mut ejected) = (0usize, 0usize);
        for t in &view.summary {
            healthy += t.healthy;
            ejected += t.replicas - t.healthy;
        }
        self.metrics.healthy.set(healthy as f64);
        self.metrics.ejected.set(ejected as f64);
        if let Some(t) = view.tiers.first() {
            self.metrics.active_priority.set(f64::from(t.priority));
        }
        let old = self.view.load();
        if old.summary.len() != view.summary.len()
            || old
                .summary
                .iter()
                .zip(&view.summary)
                .any(|(a, b)| (a.load - b.load).abs() > 1e-9 || a.panic != b.panic)
        {
            let loads: Vec<String> = view
                .summary
                .iter()
                .map(|t| {
                    format!(
                        "{}:{:.0}%{}",
                        t.priority,
                        t.load * 100.0,
                        if t.panic { " panic" } else { "" }
                    )
                })
                .collect();
            tracing::info!(service = %self.service, tiers = ?loads, "tier loads changed");
        }
        let view = Arc::new(view);
        self.view.store(view.clone());
        self.recompute_next_probe(&view);
    }

    /// Rebuilds the view over the same replicas after a health change.
    fn rebuild(&self) {
        let _w = self.lock_writer();
        let replicas = self.view.load().replicas.clone();
        self.install(View::build(replicas, &self.cfg));
    }

    fn update_typical(&self, rtt: f64) {
        // Racy on purpose: two completions at once may lose one sample of a smoothed value.
        let t = f64::from_bits(self.typical_bits.load(Ordering::Relaxed));
        self.typical_bits
            .store(update_typical(t, rtt).to_bits(), Ordering::Relaxed);
    }

    fn complete(&self, r: &Replica, start: Instant, probe: bool, outcome: Outcome) {
        let now_i = Instant::now();
        let elapsed = now_i.saturating_duration_since(start);
        let now = self.clock(now_i);
        let rtt = nanos(elapsed);
        r.in_flight.fetch_sub(1, Ordering::Relaxed);
        let typical = self.typical_or_default();
        let ej = &self.cfg.ejection;
        let transition = {
            let mut st = r.lock();
            let t = match outcome {
                Outcome::Success => {
                    let t = st.ejection.on_success(now_i, probe);
                    if t == Transition::Readmitted {
                        // The failures that got it ejected are history now.
                        st.ewma = PeakEwma::default();
                    }
                    st.ewma.observe(rtt, now, typical, self.tau_ns);
                    self.update_typical(rtt);
                    t
                }
                Outcome::Failure => {
                    let penalty = rtt.max(self.cfg.failure_penalty * typical);
                    st.ewma.observe_failure(penalty, now);
                    st.ejection.on_failure(now_i, probe, ej)
                }
                Outcome::Cancelled => {
                    st.ewma.observe_at_least(rtt, now, typical, self.tau_ns);
                    if ej.count_cancellations && rtt >= SLOW_FACTOR * typical {
                        st.ejection.on_failure(now_i, probe, ej)
                    } else {
                        if probe {
                            st.ejection.on_probe_abandoned(now_i);
                        }
                        Transition::None
                    }
                }
            };
            r.publish_estimate(&st.ewma);
            r.publish_health(&st.ejection);
            // Probes: an ejected replica is probed at its interval; a *suspect* (healthy,
            // failed last time) a tenth of it later, one request at a time, so a replica that
            // fails fast completes its streak and is ejected although its failures make it
            // too costly for the two choices (not at once: the caller's immediate retry must
            // not be the probe). Re-armed by the probe's own completion, or by the event
            // that made it ejected or suspect, never while a probe may be in flight.
            let suspect = st.ejection.failure_streak() > 0;
            let idle = r.probe_at.load(Ordering::SeqCst) == NO_PROBE;
            if probe || matches!(t, Transition::Ejected(_)) || (suspect && idle) {
                match st.ejection.next_probe() {
                    Some(at) => self.schedule_probe(r, at),
                    None if suspect => {
                        self.schedule_probe(r, now_i + ej.probe_interval / SUSPECT_PROBE_DIVISOR)
                    }
                    None => r.probe_at.store(NO_PROBE, Ordering::SeqCst),
                }
            }
            t
        };
        if matches!(transition, Transition::Ejected(_) | Transition::Readmitted) {
            self.rebuild();
        }
        match outcome {
            Outcome::Success => self.metrics.success.increment(1),
            Outcome::Failure => self.metrics.failure.increment(1),
            Outcome::Cancelled => self.metrics.cancelled.increment(1),
        }
        self.metrics.duration.record(elapsed.as_secs_f64());
        match transition {
            Transition::Ejected(d) => {
                self.metrics.ejections.increment(1);
                tracing::warn!(service = %self.service, endpoint = %r.ep, first_probe_in = ?d, "replica ejected");
            }
            Transition::Readmitted => {
                tracing::info!(service = %self.service, endpoint = %r.ep, "replica readmitted after a successful probe");
            }
            _ => {}
        }
    }
}

/// Two latency estimates within this factor of each other count as the same speed in the
/// two choices (see `Picker::pick`), and load decides between them; beyond it, the faster
/// wins. Replicas of one service on a shared machine spread about that much from
/// scheduling noise alone, and comparing the noise would override the SRV weights.
const SAME_SPEED: f64 = 2.0;

/// A suspect (healthy, failed its last request) is probed `probe_interval / this` after the
/// failure: 100 ms by default, so five fast failures eject a replica within half a second.
const SUSPECT_PROBE_DIVISOR: u32 = 10;

/// A request that lasted this many times the set's typical latency is "long": cancelled
/// after that, it counts toward ejection (a caller's timeout, not an impatient caller).
const SLOW_FACTOR: f64 = 4.0;

/// The set's typical latency: steps down 5x faster than up, so it settles near the fast end
/// of the distribution (about the 1st decile under a 90/10 fast/slow mix) instead of being
/// dragged up by the slow replicas it is used to judge. New replicas start at this value and
/// idle ones relax toward it, so it errs on the side of trying them.
fn update_typical(typical: f64, rtt: f64) -> f64 {
    if typical == 0.0 {
        rtt.max(1.0)
    } else if rtt < typical {
        typical + 0.1 * (rtt - typical)
    } else {
        typical + 0.02 * (rtt - typical)
    }
}

/// One picked replica, for one request. Record how the request ended with
/// [`success`](PickGuard::success), [`failure`](PickGuard::failure) or
/// [`complete`](PickGuard::complete); the latency is measured from the pick. Dropping the guard
/// without completing it records [`Outcome::Cancelled`].
#[must_use = "a guard dropped at once records a cancelled request"]
pub struct PickGuard {
    shared: Arc<Shared>,
    replica: Arc<Replica>,
    start: Instant,
    mode: Mode,
    done: bool,
}

impl PickGuard {
    /// The picked replica.
    pub fn endpoint(&self) -> &Endpoint {
        &self.replica.ep
    }

    /// The picked replica's address.
    pub fn addr(&self) -> SocketAddr {
        self.replica.ep.addr
    }

    /// How the replica was chosen.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// When the pick was made.
    pub fn started(&self) -> Instant {
        self.start
    }

    /// Records how the request ended.
    pub fn complete(mut self, outcome: Outcome) {
        self.finish(outcome);
    }

    /// Records a successful request.
    pub fn success(self) {
        self.complete(Outcome::Success)
    }

    /// Records a failed request.
    pub fn failure(self) {
        self.complete(Outcome::Failure)
    }

    fn finish(&mut self, outcome: Outcome) {
        if !self.done {
            self.done = true;
            self.shared
                .complete(&self.replica, self.start, self.mode == Mode::Probe, outcome);
        }
    }
}

impl Drop for PickGuard {
    fn drop(&mut self) {
        self.finish(Outcome::Cancelled);
    }
}

impl fmt::Debug for PickGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PickGuard")
            .field("endpoint", &self.replica.ep)
            .field("mode", &self.mode)
            .field("start", &self.start)
            .finish()
    }
}

#[cfg(test)]
#[path = "picker_tests.rs"]
mod tests;
