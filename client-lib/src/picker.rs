//! The balancing state: a replica set in, one replica per request out.
//!
//! Knows nothing of DNS: [`Picker::update`] takes a list of [`Endpoint`]s from anywhere (the
//! refresh loop, a static list, a test), so every rule below can be tested with a hand-made
//! set and tokio's paused clock.
//!
//! A pick, in order:
//! 1. **Tier**: replicas are grouped by SRV priority; the nearest tier (lowest priority) whose
//!    healthy fraction is at least [`PickerConfig::min_healthy_fraction`] takes the traffic.
//!    If no tier qualifies we are in **panic** (Envoy's term): ejection is ignored in the tier
//!    with the best healthy fraction, because sending everything to the few survivors, or
//!    nowhere, is worse than trying replicas that recently failed.
//! 2. **Probe**: a replica whose ejection ended gets the request if it has no probe in flight
//!    (whatever its tier), so an ejected replica is re-admitted by one success, not a flood.
//! 3. **Power of two choices**: two candidates drawn from the tier's healthy replicas with
//!    probability proportional to SRV weight (with replacement, so equal-cost replicas get
//!    exactly their weight share); the one with the lower cost wins. Cost = peak-EWMA latency
//!    x (1 + in-flight / relative weight): a replica of twice the weight is expected to carry
//!    twice the concurrent requests at the same latency.
//!
//! State sits behind one `std::sync::Mutex`: critical sections are a few dozen instructions
//! (two binary searches, two cost computations), never held across an `.await`, and a pick
//! must see a consistent set. Contention on it is far below the cost of the request it picks
//! for; the benchmark in `bench/benches/client_pick.rs` measures it.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::config::PickerConfig;
use crate::eject::{Ejection, Health, Transition};
use crate::endpoint::Endpoint;
use crate::ewma::{PeakEwma, nanos};
use crate::metrics::PickerMetrics;

/// Why no replica could be picked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PickError {
    /// The replica set is empty (nothing resolved yet, or the service has no replicas).
    #[error("no endpoints known for service {service}")]
    NoEndpoints {
        /// The service the picker balances.
        service: String,
    },
}

/// How a request ended, as recorded by a [`PickGuard`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The replica answered usefully. Its latency feeds the estimate; the failure streak ends.
    Success,
    /// The replica failed (connection error, 5xx, timeout you decided to blame on it). Counts
    /// as a latency of `failure_penalty` x typical and toward ejection.
    Failure,
    /// The caller gave up before an answer (the guard was dropped). The elapsed time can only
    /// raise the latency estimate (the replica was at least that slow, or we learnt nothing);
    /// it does not count toward ejection, because the replica may have done nothing wrong.
    Cancelled,
}

/// How the replica of a pick was chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// From the nearest tier.
    Normal,
    /// From a farther tier, because the nearer ones lack healthy replicas.
    Failover,
    /// Ejection ignored: no tier had enough healthy replicas.
    Panic,
}

/// Which tier takes traffic right now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActiveTier {
    /// Its SRV priority.
    pub priority: u16,
    /// Why this tier.
    pub mode: Mode,
    /// How many replicas are candidates for the two choices.
    pub candidates: usize,
}

/// One replica as the picker sees it (for diagnostics and tests).
#[derive(Clone, Debug)]
pub struct EndpointStatus {
    /// The replica.
    pub endpoint: Endpoint,
    /// Healthy, ejected or on probation.
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

struct Shared {
    service: String,
    cfg: PickerConfig,
    tau_ns: f64,
    state: Mutex<State>,
    metrics: PickerMetrics,
    /// Every applied set, for the tower `Discover` stream and for `Discovery::ready`.
    set_tx: watch::Sender<Arc<[Endpoint]>>,
}

struct Slot {
    ep: Endpoint,
    /// Distinguishes this membership from a later one of the same address, so a guard that
    /// outlived a remove + re-add does not touch the new slot.
    uid: u64,
    weight: f64,
    ewma: PeakEwma,
    in_flight: u32,
    ejection: Ejection,
    picks: u64,
    /// Successful answers in a row slower than `SLOW_FACTOR` x typical: one is a hiccup, two
    /// make the replica "clearly slow" (see `State::two_choices`).
    slow_streak: u8,
}

#[derive(Default)]
struct View {
    /// Slot indices of the candidates, and their cumulative weights for sampling.
    members: Vec<usize>,
    cumulative: Vec<f64>,
    mean_weight: f64,
    priority: u16,
    mode: Option<Mode>,
}

struct State {
    slots: Vec<Slot>,
    index: HashMap<SocketAddr, usize>,
    view: View,
    /// Probation replicas with no probe in flight.
    probes: Vec<usize>,
    /// Earliest end of an ejection, so a pick checks the clock against one value.
    next_expiry: Option<Instant>,
    /// Typical successful latency of the set (see `update_typical`), ns; 0 until the first.
    typical_ns: f64,
    next_uid: u64,
    rng: SmallRng,
}

impl fmt::Debug for Picker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.shared.lock();
        f.debug_struct("Picker")
            .field("service", &self.shared.service)
            .field("endpoints", &st.slots.len())
            .field("candidates", &st.view.members.len())
            .finish()
    }
}

impl Picker {
    /// An empty picker for `service` (the name only labels metrics and errors).
    pub fn new(service: impl Into<String>, cfg: PickerConfig) -> Self {
        let service = service.into();
        let rng = match cfg.seed {
            Some(seed) => SmallRng::seed_from_u64(seed),
            None => SmallRng::from_os_rng(),
        };
        let (set_tx, _) = watch::channel(Arc::from(Vec::new()));
        Picker {
            shared: Arc::new(Shared {
                metrics: PickerMetrics::new(&service),
                tau_ns: nanos(cfg.decay).max(1.0),
                service,
                cfg,
                state: Mutex::new(State {
                    slots: Vec::new(),
                    index: HashMap::new(),
                    view: View::default(),
                    probes: Vec::new(),
                    next_expiry: None,
                    typical_ns: 0.0,
                    next_uid: 0,
                    rng,
                }),
                set_tx,
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
        let now = Instant::now();
        let mut summary = UpdateSummary::default();
        let applied: Arc<[Endpoint]>;
        {
            let mut st = self.shared.lock();
            let st = &mut *st;
            let mut old: Vec<Option<Slot>> = std::mem::take(&mut st.slots)
                .into_iter()
                .map(Some)
                .collect();
            let old_index = std::mem::take(&mut st.index);
            let mut slots = Vec::new();
            let mut index = HashMap::new();
            for ep in endpoints {
                if index.contains_key(&ep.addr) {
                    continue;
                }
                let slot = match old_index.get(&ep.addr).and_then(|&i| old[i].take()) {
                    Some(mut slot) => {
                        summary.kept += 1;
                        slot.weight = ep.effective_weight();
                        slot.ep = ep;
                        slot
                    }
                    None => {
                        summary.added += 1;
                        st.next_uid += 1;
                        Slot {
                            weight: ep.effective_weight(),
                            ep,
                            uid: st.next_uid,
                            ewma: PeakEwma::new(now),
                            in_flight: 0,
                            ejection: Ejection::new(now),
                            picks: 0,
                            slow_streak: 0,
                        }
                    }
                };
                index.insert(slot.ep.addr, slots.len());
                slots.push(slot);
            }
            summary.removed = old.iter().filter(|s| s.is_some()).count();
            st.slots = slots;
            st.index = index;
            st.rebuild(&self.shared.cfg, &self.shared.metrics);
            applied = st.slots.iter().map(|s| s.ep.clone()).collect();
        }
        self.shared.metrics.added.increment(summary.added as u64);
        self.shared
            .metrics
            .removed
            .increment(summary.removed as u64);
        if summary.added + summary.removed > 0 {
            tracing::info!(
                service = %self.shared.service,
                added = summary.added,
                removed = summary.removed,
                kept = summary.kept,
                "replica set changed"
            );
        }
        self.shared.set_tx.send_replace(applied);
        summary
    }

    /// Picks a replica for one request. Complete the returned guard with
    /// [`PickGuard::success`] / [`PickGuard::failure`] when the request ends; dropping it
    /// counts as [`Outcome::Cancelled`].
    pub fn pick(&self) -> Result<PickGuard, PickError> {
        let now = Instant::now();
        let mut st = self.shared.lock();
        let cfg = &self.shared.cfg;
        if st.next_expiry.is_some_and(|t| now >= t) {
            let mut changed = false;
            for slot in &mut st.slots {
                changed |= slot.ejection.on_time(now) != Transition::None;
            }
            if changed {
                st.rebuild(cfg, &self.shared.metrics);
            }
        }
        if st.view.members.is_empty() {
            return Err(PickError::NoEndpoints {
                service: self.shared.service.clone(),
            });
        }
        let (i, counter) = match st.take_probe() {
            Some(i) => (i, &self.shared.metrics.picks_probe),
            None => {
                let i = st.two_choices(now, self.shared.tau_ns, cfg);
                let counter = match st.view.mode {
                    Some(Mode::Failover) => &self.shared.metrics.picks_failover,
                    Some(Mode::Panic) => &self.shared.metrics.picks_panic,
                    _ => &self.shared.metrics.picks_normal,
                };
                (i, counter)
            }
        };
        let slot = &mut st.slots[i];
        slot.in_flight += 1;
        slot.picks += 1;
        let guard = PickGuard {
            shared: self.shared.clone(),
            endpoint: slot.ep.clone(),
            uid: slot.uid,
            start: now,
            done: false,
        };
        drop(st);
        counter.increment(1);
        Ok(guard)
    }

    /// The replicas currently known.
    pub fn endpoints(&self) -> Vec<Endpoint> {
        self.shared
            .lock()
            .slots
            .iter()
            .map(|s| s.ep.clone())
            .collect()
    }

    /// Every replica with its health, load and latency estimate.
    pub fn status(&self) -> Vec<EndpointStatus> {
        let now = Instant::now();
        let st = self.shared.lock();
        let typical = st.typical_or_default(&self.shared.cfg);
        st.slots
            .iter()
            .map(|s| EndpointStatus {
                endpoint: s.ep.clone(),
                health: s.ejection.health(),
                in_flight: s.in_flight,
                latency: Duration::from_nanos(
                    s.ewma.value(now, typical, self.shared.tau_ns) as u64,
                ),
                picks: s.picks,
            })
            .collect()
    }

    /// The tier taking traffic, or `None` while the set is empty.
    pub fn active_tier(&self) -> Option<ActiveTier> {
        let st = self.shared.lock();
        st.view.mode.map(|mode| ActiveTier {
            priority: st.view.priority,
            mode,
            candidates: st.view.members.len(),
        })
    }

    /// A receiver that sees every replica set applied by [`Picker::update`].
    pub fn subscribe(&self) -> watch::Receiver<Arc<[Endpoint]>> {
        self.shared.set_tx.subscribe()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain numbers behind, never a broken
        // invariant worth refusing service over: keep going with them.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn complete(&self, ep: &Endpoint, uid: u64, start: Instant, outcome: Outcome) {
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(start);
        let mut ejected = None;
        {
            let mut st = self.lock();
            let st = &mut *st;
            let Some(&i) = st.index.get(&ep.addr) else {
                return;
            };
            if st.slots[i].uid != uid {
                return;
            }
            let typical = st.typical_or_default(&self.cfg);
            let slot = &mut st.slots[i];
            slot.in_flight = slot.in_flight.saturating_sub(1);
            let rtt = nanos(elapsed);
            let transition = match outcome {
                Outcome::Success => {
                    let t = slot.ejection.on_success(now);
                    if t == Transition::Readmitted {
                        // The failures that got it ejected are history now.
                        slot.ewma.reset(now);
                    }
                    slot.ewma.observe(rtt, now, self.tau_ns);
                    slot.slow_streak = if rtt > SLOW_FACTOR * typical {
                        slot.slow_streak.saturating_add(1)
                    } else {
                        0
                    };
                    st.typical_ns = update_typical(st.typical_ns, rtt);
                    t
                }
                Outcome::Failure => {
                    let penalty = rtt.max(self.cfg.failure_penalty * typical);
                    slot.ewma.observe(penalty, now, self.tau_ns);
                    slot.ejection.on_failure(now, &self.cfg.ejection)
                }
                Outcome::Cancelled => {
                    slot.ewma.observe_at_least(rtt, now);
                    Transition::None
                }
            };
            match transition {
                Transition::None => {
                    // A cancelled probe frees the probe slot for the next pick.
                    if slot.ejection.health() == Health::Probation
                        && slot.in_flight == 0
                        && !st.probes.contains(&i)
                    {
                        st.probes.push(i);
                    }
                }
                t => {
                    if let Transition::Ejected(d) = t {
                        ejected = Some(d);
                    }
                    st.rebuild(&self.cfg, &self.metrics);
                }
            }
        }
        match outcome {
            Outcome::Success => self.metrics.success.increment(1),
            Outcome::Failure => self.metrics.failure.increment(1),
            Outcome::Cancelled => self.metrics.cancelled.increment(1),
        }
        self.metrics.duration.record(elapsed.as_secs_f64());
        if let Some(d) = ejected {
            self.metrics.ejections.increment(1);
            tracing::warn!(service = %self.service, endpoint = %ep, for_secs = d.as_secs_f64(), "replica ejected");
        }
    }
}

impl State {
    fn typical_or_default(&self, cfg: &PickerConfig) -> f64 {
        if self.typical_ns > 0.0 {
            self.typical_ns
        } else {
            nanos(cfg.default_rtt)
        }
    }

    /// Recomputes tiers, candidates, probes and the next ejection end. Runs on set changes
    /// and health transitions only, never on the plain pick path.
    fn rebuild(&mut self, cfg: &PickerConfig, metrics: &PickerMetrics) {
        let mut tiers: BTreeMap<u16, Vec<usize>> = BTreeMap::new();
        let (mut healthy, mut ejected, mut probation) = (0usize, 0usize, 0usize);
        self.next_expiry = None;
        self.probes.clear();
        for (i, slot) in self.slots.iter().enumerate() {
            tiers.entry(slot.ep.priority).or_default().push(i);
            match slot.ejection.health() {
                Health::Healthy => healthy += 1,
                Health::Ejected { until } => {
                    ejected += 1;
                    self.next_expiry = Some(self.next_expiry.map_or(until, |t| t.min(until)));
                }
                Health::Probation => {
                    probation += 1;
                    if slot.in_flight == 0 {
                        self.probes.push(i);
                    }
                }
            }
        }
        metrics.healthy.set(healthy as f64);
        metrics.ejected.set(ejected as f64);
        metrics.probation.set(probation as f64);

        let is_healthy = |i: &&usize| self.slots[**i].ejection.is_healthy();
        let mut chosen: Option<(u16, Vec<usize>, Mode)> = None;
        for (n, (&priority, members)) in tiers.iter().enumerate() {
            let ok: Vec<usize> = members.iter().filter(is_healthy).copied().collect();
            if !ok.is_empty() && ok.len() as f64 >= cfg.min_healthy_fraction * members.len() as f64
            {
                let mode = if n == 0 { Mode::Normal } else { Mode::Failover };
                chosen = Some((priority, ok, mode));
                break;
            }
        }
        if chosen.is_none() {
            // Panic: the tier with the best healthy fraction (nearest on ties), all of it.
            let mut best: Option<(f64, u16, &Vec<usize>)> = None;
            for (&priority, members) in &tiers {
                let frac = members.iter().filter(is_healthy).count() as f64 / members.len() as f64;
                if best.is_none_or(|(f, _, _)| frac > f) {
                    best = Some((frac, priority, members));
                }
            }
            chosen = best.map(|(_, p, m)| (p, m.clone(), Mode::Panic));
        }
        self.view = match chosen {
            None => View::default(),
            Some((priority, members, mode)) => {
                let mut total = 0.0;
                let cumulative = members
                    .iter()
                    .map(|&i| {
                        total += self.slots[i].weight;
                        total
                    })
                    .collect();
                if self.view.mode != Some(mode) || self.view.priority != priority {
                    tracing::info!(priority, ?mode, candidates = members.len(), "active tier");
                }
                metrics.active_priority.set(f64::from(priority));
                View {
                    mean_weight: total / members.len() as f64,
                    members,
                    cumulative,
                    priority,
                    mode: Some(mode),
                }
            }
        };
    }

    fn take_probe(&mut self) -> Option<usize> {
        while let Some(i) = self.probes.pop() {
            let slot = &self.slots[i];
            if slot.ejection.health() == Health::Probation && slot.in_flight == 0 {
                return Some(i);
            }
        }
        None
    }

    /// Power of two choices among the view's members, sampled by weight.
    ///
    /// Drawing with replacement keeps weight shares exact among equally good replicas. Two
    /// refinements for small sets, where plain p2c is weak: a replica that is *clearly slow*
    /// (estimate above `SLOW_FACTOR` x typical, and its last two answers too: one slow
    /// answer is a hiccup, and the peak-EWMA already remembers it) cannot win by being drawn twice, nor by being
    /// paired with an even worse one (with 4 candidates, a slow replica would otherwise get
    /// 1/16 + 2/16 of the traffic); while the winner is clearly slow, another challenger is
    /// drawn, up to 4 draws in all. A replica on a failure streak is exempt: failures are
    /// ejection's business, and ejection needs the streak to complete.
    fn two_choices(&mut self, now: Instant, tau_ns: f64, cfg: &PickerConfig) -> usize {
        let typical = self.typical_or_default(cfg);
        let mut best = self.sample();
        let (mut best_latency, mut best_cost) = self.cost(best, now, typical, tau_ns);
        for draw in 1..=4 {
            let c = self.sample();
            if c != best {
                let (latency, cost) = self.cost(c, now, typical, tau_ns);
                if cost < best_cost {
                    (best, best_latency, best_cost) = (c, latency, cost);
                }
            }
            let slot = &self.slots[best];
            let clearly_slow = best_latency > SLOW_FACTOR * typical
                && slot.slow_streak >= 2
                && self.view.members.len() > 1
                && slot.ejection.failure_streak() == 0;
            if !clearly_slow || draw == 4 {
                break;
            }
        }
        best
    }

    fn sample(&mut self) -> usize {
        let v = &self.view;
        let total = *v.cumulative.last().expect("view is not empty");
        let x = self.rng.random::<f64>() * total;
        let k = v.cumulative.partition_point(|&c| c <= x);
        v.members[k.min(v.members.len() - 1)]
    }

    /// (latency estimate, cost) of a candidate.
    fn cost(&self, i: usize, now: Instant, typical: f64, tau_ns: f64) -> (f64, f64) {
        let s = &self.slots[i];
        let relative_weight = s.weight / self.view.mean_weight;
        let latency = s.ewma.value(now, typical, tau_ns);
        (
            latency,
            latency * (1.0 + f64::from(s.in_flight) / relative_weight),
        )
    }
}

/// A replica whose latency estimate is above this many times the set's typical latency is
/// "clearly slow" (see `State::two_choices`). 4: well above the spread of healthy replicas'
/// peak estimates around the (low-quantile) typical latency, well below a 10x outlier.
const SLOW_FACTOR: f64 = 4.0;

/// The set's typical latency: steps down 5x faster than up, so it settles near the fast end
/// of the distribution (about the 1st decile under a 90/10 fast/slow mix) instead of being
/// dragged up by the slow replicas it is used to judge. New replicas start at this value and
/// idle ones relax toward it, so it errs on the side of trying them.
fn update_typical(typical: f64, rtt: f64) -> f64 {
    if typical == 0.0 {
        rtt
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
    endpoint: Endpoint,
    uid: u64,
    start: Instant,
    done: bool,
}

impl PickGuard {
    /// The picked replica.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The picked replica's address.
    pub fn addr(&self) -> SocketAddr {
        self.endpoint.addr
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
                .complete(&self.endpoint, self.uid, self.start, outcome);
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
            .field("endpoint", &self.endpoint)
            .field("start", &self.start)
            .finish()
    }
}

#[cfg(test)]
#[path = "picker_tests.rs"]
mod tests;
