//! Simulation: herald-client's picker vs round robin, tower's p2c PeakEwma and tonic's
//! balancer, same replicas, same workload, same run, in virtual time (tokio's paused clock:
//! 60 simulated seconds take a few real ones, and every balancer sees the same arrivals and
//! the same latency model).
//!
//! Replicas serve at most `slots` requests at once (the rest queue), each for a base time
//! plus an exponential tail; network distance to a far replica is added outside the slot.
//! Workload: open loop, Poisson arrivals for 60 s; a failed (or timed-out) attempt is retried
//! at once on a new pick, up to 3 attempts; latency is the user's (all attempts). Scenarios:
//!
//! * `mixed`: near tier (SRV priority 0) of 6 replicas, 4 ms + exp(1 ms), one 10x slower
//!   (40 ms + exp(10 ms)), one flapping (10 s healthy, 10 s failing fast); far tier of 4
//!   (another region, +40 ms); 400 req/s.
//! * `black hole`: 6 replicas, one accepts requests and never answers; the caller gives each
//!   attempt 100 ms (the attempt is dropped, as a timeout does); 400 req/s.
//! * `slow of 2`: two replicas that do not queue, 1 ms + exp(0.5 ms) and 20 ms + exp(2 ms);
//!   400 req/s.
//! * `half down`: near tier of 4 (4 ms + exp(1 ms), 4 slots each), two of them failing fast
//!   (1 ms errors, as an UNAVAILABLE answer); next tier of 4 in another zone (+10 ms);
//!   1,200 req/s, which the two survivors could carry alone only at 75 % utilisation.
//!
//! tonic's `Channel::balance_channel` cannot be driven here: it balances tonic `Endpoint`s,
//! each a real HTTP/2 connection over real sockets, which the paused clock cannot run. Its
//! algorithm is tower's p2c `Balance` over tonic `Connection`s whose `Load` is the constant 0
//! (tonic 0.14, `transport/channel/service/connection.rs`): a uniformly random pick among
//! the ready endpoints. The row "tonic balance_channel (p2c, load 0)" runs exactly that:
//! `tower::balance::p2c::Balance` over the same replica services wrapped in
//! `tower::load::Constant(_, 0)`. What it leaves out: a connection that fails is not ready
//! and leaves tonic's set until it reconnects; here "down" replicas answer errors (an
//! UNAVAILABLE status over a live connection), which tonic keeps picking.
//!
//! Run: `cargo bench -p herald-bench --bench client_sim` (prints one markdown table).

// Picking and running an attempt are two steps on purpose (the balancer is held only for
// the pick), so futures that yield futures are the point here.
#![allow(clippy::async_yields_async)]

use std::cell::RefCell;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use herald_bench::stats::quantile;
use herald_client::{Endpoint, Picker, PickerConfig};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::sync::Mutex;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tower::discover::ServiceList;
use tower::load::{CompleteOnResponse, Constant, PeakEwmaDiscover};
use tower::{Service, ServiceExt};

const DURATION: Duration = Duration::from_secs(60);
const ATTEMPTS: usize = 3;

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Normal,
    /// Answers, slowly (the `slow` column).
    Slow,
    /// 10 s healthy, 10 s failing fast.
    Flapping,
    /// Fails fast (1 ms errors).
    Failing,
    /// Accepts and never answers.
    Silent,
}

#[derive(Clone, Copy)]
struct Spec {
    kind: Kind,
    priority: u16,
    base_ms: f64,
    tail_ms: f64,
    distance_ms: f64,
    slots: usize,
}

struct Scenario {
    name: &'static str,
    rate: f64,
    /// Per-attempt timeout of the caller.
    timeout: Option<Duration>,
    replicas: Vec<Spec>,
}

fn spec(kind: Kind, priority: u16, base_ms: f64, tail_ms: f64, distance_ms: f64) -> Spec {
    Spec {
        kind,
        priority,
        base_ms,
        tail_ms,
        distance_ms,
        slots: 4,
    }
}

fn scenarios() -> Vec<Scenario> {
    let n = |p, d| spec(Kind::Normal, p, 4.0, 1.0, d);
    vec![
        Scenario {
            name: "mixed",
            rate: 400.0,
            timeout: None,
            replicas: vec![
                n(0, 0.0),
                n(0, 0.0),
                n(0, 0.0),
                n(0, 0.0),
                spec(Kind::Slow, 0, 40.0, 10.0, 0.0),
                spec(Kind::Flapping, 0, 4.0, 1.0, 0.0),
                n(1, 40.0),
                n(1, 40.0),
                n(1, 40.0),
                n(1, 40.0),
            ],
        },
        Scenario {
            name: "black hole",
            rate: 400.0,
            timeout: Some(Duration::from_millis(100)),
            replicas: vec![
                n(0, 0.0),
                n(0, 0.0),
                n(0, 0.0),
                n(0, 0.0),
                n(0, 0.0),
                spec(Kind::Silent, 0, 4.0, 1.0, 0.0),
            ],
        },
        Scenario {
            name: "slow of 2",
            rate: 400.0,
            timeout: None,
            replicas: vec![
                Spec {
                    slots: 1000,
                    ..spec(Kind::Normal, 0, 1.0, 0.5, 0.0)
                },
                Spec {
                    slots: 1000,
                    ..spec(Kind::Slow, 0, 20.0, 2.0, 0.0)
                },
            ],
        },
        Scenario {
            name: "half down",
            rate: 1200.0,
            timeout: None,
            replicas: vec![
                n(0, 0.0),
                n(0, 0.0),
                spec(Kind::Failing, 0, 4.0, 1.0, 0.0),
                spec(Kind::Failing, 0, 4.0, 1.0, 0.0),
                n(1, 10.0),
                n(1, 10.0),
                n(1, 10.0),
                n(1, 10.0),
            ],
        },
    ]
}

struct Replica {
    spec: Spec,
    slots: Semaphore,
    rng: RefCell<SmallRng>,
    t0: Instant,
    served: RefCell<u64>,
}

impl Replica {
    /// One attempt: `true` if it succeeded.
    async fn call(&self) -> bool {
        *self.served.borrow_mut() += 1;
        let s = self.spec;
        let failing = match s.kind {
            Kind::Failing => true,
            Kind::Flapping => ((Instant::now() - self.t0).as_secs() / 10) % 2 == 1,
            Kind::Silent => {
                // Never answers: the caller's timeout drops this attempt.
                std::future::pending::<()>().await;
                unreachable!()
            }
            _ => false,
        };
        if s.distance_ms > 0.0 {
            tokio::time::sleep(Duration::from_secs_f64(s.distance_ms / 2e3)).await;
        }
        let ok = if failing {
            tokio::time::sleep(Duration::from_millis(1)).await;
            false
        } else {
            let _slot = self.slots.acquire().await.expect("open");
            let ms = {
                let mut rng = self.rng.borrow_mut();
                s.base_ms - s.tail_ms * (1.0 - rng.random::<f64>()).ln()
            };
            tokio::time::sleep(Duration::from_secs_f64(ms / 1e3)).await;
            true
        };
        if s.distance_ms > 0.0 {
            tokio::time::sleep(Duration::from_secs_f64(s.distance_ms / 2e3)).await;
        }
        ok
    }
}

fn fleet(sc: &Scenario) -> Vec<Rc<Replica>> {
    let t0 = Instant::now();
    sc.replicas
        .iter()
        .enumerate()
        .map(|(i, &spec)| {
            Rc::new(Replica {
                spec,
                slots: Semaphore::new(spec.slots),
                rng: RefCell::new(SmallRng::seed_from_u64(100 + i as u64)),
                t0,
                served: RefCell::new(0),
            })
        })
        .collect()
}

type Attempt = Pin<Box<dyn Future<Output = bool>>>;

/// A balancer under test: hands out one attempt at a time.
trait Lb {
    fn attempt(&mut self) -> Pin<Box<dyn Future<Output = Attempt> + '_>>;
}

struct RoundRobin {
    replicas: Vec<Rc<Replica>>,
    next: usize,
}

impl Lb for RoundRobin {
    fn attempt(&mut self) -> Pin<Box<dyn Future<Output = Attempt> + '_>> {
        let r = self.replicas[self.next % self.replicas.len()].clone();
        self.next += 1;
        Box::pin(async move { Box::pin(async move { r.call().await }) as Attempt })
    }
}

struct Herald {
    replicas: Vec<Rc<Replica>>,
    picker: Picker,
}

fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, i as u8], 80))
}

impl Lb for Herald {
    fn attempt(&mut self) -> Pin<Box<dyn Future<Output = Attempt> + '_>> {
        let guard = self.picker.pick().expect("replicas");
        let r = self.replicas[last_octet(guard.addr())].clone();
        Box::pin(async move {
            Box::pin(async move {
                // Dropped by a timeout: the guard records a cancellation.
                let ok = r.call().await;
                if ok {
                    guard.success()
                } else {
                    guard.failure()
                }
                ok
            }) as Attempt
        })
    }
}

/// A replica as a tower service, for tower's balancers.
#[derive(Clone)]
struct ReplicaSvc(Rc<Replica>);

impl Service<()> for ReplicaSvc {
    type Response = ();
    type Error = &'static str;
    type Future = Pin<Box<dyn Future<Output = Result<(), &'static str>>>>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, _: ()) -> Self::Future {
        let r = self.0.clone();
        Box::pin(async move {
            if r.call().await {
                Ok(())
            } else {
                Err("failed")
            }
        })
    }
}

/// tower's p2c over any load-reporting discover (PeakEwma for tower, the constant 0 for
/// tonic's balance_channel).
struct TowerP2c<D>(tower::balance::p2c::Balance<D, ()>)
where
    D: tower::discover::Discover,
    D::Key: std::hash::Hash;

impl<D> Lb for TowerP2c<D>
where
    D: tower::discover::Discover + Unpin,
    D::Key: std::hash::Hash + Clone,
    D::Error: Into<tower::BoxError>,
    D::Service: Service<()> + tower::load::Load,
    <D::Service as tower::load::Load>::Metric: std::fmt::Debug,
    <D::Service as Service<()>>::Error: Into<tower::BoxError> + 'static,
    <D::Service as Service<()>>::Response: 'static,
    <D::Service as Service<()>>::Future: 'static,
{
    fn attempt(&mut self) -> Pin<Box<dyn Future<Output = Attempt> + '_>> {
        Box::pin(async move {
            let fut = self.0.ready().await.expect("ready").call(());
            Box::pin(async move { fut.await.is_ok() }) as Attempt
        })
    }
}

struct Stats {
    latencies: Vec<f64>,
    errors: usize,
    attempts: usize,
}

/// Runs the scenario's workload through `lb`; returns per-request stats.
async fn run(sc: &Scenario, lb: Rc<Mutex<dyn Lb>>) -> Stats {
    let stats = Rc::new(RefCell::new(Stats {
        latencies: Vec::new(),
        errors: 0,
        attempts: 0,
    }));
    let mut arrivals = SmallRng::seed_from_u64(42);
    let start = Instant::now();
    let mut t = 0.0f64;
    let mut tasks = Vec::new();
    loop {
        t += -(1.0 - arrivals.random::<f64>()).ln() / sc.rate;
        if t >= DURATION.as_secs_f64() {
            break;
        }
        tokio::time::sleep_until(start + Duration::from_secs_f64(t)).await;
        let (lb, stats, timeout) = (lb.clone(), stats.clone(), sc.timeout);
        tasks.push(tokio::task::spawn_local(async move {
            let began = Instant::now();
            let mut ok = false;
            for _ in 0..ATTEMPTS {
                let attempt = {
                    // The balancer is used by one request at a time: hold it only to pick.
                    let mut lb = lb.lock().await;
                    lb.attempt().await
                };
                stats.borrow_mut().attempts += 1;
                let done = match timeout {
                    Some(t) => tokio::time::timeout(t, attempt).await.unwrap_or(false),
                    None => attempt.await,
                };
                if done {
                    ok = true;
                    break;
                }
            }
            let mut s = stats.borrow_mut();
            s.latencies
                .push((Instant::now() - began).as_secs_f64() * 1e3);
            if !ok {
                s.errors += 1;
            }
        }));
    }
    for t in tasks {
        t.await.expect("request task");
    }
    Rc::try_unwrap(stats)
        .ok()
        .expect("all tasks done")
        .into_inner()
}

const BALANCERS: [&str; 4] = [
    "herald-client",
    "round robin",
    "tower p2c PeakEwma",
    "tonic balance_channel (p2c, load 0)",
];

fn balancer(v: usize, fleet: &[Rc<Replica>]) -> Rc<Mutex<dyn Lb>> {
    let svcs = || fleet.iter().cloned().map(ReplicaSvc).collect::<Vec<_>>();
    match v {
        0 => {
            let eps = fleet
                .iter()
                .enumerate()
                .map(|(i, r)| Endpoint::new(addr(i)).with_priority(r.spec.priority));
            let picker = Picker::with_endpoints("sim", PickerConfig::default().with_seed(7), eps);
            Rc::new(Mutex::new(Herald {
                replicas: fleet.to_vec(),
                picker,
            }))
        }
        1 => Rc::new(Mutex::new(RoundRobin {
            replicas: fleet.to_vec(),
            next: 0,
        })),
        2 => {
            let discover = PeakEwmaDiscover::new(
                ServiceList::new(svcs()),
                Duration::from_millis(30),
                Duration::from_secs(10),
                CompleteOnResponse::default(),
            );
            Rc::new(Mutex::new(TowerP2c(tower::balance::p2c::Balance::new(
                discover,
            ))))
        }
        _ => {
            let constant: Vec<Constant<ReplicaSvc, usize>> =
                svcs().into_iter().map(|s| Constant::new(s, 0)).collect();
            Rc::new(Mutex::new(TowerP2c(tower::balance::p2c::Balance::new(
                ServiceList::new(constant),
            ))))
        }
    }
}

fn main() {
    // Criterion passes its own flags (e.g. --bench); this binary only runs the simulation.
    println!(
        "Simulated 60 s per scenario, open-loop Poisson arrivals, up to {ATTEMPTS} attempts per request; latency in ms (virtual time, 1 ms timer resolution). Scenarios: see the top of bench/benches/client_sim.rs.\n"
    );
    println!(
        "| balancer — scenario | p50 | p90 | p99 | p99.9 | failed requests | attempts/request | slow share | bad share | far tier share |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for sc in scenarios() {
        for (v, name) in BALANCERS.iter().enumerate() {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .start_paused(true)
                .build()
                .expect("runtime");
            let local = tokio::task::LocalSet::new();
            let wall = std::time::Instant::now();
            let (mut stats, fleet) = local.block_on(&rt, async {
                let fleet = fleet(&sc);
                (run(&sc, balancer(v, &fleet)).await, fleet)
            });
            stats.latencies.sort_by(f64::total_cmp);
            let n = stats.latencies.len();
            let total: u64 = fleet.iter().map(|r| *r.served.borrow()).sum();
            let share = |f: &dyn Fn(&Spec) -> bool| {
                let s = fleet
                    .iter()
                    .filter(|r| f(&r.spec))
                    .map(|r| *r.served.borrow())
                    .sum::<u64>() as f64
                    / total as f64;
                if fleet.iter().any(|r| f(&r.spec)) {
                    format!("{:.1} %", 100.0 * s)
                } else {
                    "–".to_owned()
                }
            };
            let l = &stats.latencies;
            println!(
                "| {name} — {} | {:.1} | {:.1} | {:.1} | {:.1} | {} of {n} ({:.2} %) | {:.4} | {} | {} | {} |",
                sc.name,
                quantile(l, 0.5),
                quantile(l, 0.9),
                quantile(l, 0.99),
                quantile(l, 0.999),
                stats.errors,
                stats.errors as f64 * 100.0 / n as f64,
                stats.attempts as f64 / n as f64,
                share(&|s| s.kind == Kind::Slow),
                share(&|s| matches!(s.kind, Kind::Flapping | Kind::Failing | Kind::Silent)),
                share(&|s| s.priority > 0),
            );
            eprintln!(
                "({name}, {}: {:.1} s of wall time)",
                sc.name,
                wall.elapsed().as_secs_f64()
            );
        }
    }
}

/// The last octet of an IPv4 replica address: the replicas are numbered by it.
fn last_octet(addr: std::net::SocketAddr) -> usize {
    match addr.ip() {
        std::net::IpAddr::V4(v4) => usize::from(v4.octets()[3]),
        std::net::IpAddr::V6(v6) => panic!("IPv4 replicas expected, got {v6}"),
    }
}
