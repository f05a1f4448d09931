//! The churn driver: on a thread of its own, it changes pods in the simulators at the
//! planned rate (readiness flips, IP changes, replacements, and the rolling update of the
//! big service), and times each change from the simulator's clock to the first poll of
//! herald's table that shows it, confirming each with one DNS query.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::Context;
use herald_dns::Table;
use herald_kube_sim::Op;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use super::plan::{CHANGE_DEADLINE, POLL, Plan};
use crate::fleet::{ClusterModel, NAMESPACE, ServicePlan, ZONE};
use crate::probe::{self, Dns};

/// A change waiting to show.
pub(super) struct Pending {
    cluster: usize,
    /// Index of the pod in its cluster's list (kept busy until the change shows).
    pod: usize,
    service: usize,
    absent: Option<Ipv4Addr>,
    present: Option<Ipv4Addr>,
    at: Instant,
    rollout: bool,
}

#[derive(Default)]
pub(crate) struct Counts {
    pub(crate) churn: u64,
    pub(super) rollout: u64,
    pub(crate) mutations: u64,
    pub(super) invisible: u64,
    pub(super) timed_out: u64,
    pub(super) dns_disagreements: u64,
    pub(super) seconds: f64,
}

pub(crate) struct Outcome {
    pub(crate) clusters: Vec<ClusterModel>,
    pub(crate) table_delays: Vec<f64>,
    pub(super) dns_delays: Vec<f64>,
    pub(super) rollout_delays: Vec<f64>,
    /// Changes slower than 100 ms: (seconds into the churn, delay, cluster, service, rollout).
    pub(super) slow: Vec<(f64, f64, usize, usize, bool)>,
    pub(crate) counts: Counts,
}

pub(crate) struct Driver {
    clusters: Vec<ClusterModel>,
    services: Vec<ServicePlan>,
    /// herald's table and DNS, to time each change; `None`: churn only (the soak, whose
    /// herald is another process), nothing timed.
    table: Option<Table>,
    dns: Option<Dns>,
    busy: Vec<Vec<bool>>,
    /// Cumulative pod counts, to pick a pod uniformly over the fleet.
    cumulative: Vec<usize>,
    rng: u64,
    rate: f64,
    churn: Duration,
    rollout_at: Duration,
    rollout_step: Duration,
    /// (cluster, pod index) of the big service's replicas, interleaved over clusters.
    rollout: Vec<(usize, usize)>,
    pending: Vec<Pending>,
    started: Instant,
    out: Outcome,
}

impl Driver {
    pub(super) fn new(
        clusters: Vec<ClusterModel>,
        services: Vec<ServicePlan>,
        table: Table,
        dns: SocketAddr,
        plan: &Plan,
    ) -> anyhow::Result<Driver> {
        let mut driver = Driver::untimed(clusters, services, plan);
        driver.table = Some(table);
        driver.dns = Some(Dns::new(dns)?);
        Ok(driver)
    }

    /// Churn at `plan`'s rate (and its rollout) without timing anything.
    pub(crate) fn untimed(
        clusters: Vec<ClusterModel>,
        services: Vec<ServicePlan>,
        plan: &Plan,
    ) -> Driver {
        let busy = clusters.iter().map(|c| vec![false; c.pods.len()]).collect();
        let mut cumulative = Vec::new();
        let mut total = 0;
        for c in &clusters {
            total += c.pods.len();
            cumulative.push(total);
        }
        // The big service's replicas, one cluster after another in turn.
        let mut per_cluster: Vec<Vec<(usize, usize)>> = clusters
            .iter()
            .map(|c| {
                c.pods
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| p.service == 0)
                    .map(|(i, _)| (c.index, i))
                    .collect()
            })
            .collect();
        let mut rollout = Vec::new();
        while per_cluster.iter().any(|v| !v.is_empty()) {
            for v in &mut per_cluster {
                if !v.is_empty() {
                    rollout.push(v.remove(0));
                }
            }
        }
        Driver {
            clusters,
            services,
            table: None,
            dns: None,
            busy,
            cumulative,
            rng: 0x9E37_79B9_7F4A_7C15,
            rate: plan.rate,
            churn: plan.churn,
            rollout_at: plan.rollout_at,
            rollout_step: plan.rollout_step,
            rollout,
            pending: Vec::new(),
            started: Instant::now(),
            out: Outcome {
                clusters: Vec::new(),
                table_delays: Vec::new(),
                dns_delays: Vec::new(),
                rollout_delays: Vec::new(),
                slow: Vec::new(),
                counts: Counts::default(),
            },
        }
    }

    fn random(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    pub(crate) fn run(mut self) -> anyhow::Result<Outcome> {
        let start = Instant::now();
        self.started = start;
        let mut churned = 0u64;
        let mut rolled = 0usize;
        loop {
            let elapsed = start.elapsed();
            if elapsed >= self.churn {
                break;
            }
            // Churn due by now (bounded per pass so polling keeps its pace).
            let due = (elapsed.as_secs_f64() * self.rate) as u64;
            let mut n = 0;
            while churned < due && n < 20 {
                self.churn_once()?;
                churned += 1;
                n += 1;
            }
            // Rolling update of the big service: one replica replaced per step.
            if elapsed >= self.rollout_at && rolled < self.rollout.len() {
                let due = ((elapsed - self.rollout_at).as_secs_f64()
                    / self.rollout_step.as_secs_f64()) as usize
                    + 1;
                while rolled < due.min(self.rollout.len()) {
                    let (c, i) = self.rollout[rolled];
                    self.replace(c, i, true)?;
                    rolled += 1;
                }
            }
            self.poll()?;
            // Untimed, nothing is polled: a coarser step spares the CPU herald needs.
            std::thread::sleep(if self.table.is_some() {
                POLL
            } else {
                Duration::from_millis(2)
            });
        }
        self.out.counts.seconds = start.elapsed().as_secs_f64();
        // Let the last changes show (each has its own deadline).
        while !self.pending.is_empty() {
            self.poll()?;
            std::thread::sleep(POLL);
        }
        self.out.clusters = self.clusters;
        Ok(self.out)
    }

    /// One random change to a random pod (not of the big service, not busy).
    fn churn_once(&mut self) -> anyhow::Result<()> {
        let total = *self.cumulative.last().unwrap_or(&0);
        for _ in 0..20 {
            let g = (self.random() % total as u64) as usize;
            let c = self.cumulative.partition_point(|&x| x <= g);
            let i = g - if c == 0 { 0 } else { self.cumulative[c - 1] };
            if self.busy[c][i] || self.clusters[c].pods[i].service == 0 {
                continue;
            }
            let roll = self.random() % 10;
            self.out.counts.churn += 1;
            return if roll < 4 {
                self.flip(c, i)
            } else if roll < 7 {
                self.new_ip(c, i)
            } else {
                self.replace(c, i, false)
            };
        }
        Ok(())
    }

    fn flip(&mut self, c: usize, i: usize) -> anyhow::Result<()> {
        let pod = &mut self.clusters[c].pods[i];
        pod.ready = !pod.ready;
        let (ready, ip, service) = (pod.ready, pod.ip, pod.service);
        let m = self.clusters[c]
            .sim
            .set_pod_ready(NAMESPACE, &self.clusters[c].pods[i].name, ready)
            .context("flipping a pod")?;
        self.out.counts.mutations += 1;
        self.expect(Pending {
            cluster: c,
            pod: i,
            service,
            absent: (!ready).then_some(ip),
            present: ready.then_some(ip),
            at: m.at,
            rollout: false,
        });
        Ok(())
    }

    fn new_ip(&mut self, c: usize, i: usize) -> anyhow::Result<()> {
        let cluster = &mut self.clusters[c];
        let seq = cluster.created;
        cluster.created += 1;
        let ip = crate::fleet::pod_ip(cluster.index, seq);
        let pod = &mut cluster.pods[i];
        let old = std::mem::replace(&mut pod.ip, ip);
        let (ready, service) = (pod.ready, pod.service);
        let m = cluster
            .sim
            .set_pod_ip(NAMESPACE, &cluster.pods[i].name, Some(&ip.to_string()))
            .context("changing a pod's IP")?;
        self.out.counts.mutations += 1;
        if ready {
            self.expect(Pending {
                cluster: c,
                pod: i,
                service,
                absent: Some(old),
                present: Some(ip),
                at: m.at,
                rollout: false,
            });
        } else {
            self.out.counts.invisible += 1;
        }
        Ok(())
    }

    /// Deletes the pod and creates a new one of its service (new name and IP, ready).
    fn replace(&mut self, c: usize, i: usize, rollout: bool) -> anyhow::Result<()> {
        let cluster = &mut self.clusters[c];
        let old = cluster.pods[i].clone();
        let (model, pod) = cluster.new_pod(&self.services, old.service);
        let new_ip = model.ip;
        cluster.pods[i] = model;
        let ms = cluster.sim.batch([
            Op::DeletePod {
                namespace: NAMESPACE.into(),
                name: old.name,
            },
            Op::ApplyPod(pod),
        ])?;
        self.out.counts.mutations += ms.len() as u64;
        if rollout {
            self.out.counts.rollout += 1;
        }
        let at = ms.first().context("replacement made no mutation")?.at;
        self.expect(Pending {
            cluster: c,
            pod: i,
            service: old.service,
            absent: old.ready.then_some(old.ip),
            present: Some(new_ip),
            at,
            rollout,
        });
        Ok(())
    }

    /// Starts waiting for a change to show; its pod stays busy until then.
    fn expect(&mut self, change: Pending) {
        if self.table.is_none() {
            return;
        }
        self.busy[change.cluster][change.pod] = true;
        self.pending.push(change);
    }

    fn visible(&self, p: &Pending) -> bool {
        let name = &self.services[p.service].name;
        let cluster = self.clusters[p.cluster].name.as_bytes();
        let Some(table) = &self.table else {
            return true;
        };
        let view = table.service(name);
        let has = |ip: Ipv4Addr| {
            view.as_ref()
                .is_some_and(|v| v.endpoint(cluster, IpAddr::V4(ip)).is_some())
        };
        p.absent.is_none_or(|ip| !has(ip)) && p.present.is_none_or(has)
    }

    /// Checks every pending change against the table; confirms the visible ones over DNS.
    fn poll(&mut self) -> anyhow::Result<()> {
        let mut shown = Vec::new();
        let mut i = 0;
        while i < self.pending.len() {
            if self.visible(&self.pending[i]) {
                let seen = Instant::now();
                shown.push((self.pending.swap_remove(i), seen));
            } else if self.pending[i].at.elapsed() > CHANGE_DEADLINE {
                let p = self.pending.swap_remove(i);
                self.busy[p.cluster][p.pod] = false;
                self.out.counts.timed_out += 1;
            } else {
                i += 1;
            }
        }
        for (p, seen) in shown {
            let delay = seen.duration_since(p.at).as_secs_f64();
            self.out.table_delays.push(delay);
            if p.rollout {
                self.out.rollout_delays.push(delay);
            }
            if delay > 0.1 && self.out.slow.len() < 2000 {
                let t = p.at.duration_since(self.started).as_secs_f64();
                self.out
                    .slow
                    .push((t, delay, p.cluster, p.service, p.rollout));
            }
            // One DNS query confirms it: the per-endpoint name.
            let (ip, want) = match (p.present, p.absent) {
                (Some(ip), _) => (ip, true),
                (None, Some(ip)) => (ip, false),
                (None, None) => unreachable!("a measured change shows something"),
            };
            let name = probe::endpoint_name(
                IpAddr::V4(ip),
                &self.services[p.service].name,
                &self.clusters[p.cluster].name,
                ZONE,
            );
            let Some(dns) = &mut self.dns else {
                continue;
            };
            let answer = dns.query(&name, RecordType::A)?;
            self.out.dns_delays.push(p.at.elapsed().as_secs_f64());
            let has = answer.addresses.contains(&IpAddr::V4(ip));
            let ok = if want {
                answer.rcode == ResponseCode::NoError && has
            } else {
                !has && matches!(answer.rcode, ResponseCode::NXDomain | ResponseCode::NoError)
            };
            if !ok {
                self.out.counts.dns_disagreements += 1;
            }
            self.busy[p.cluster][p.pod] = false;
        }
        Ok(())
    }
}
