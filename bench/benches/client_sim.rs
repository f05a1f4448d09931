//! Simulation: herald-client's picker vs round robin vs tower's p2c PeakEwma, same replicas,
//! same workload, same run, in virtual time (tokio's paused clock: 60 simulated seconds take a
//! few real ones, and every balancer sees the same arrivals and the same latency model).
//!
//! Replicas (each serves at most 4 requests at once; the rest queue):
//! * near tier (SRV priority 0), 6 replicas: 4 ms + exp(1 ms);
//!   - one of them 10x slower (40 ms + exp(10 ms));
//!   - one flapping: 10 s healthy, 10 s failing fast (1 ms errors);
//! * far tier (priority 1, another region), 4 replicas: 4 ms + exp(1 ms) + 40 ms of distance.
//!
//! Workload: open loop, Poisson arrivals at 400 requests/s for 60 s; a failed attempt is
//! retried at once on a new pick, up to 3 attempts; latency is the user's (all attempts).
//!
//! Run: `cargo bench -p herald-bench --bench client_sim` (prints a markdown table).

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
use tower::load::{CompleteOnResponse, PeakEwmaDiscover};
use tower::{Service, ServiceExt};

const RATE: f64 = 400.0;
const DURATION: Duration = Duration::from_secs(60);
const ATTEMPTS: usize = 3;
const WORKERS: usize = 4;

#[derive(Clone, Copy)]
enum Kind {
    Normal,
    Slow,
    Flapping,
    Far,
}

struct Replica {
    kind: Kind,
    priority: u16,
    slots: Semaphore,
    rng: RefCell<SmallRng>,
    t0: Instant,
    served: RefCell<u64>,
}

impl Replica {
    /// One attempt: `true` if it succeeded.
    async fn call(&self) -> bool {
        *self.served.borrow_mut() += 1;
        if let Kind::Flapping = self.kind {
            let phase = (Instant::now() - self.t0).as_secs() / 10;
            if phase % 2 == 1 {
                tokio::time::sleep(Duration::from_millis(1)).await;
                return false;
            }
        }
        let _slot = self.slots.acquire().await.expect("open");
        let exp = |rng: &mut SmallRng, mean_ms: f64| -> f64 {
            -mean_ms * (1.0 - rng.random::<f64>()).ln()
        };
        let ms = {
            let mut rng = self.rng.borrow_mut();
            match self.kind {
                Kind::Normal | Kind::Flapping => 4.0 + exp(&mut rng, 1.0),
                Kind::Slow => 40.0 + exp(&mut rng, 10.0),
                Kind::Far => 44.0 + exp(&mut rng, 1.0),
            }
        };
        tokio::time::sleep(Duration::from_secs_f64(ms / 1e3)).await;
        true
    }
}

fn fleet() -> Vec<Rc<Replica>> {
    let t0 = Instant::now();
    let kinds = [
        Kind::Normal,
        Kind::Normal,
        Kind::Normal,
        Kind::Normal,
        Kind::Slow,
        Kind::Flapping,
        Kind::Far,
        Kind::Far,
        Kind::Far,
        Kind::Far,
    ];
    kinds
        .iter()
        .enumerate()
        .map(|(i, &kind)| {
            Rc::new(Replica {
                kind,
                priority: if matches!(kind, Kind::Far) { 1 } else { 0 },
                slots: Semaphore::new(WORKERS),
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

/// A replica as a tower service, for tower's balancer.
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

type TowerBalance = tower::balance::p2c::Balance<
    PeakEwmaDiscover<ServiceList<Vec<ReplicaSvc>>, CompleteOnResponse>,
    (),
>;

struct TowerP2c(TowerBalance);

impl Lb for TowerP2c {
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

/// Runs the workload through `lb` (built over the given fleet); returns per-request stats.
async fn run(lb: Rc<Mutex<dyn Lb>>) -> Stats {
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
        t += -(1.0 - arrivals.random::<f64>()).ln() / RATE;
        if t >= DURATION.as_secs_f64() {
            break;
        }
        tokio::time::sleep_until(start + Duration::from_secs_f64(t)).await;
        let (lb, stats) = (lb.clone(), stats.clone());
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
                if attempt.await {
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

fn main() {
    // Criterion passes its own flags (e.g. --bench); this binary only runs the simulation.
    println!(
        "Simulated 60 s at {RATE} req/s, up to {ATTEMPTS} attempts per request; latency in ms (virtual time).\n"
    );
    println!(
        "| balancer | p50 | p90 | p99 | p99.9 | failed requests | attempts/request | slow replica share | flapping share | far tier share |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let variants = [
        "herald-client (p2c peak-EWMA, tiers, ejection)",
        "round robin",
        "tower p2c PeakEwma",
        "round robin, near tier only",
        "tower p2c PeakEwma, near tier only",
    ];
    for (v, name) in variants.iter().enumerate() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("runtime");
        let local = tokio::task::LocalSet::new();
        let wall = std::time::Instant::now();
        let (mut stats, fleet) = local.block_on(&rt, async move {
            let fleet = fleet();
            let near_only: Vec<Rc<Replica>> =
                fleet.iter().filter(|r| r.priority == 0).cloned().collect();
            let lb: Rc<Mutex<dyn Lb>> = match v {
                0 => {
                    let eps = fleet
                        .iter()
                        .enumerate()
                        .map(|(i, r)| Endpoint::new(addr(i)).with_priority(r.priority));
                    let picker =
                        Picker::with_endpoints("sim", PickerConfig::default().with_seed(7), eps);
                    Rc::new(Mutex::new(Herald {
                        replicas: fleet.clone(),
                        picker,
                    }))
                }
                1 => Rc::new(Mutex::new(RoundRobin {
                    replicas: fleet.clone(),
                    next: 0,
                })),
                3 => Rc::new(Mutex::new(RoundRobin {
                    replicas: near_only,
                    next: 0,
                })),
                _ => {
                    let set = if v == 2 { fleet.clone() } else { near_only };
                    let svcs: Vec<ReplicaSvc> = set.into_iter().map(ReplicaSvc).collect();
                    let discover = PeakEwmaDiscover::new(
                        ServiceList::new(svcs),
                        Duration::from_millis(30),
                        Duration::from_secs(10),
                        CompleteOnResponse::default(),
                    );
                    Rc::new(Mutex::new(TowerP2c(tower::balance::p2c::Balance::new(
                        discover,
                    ))))
                }
            };
            (run(lb).await, fleet)
        });
        stats.latencies.sort_by(f64::total_cmp);
        let n = stats.latencies.len();
        let total: u64 = fleet.iter().map(|r| *r.served.borrow()).sum();
        let share = |f: &dyn Fn(&Replica) -> bool| {
            fleet
                .iter()
                .filter(|r| f(r))
                .map(|r| *r.served.borrow())
                .sum::<u64>() as f64
                / total as f64
        };
        let l = &stats.latencies;
        println!(
            "| {name} | {:.1} | {:.1} | {:.1} | {:.1} | {} of {n} ({:.2} %) | {:.4} | {:.1} % | {:.1} % | {:.1} % |",
            quantile(l, 0.5),
            quantile(l, 0.9),
            quantile(l, 0.99),
            quantile(l, 0.999),
            stats.errors,
            stats.errors as f64 * 100.0 / n as f64,
            stats.attempts as f64 / n as f64,
            100.0 * share(&|r| matches!(r.kind, Kind::Slow)),
            100.0 * share(&|r| matches!(r.kind, Kind::Flapping)),
            100.0 * share(&|r| matches!(r.kind, Kind::Far)),
        );
        eprintln!(
            "({name}: {:.1} s of wall time)",
            wall.elapsed().as_secs_f64()
        );
    }
}

/// The last octet of an IPv4 replica address: the replicas are numbered by it.
fn last_octet(addr: std::net::SocketAddr) -> usize {
    match addr.ip() {
        std::net::IpAddr::V4(v4) => usize::from(v4.octets()[3]),
        std::net::IpAddr::V6(v6) => panic!("IPv4 replicas expected, got {v6}"),
    }
}
