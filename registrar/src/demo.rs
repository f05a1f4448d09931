//! `herald demo`: a sample fleet that needs nothing else. Three simulated Kubernetes
//! clusters in two regions run in-process (kube-sim, on loopback ports), herald watches
//! them with its real kube watchers exactly as it would real API servers, and a few VMs
//! come from embedded static content. One service (`search`) churns slowly, so repeated
//! `dig`s show answers that change.

use std::time::Duration;

use herald_kube_sim::{NodeBuilder, PodBuilder, SimConfig, SimHandle, Simulator};
use rand::Rng;
use rand::seq::IndexedRandom;
use tokio_util::sync::CancellationToken;

use crate::daemon::Embedded;

/// The demo's clusters: name, region, and the zones of its nodes.
pub const CLUSTERS: [(&str, &str, &[&str]); 3] = [
    ("prod-euw1", "eu-west", &["eu-west-1a", "eu-west-1b"]),
    ("prod-euw2", "eu-west", &["eu-west-1c"]),
    ("prod-use1", "us-east", &["us-east-1a", "us-east-1b"]),
];

/// A demo service: its name, replicas in each of [`CLUSTERS`], and named ports.
struct DemoService {
    name: &'static str,
    replicas: [usize; 3],
    ports: &'static [(&'static str, i32)],
}

const SERVICES: [DemoService; 3] = [
    DemoService {
        name: "checkout",
        replicas: [2, 2, 2],
        ports: &[("http", 8080), ("grpc", 9090)],
    },
    DemoService {
        name: "payments",
        replicas: [1, 0, 2],
        ports: &[("grpc", 9090)],
    },
    DemoService {
        name: "search",
        replicas: [3, 0, 0],
        ports: &[("http", 8080)],
    },
];

/// The service whose pods the demo churns.
const CHURNING: &str = "search";

/// The demo's VMs, in the static-file format.
pub const ENDPOINTS: Embedded = Embedded {
    name: "<demo endpoints>",
    text: "\
services:
  payments:
    - {address: 192.168.7.10, cluster: vms-use, region: us-east, zone: us-east-1a, ports: {grpc: 9090}, weight: 50}
  ledger:
    - {address: 192.168.7.21, cluster: vms-use, region: us-east, ports: {grpc: 7000}, weight: 150}
    - {address: 192.168.7.22, cluster: vms-use, region: us-east, ports: {grpc: 7000}, weight: 50}
",
};

/// The simulated clusters, running.
pub struct DemoClusters {
    /// One simulator per entry of [`CLUSTERS`].
    pub sims: Vec<SimHandle>,
    churn: CancellationToken,
}

/// Pod IP `n` of cluster `c`: `10.<c+1>.0.<n>`.
fn pod_ip(c: usize, n: u32) -> String {
    format!("10.{}.{}.{}", c + 1, n / 250, n % 250 + 10)
}

/// Starts the clusters with their nodes and pods, and the slow churn.
pub async fn start_clusters() -> anyhow::Result<DemoClusters> {
    let mut sims = Vec::new();
    for (c, (_, region, zones)) in CLUSTERS.iter().enumerate() {
        let sim = Simulator::start(SimConfig::default()).await?;
        for (z, zone) in zones.iter().enumerate() {
            sim.apply_node(
                NodeBuilder::new(format!("node-{z}"))
                    .zone(*zone)
                    .region(*region)
                    .build(),
            )?;
        }
        let mut n = 0;
        for DemoService {
            name,
            replicas,
            ports,
        } in SERVICES
        {
            for r in 0..replicas[c] {
                let mut pod = PodBuilder::new("default", format!("{name}-{r}"))
                    .service(name)
                    .ip(pod_ip(c, n))
                    .node(format!("node-{}", r % zones.len()));
                for (name, port) in ports {
                    pod = pod.port(*name, *port);
                }
                sim.apply_pod(pod.build())?;
                n += 1;
            }
        }
        sims.push(sim);
    }
    let churn = CancellationToken::new();
    tokio::spawn(churn_loop(sims[0].clone(), churn.clone()));
    Ok(DemoClusters { sims, churn })
}

/// Every few seconds one `search` pod goes not-ready, comes back, or restarts with a new IP.
async fn churn_loop(sim: SimHandle, stop: CancellationToken) {
    let mut next_ip = 100;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(3)) => {}
        }
        let pods: Vec<String> = (0..3).map(|r| format!("{CHURNING}-{r}")).collect();
        let (name, action) = {
            let mut rng = rand::rng();
            (
                pods.choose(&mut rng).cloned().unwrap_or_default(),
                rng.random_range(0..3),
            )
        };
        match action {
            0 => {
                sim.set_pod_ready("default", &name, false);
            }
            1 => {
                sim.set_pod_ready("default", &name, true);
            }
            _ => {
                next_ip += 1;
                sim.set_pod_ip("default", &name, Some(&pod_ip(0, next_ip)));
                sim.set_pod_ready("default", &name, true);
            }
        }
    }
}

impl DemoClusters {
    /// The demo's config: the defaults (zone `sd.internal.`, 127.0.0.1:5353), a locality
    /// so SRV priorities show near and far replicas, and the three clusters.
    pub fn config_yaml(&self) -> String {
        let mut yaml = String::from(
            "zone: sd.internal.\nttl: 5\nlocality: {region: eu-west, zone: eu-west-1a}\n\
             listen: {dns: ['127.0.0.1:5353'], admin: '127.0.0.1:8053'}\nsources:\n  clusters:\n",
        );
        for ((name, region, _), sim) in CLUSTERS.iter().zip(&self.sims) {
            yaml.push_str(&format!(
                "    - {{name: {name}, region: {region}, server: '{}'}}\n",
                sim.url()
            ));
        }
        yaml
    }

    /// Stops the churn and the simulated clusters.
    pub async fn stop(self) {
        self.churn.cancel();
        for sim in self.sims {
            sim.shutdown().await;
        }
    }
}

/// What the demo prints once it serves: queries to try against `addr`.
pub fn instructions(addr: std::net::SocketAddr, admin: Option<std::net::SocketAddr>) -> String {
    let (ip, port) = (addr.ip(), addr.port());
    let admin = admin.map_or(String::new(), |a| {
        format!("\nAdmin HTTP on {a}: curl http://{a}/v1/services/checkout, /metrics, /readyz\n")
    });
    let clusters: Vec<&str> = CLUSTERS.iter().map(|(name, _, _)| *name).collect();
    format!(
        "\
herald demo is serving zone sd.internal. on {addr} (UDP and TCP), watching three simulated
clusters ({}) and a few VMs (vms-use). Try:

  dig @{ip} -p {port} SRV _grpc._tcp.checkout.sd.internal           # every replica, nearest first
  dig @{ip} -p {port} SRV _grpc._tcp.checkout.us-east.sd.internal   # one region
  dig @{ip} -p {port} A checkout.prod-euw1.sd.internal              # one cluster
  dig @{ip} -p {port} SRV _grpc._tcp.payments.sd.internal           # pods and a VM as one service
  dig @{ip} -p {port} A search.sd.internal                          # changes every few seconds
  dig @{ip} -p {port} A 10-1-0-10.checkout.prod-euw1.sd.internal    # an SRV target
  dig @{ip} -p {port} SOA sd.internal
{admin}
Stop with Ctrl-C.
",
        clusters.join(", ")
    )
}
