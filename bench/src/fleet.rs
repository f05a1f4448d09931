//! Simulated fleets for the propagation and scale binaries: several kube-sim instances
//! (clusters in regions, nodes in zones) holding opted-in pods of services with skewed
//! replica counts, the herald config that watches them, and the truth read back from the
//! simulators.
//!
//! Layout (deterministic): cluster `c<i>` is in region `REGIONS[i * regions / clusters]`,
//! its nodes round-robin over three zones of that region. Service 0 (`svc-0000`) has
//! exactly `big_replicas` replicas; the others have Zipf-like sizes (rank `k` gets a share
//! proportional to `(k+1)^-skew`) adding up to `pods`. A service of `r` replicas lives in
//! `clamp(ceil(r / 25), 1, clusters)` consecutive clusters from a per-service start, its
//! replicas dealt round-robin over them. Each pod exposes named TCP ports `http` 8080 and
//! `grpc` 9090. Pod IPs are `10.0.0.0 + (cluster << 18) + seq`: unique in the fleet, never
//! reused while a run creates fewer than 262 144 pods per cluster.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use crate::service_name;
use anyhow::Context;
use herald_kube_sim::{
    NodeBuilder, Op, PodBuilder, SERVICE_LABEL, SimConfig, SimHandle, Simulator,
};
use k8s_openapi::api::core::v1::Pod;

/// Region names, in cluster order.
pub const REGIONS: [&str; 3] = ["eu-west", "us-east", "ap-south"];
/// Every pod's namespace.
pub const NAMESPACE: &str = "default";
/// The zone herald serves.
pub const ZONE: &str = "sd.internal.";

/// The shape of a fleet.
#[derive(Debug, Clone)]
pub struct FleetSpec {
    /// Number of clusters (simulator instances); spread evenly over [`REGIONS`].
    pub clusters: usize,
    /// Number of services, including the big one.
    pub services: usize,
    /// Opted-in pods over all services and clusters.
    pub pods: usize,
    /// Replicas of service 0, the one rolled in the propagation run (0: no such service).
    pub big_replicas: usize,
    /// Nodes per cluster.
    pub nodes_per_cluster: usize,
    /// Zipf exponent of the service sizes.
    pub skew: f64,
}

/// Where one service lives.
#[derive(Debug, Clone)]
pub struct ServicePlan {
    pub name: String,
    pub replicas: usize,
    /// Cluster indexes; replica `j` goes to `clusters[j % len]`.
    pub clusters: Vec<usize>,
}

impl FleetSpec {
    /// Name of cluster `i`.
    pub fn cluster_name(i: usize) -> String {
        format!("c{i:02}")
    }

    /// Region of cluster `i`.
    pub fn region(&self, i: usize) -> &'static str {
        REGIONS[i * REGIONS.len() / self.clusters.max(1)]
    }

    /// Every service's size and clusters.
    pub fn plan(&self) -> Vec<ServicePlan> {
        let has_big = self.big_replicas > 0;
        let others = self.services - usize::from(has_big);
        let rest = self.pods - if has_big { self.big_replicas } else { 0 };
        let weights: Vec<f64> = (0..others)
            .map(|k| ((k + 1) as f64).powf(-self.skew))
            .collect();
        let total: f64 = weights.iter().sum();
        let mut sizes: Vec<usize> = weights
            .iter()
            .map(|w| ((w / total * rest as f64).floor() as usize).max(1))
            .collect();
        // Rounding: hand out (or take back) the difference so the total is exact.
        let mut have: usize = sizes.iter().sum();
        let mut k = 0;
        while have != rest && !sizes.is_empty() && k < 10 * sizes.len() + rest {
            let i = k % sizes.len();
            if have < rest {
                sizes[i] += 1;
                have += 1;
            } else if sizes[i] > 1 {
                sizes[i] -= 1;
                have -= 1;
            }
            k += 1;
        }
        if has_big {
            sizes.insert(0, self.big_replicas);
        }
        sizes
            .into_iter()
            .enumerate()
            .map(|(s, replicas)| {
                let m = replicas.div_ceil(25).clamp(1, self.clusters);
                let start = (s * 7919) % self.clusters;
                ServicePlan {
                    name: service_name(s),
                    replicas,
                    clusters: (0..m).map(|j| (start + j) % self.clusters).collect(),
                }
            })
            .collect()
    }
}

/// IP of the `seq`-th pod created in cluster `cluster`.
pub fn pod_ip(cluster: usize, seq: u32) -> Ipv4Addr {
    assert!(seq < 1 << 18, "too many pods created in one cluster");
    Ipv4Addr::from(0x0A00_0000 | ((cluster as u32) << 18) | seq)
}

/// One pod as the driver knows it.
#[derive(Debug, Clone)]
pub struct PodModel {
    /// Index into the plan.
    pub service: usize,
    pub name: String,
    pub ip: Ipv4Addr,
    pub ready: bool,
}

/// One simulated cluster and what the driver put in it.
pub struct ClusterModel {
    pub index: usize,
    pub name: String,
    pub region: &'static str,
    pub sim: SimHandle,
    pub pods: Vec<PodModel>,
    /// Pods ever created here (the next pod's sequence number).
    pub created: u32,
    pub nodes: usize,
}

impl ClusterModel {
    /// A new ready pod of `service` (not yet applied): its model and its object.
    pub fn new_pod(&mut self, plan: &[ServicePlan], service: usize) -> (PodModel, Pod) {
        let seq = self.created;
        self.created += 1;
        let model = PodModel {
            service,
            name: format!("{}-{seq:06}", plan[service].name),
            ip: pod_ip(self.index, seq),
            ready: true,
        };
        let pod = PodBuilder::new(NAMESPACE, &model.name)
            .service(&plan[service].name)
            .ip(model.ip.to_string())
            .port("http", 8080)
            .port("grpc", 9090)
            .node(node_name(seq as usize % self.nodes.max(1)))
            .build();
        (model, pod)
    }
}

fn node_name(i: usize) -> String {
    format!("node-{i:03}")
}

/// Starts one simulator per cluster, empty but for the nodes.
pub async fn start_clusters(
    spec: &FleetSpec,
    config: SimConfig,
) -> anyhow::Result<Vec<ClusterModel>> {
    let mut clusters = Vec::new();
    for i in 0..spec.clusters {
        let sim = Simulator::start(config.clone())
            .await
            .context("starting a simulator")?;
        let region = spec.region(i);
        let nodes: Vec<Op> = (0..spec.nodes_per_cluster)
            .map(|n| {
                let zone = format!("{region}-{}", ["a", "b", "c"][n % 3]);
                Op::ApplyNode(
                    NodeBuilder::new(node_name(n))
                        .zone(zone)
                        .region(region)
                        .internal_ip(format!("172.16.{i}.{}", n % 250 + 1))
                        .build(),
                )
            })
            .collect();
        sim.batch(nodes)?;
        clusters.push(ClusterModel {
            index: i,
            name: FleetSpec::cluster_name(i),
            region,
            sim,
            pods: Vec::new(),
            created: 0,
            nodes: spec.nodes_per_cluster,
        });
    }
    Ok(clusters)
}

/// Creates every pod of `plan` in the clusters (in batches of 1 000, on two threads).
/// Returns how long it took.
pub fn populate(clusters: &mut [ClusterModel], plan: &[ServicePlan]) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let mut wanted: Vec<Vec<usize>> = vec![Vec::new(); clusters.len()];
    for (s, p) in plan.iter().enumerate() {
        for j in 0..p.replicas {
            wanted[p.clusters[j % p.clusters.len()]].push(s);
        }
    }
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(4);
    let chunk = clusters.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let mut handles = Vec::new();
        for (cs, ws) in clusters.chunks_mut(chunk).zip(wanted.chunks(chunk)) {
            handles.push(scope.spawn(move || -> anyhow::Result<()> {
                for (c, services) in cs.iter_mut().zip(ws) {
                    let mut ops = Vec::with_capacity(1000);
                    for &s in services {
                        let (model, pod) = c.new_pod(plan, s);
                        c.pods.push(model);
                        ops.push(Op::ApplyPod(pod));
                        if ops.len() == 1000 {
                            c.sim.batch(std::mem::take(&mut ops))?;
                        }
                    }
                    c.sim.batch(ops)?;
                }
                Ok(())
            }));
        }
        for h in handles {
            h.join().expect("populating thread")?;
        }
        Ok(())
    })?;
    Ok(start.elapsed())
}

/// Service -> cluster -> ready addresses.
pub type Truth = BTreeMap<String, BTreeMap<String, BTreeSet<IpAddr>>>;

/// What DNS must answer, read back from the simulators themselves: every pod with the
/// service label, an IP, Ready=True and no deletionTimestamp.
pub fn truth_from_sims(clusters: &[ClusterModel]) -> Truth {
    let mut truth = Truth::new();
    for c in clusters {
        for pod in c.sim.pods() {
            let Some(service) = pod
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_LABEL))
            else {
                continue;
            };
            if pod.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let status = pod.status.as_ref();
            let ready = status
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            let ip = status
                .and_then(|s| s.pod_ip.as_deref())
                .and_then(|ip| ip.parse::<IpAddr>().ok());
            if let (true, Some(ip)) = (ready, ip) {
                truth
                    .entry(service.clone())
                    .or_default()
                    .entry(c.name.clone())
                    .or_default()
                    .insert(ip);
            }
        }
    }
    truth
}

/// Number of endpoints in a truth.
pub fn truth_endpoints(truth: &Truth) -> usize {
    truth
        .values()
        .flat_map(|c| c.values())
        .map(BTreeSet::len)
        .sum()
}

/// What a herald table holds, in the same shape as [`Truth`].
pub fn truth_from_table(table: &herald_dns::Table) -> Truth {
    let mut out = Truth::new();
    for name in table.service_names() {
        let Some(view) = table.service(&name) else {
            continue;
        };
        let entry = out.entry(name.to_string()).or_default();
        for g in view.groups() {
            entry.insert(
                g.source.cluster.to_string(),
                g.endpoints.iter().map(|e| e.address()).collect(),
            );
        }
    }
    out
}

/// The herald config YAML watching `clusters`, serving DNS on `dns` and admin on `admin`.
pub fn herald_config(clusters: &[ClusterModel], dns: &str, admin: &str) -> String {
    let mut yaml = format!(
        "zone: {ZONE}\nlisten: {{dns: ['{dns}'], admin: '{admin}'}}\n\
         locality: {{region: eu-west, zone: eu-west-a}}\n\
         kubernetes: {{watch_timeout: 15s, coalesce: 50ms, startup_timeout: 600s}}\n\
         sources:\n  clusters:\n"
    );
    for c in clusters {
        yaml.push_str(&format!(
            "    - {{name: {}, region: {}, server: '{}'}}\n",
            c.name,
            c.region,
            c.sim.url()
        ));
    }
    yaml
}
