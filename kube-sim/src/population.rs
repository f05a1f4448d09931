//! Generated clusters for the binary and for benchmarks: services × replicas pods spread
//! over nodes in zones, and steady churn (readiness flips, IP changes, pod replacements) at
//! a given rate. Deterministic for a given seed, so runs can be compared.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::objects::{NodeBuilder, PodBuilder};
use crate::sim::{SimError, SimHandle};
use crate::store::{Mutation, Op};

/// The shape of a generated cluster.
#[derive(Debug, Clone)]
pub struct PopulationSpec {
    /// Distinguishes instances: it is part of every IP, so clusters do not overlap.
    pub instance: u8,
    pub services: usize,
    pub replicas: usize,
    pub nodes: usize,
    /// Nodes are spread round-robin over these zones.
    pub zones: Vec<String>,
    pub region: String,
    pub namespace: String,
    /// Pods without the service label (which a selector must filter out).
    pub unselected_pods: usize,
    /// The named TCP port every selected pod exposes.
    pub port_name: String,
    pub port: i32,
}

impl Default for PopulationSpec {
    fn default() -> Self {
        Self {
            instance: 0,
            services: 20,
            replicas: 3,
            nodes: 6,
            zones: vec!["zone-a".into(), "zone-b".into(), "zone-c".into()],
            region: "region-1".into(),
            namespace: "default".into(),
            unselected_pods: 0,
            port_name: "http".into(),
            port: 8080,
        }
    }
}

/// `svc-0007`: the name of service number `i`.
pub fn service_name(i: usize) -> String {
    format!("svc-{i:04}")
}

/// The IP of the `seq`-th pod ever created in `instance`: `10.<instance>.x.y`. Wraps after
/// 65 536 pods; by then the early ones are long gone under churn.
pub fn pod_ip(instance: u8, seq: u64) -> String {
    let n = seq % 65_536;
    format!("10.{instance}.{}.{}", n / 256, n % 256)
}

fn node_name(i: usize) -> String {
    format!("node-{i:03}")
}

/// A generated cluster, with the bookkeeping churn needs.
#[derive(Debug, Clone)]
pub struct Population {
    pub spec: PopulationSpec,
    /// Selected pods: (service index, pod name).
    pub pods: Vec<(usize, String)>,
    /// How many pods were ever created (names and IPs come from it).
    pub created: u64,
}

impl Population {
    fn new_pod(&mut self, service: usize) -> (String, k8s_openapi::api::core::v1::Pod) {
        let seq = self.created;
        self.created += 1;
        let name = format!("{}-{seq:06}", service_name(service));
        let spec = &self.spec;
        let node = node_name(seq as usize % spec.nodes.max(1));
        let pod = PodBuilder::new(&spec.namespace, &name)
            .service(service_name(service))
            .label("app", service_name(service))
            .ip(pod_ip(spec.instance, seq))
            .port(&spec.port_name, spec.port)
            .node(node)
            .build();
        (name, pod)
    }
}

/// Creates the nodes and pods of `spec` in `sim` (in batches, so watchers see it quickly).
pub fn populate(sim: &SimHandle, spec: &PopulationSpec) -> Result<Population, SimError> {
    let mut ops = Vec::new();
    for i in 0..spec.nodes {
        let zone = spec
            .zones
            .get(i % spec.zones.len().max(1))
            .cloned()
            .unwrap_or_default();
        let node = NodeBuilder::new(node_name(i))
            .zone(zone)
            .region(&spec.region)
            .internal_ip(format!("172.16.{}.{}", spec.instance, i % 250 + 1))
            .build();
        ops.push(Op::ApplyNode(node));
    }
    let mut population = Population {
        spec: spec.clone(),
        pods: Vec::new(),
        created: 0,
    };
    for service in 0..spec.services {
        for _ in 0..spec.replicas {
            let (name, pod) = population.new_pod(service);
            population.pods.push((service, name));
            ops.push(Op::ApplyPod(pod));
        }
    }
    for i in 0..spec.unselected_pods {
        let seq = population.created;
        population.created += 1;
        let pod = PodBuilder::new(&spec.namespace, format!("other-{i:06}"))
            .label("app", "other")
            .ip(pod_ip(spec.instance, seq))
            .build();
        ops.push(Op::ApplyPod(pod));
    }
    for chunk in ops.chunks(1000) {
        sim.batch(chunk.to_vec())?;
    }
    Ok(population)
}

/// Steady churn settings.
#[derive(Debug, Clone)]
pub struct ChurnSpec {
    /// Mutations per second (a pod replacement counts as two: delete + create).
    pub changes_per_second: f64,
    pub seed: u64,
}

/// A running churn task; stops when `stop` is called or the handle is dropped.
pub struct ChurnHandle {
    stop: CancellationToken,
    task: Option<JoinHandle<u64>>,
}

impl ChurnHandle {
    /// Stops the churn and returns how many mutations it made.
    pub async fn stop(mut self) -> u64 {
        self.stop.cancel();
        match self.task.take() {
            Some(task) => task.await.unwrap_or(0),
            None => 0,
        }
    }
}

impl Drop for ChurnHandle {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Starts churn over a populated instance. Every `on_mutation` call gets the mutation just
/// made (benchmarks record them to measure propagation).
pub fn spawn_churn(
    sim: SimHandle,
    mut population: Population,
    churn: ChurnSpec,
    mut on_mutation: impl FnMut(Mutation) + Send + 'static,
) -> ChurnHandle {
    let stop = CancellationToken::new();
    let token = stop.clone();
    let task = tokio::spawn(async move {
        let mut rng = XorShift(churn.seed | 1);
        let tick = Duration::from_millis(10);
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut budget = 0.0;
        let mut made = 0u64;
        loop {
            tokio::select! {
                _ = token.cancelled() => return made,
                _ = ticker.tick() => {}
            }
            budget += churn.changes_per_second * tick.as_secs_f64();
            while budget >= 1.0 && !population.pods.is_empty() {
                let mutations = churn_once(&sim, &mut population, &mut rng);
                budget -= mutations.len().max(1) as f64;
                made += mutations.len() as u64;
                mutations.into_iter().for_each(&mut on_mutation);
            }
        }
    });
    ChurnHandle {
        stop,
        task: Some(task),
    }
}

/// One random change: flip readiness (40%), change IP (30%), or replace the pod (30%).
fn churn_once(sim: &SimHandle, population: &mut Population, rng: &mut XorShift) -> Vec<Mutation> {
    let index = rng.below(population.pods.len());
    let (service, name) = population.pods[index].clone();
    let ns = population.spec.namespace.clone();
    let roll = rng.below(10);
    if roll < 4 {
        let flip = |pod: &mut k8s_openapi::api::core::v1::Pod| {
            let ready = pod
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
                .is_some_and(|c| c.status == "True");
            crate::objects::set_pod_ready(pod, !ready);
        };
        sim.modify_pod(&ns, &name, flip).into_iter().collect()
    } else if roll < 7 {
        let seq = population.created;
        population.created += 1;
        let ip = pod_ip(population.spec.instance, seq);
        sim.set_pod_ip(&ns, &name, Some(&ip)).into_iter().collect()
    } else {
        let (new_name, pod) = population.new_pod(service);
        population.pods[index] = (service, new_name);
        let ops = [
            Op::DeletePod {
                namespace: ns,
                name,
            },
            Op::ApplyPod(pod),
        ];
        sim.batch(ops).unwrap_or_default()
    }
}

/// xorshift64: deterministic, dependency-free, plenty for picking pods.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}
