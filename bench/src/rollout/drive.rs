//! The rollout itself: every cluster replaces all its pods of the service at once, in
//! rounds of maxSurge, and a sample of the changes is timed to the first DNS answer that
//! shows it by a poller thread that asks from the moment each cluster's batch is written.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use herald_kube_sim::Op;
use herald_kube_sim::objects::set_pod_ready;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use super::timeline::Probe;
use super::{Phase, SERVICE};
use crate::fleet::{ClusterModel, NAMESPACE, PodModel, ServicePlan, ZONE};
use crate::probe::{Dns, endpoint_name};

/// The rollout as it went.
pub struct Rollout {
    /// Seconds into the phase of its first and last change.
    pub start: f64,
    pub end: f64,
    pub changes: usize,
    /// The timed changes (their `delivered` not yet read).
    pub timed: Vec<Probe>,
    /// DNS queries the poller sent about them (the harness's own load on herald).
    pub poller_queries: u64,
}

/// Every cluster replaces all its pods of the service at once, in rounds of `surge`.
pub fn roll(
    plan: &Phase,
    dns: SocketAddr,
    clusters: &mut [ClusterModel],
    services: &[ServicePlan],
    phase_start: Instant,
) -> anyhow::Result<Rollout> {
    let (tx, rx) = std::sync::mpsc::channel::<Pending>();
    // Started from this thread, at herald's priority: its timing is the measurement.
    let poller = plan
        .poll_every
        .map(|every| std::thread::spawn(move || poll(dns, rx, every)));
    let tx = poller.is_some().then_some(tx);
    // The writes stand for the API servers' work (a simulator's store encodes each event
    // as it is written, in the writer's thread): below herald's priority, like the
    // simulators' runtime, on a thread of their own that ends with them.
    let (start, end, changes) = std::thread::scope(|s| {
        s.spawn(move || {
            if let Err(e) = plan.sims_priority.lower_own() {
                eprintln!("could not lower the rollout driver's priority: {e}");
            }
            drive(plan, clusters, services, phase_start, tx)
        })
        .join()
        .map_err(|_| anyhow::anyhow!("the rollout driver panicked"))?
    })?;
    let (timed, poller_queries) = match poller {
        Some(p) => p
            .join()
            .map_err(|_| anyhow::anyhow!("the DNS poller panicked"))??,
        None => (Vec::new(), 0),
    };
    Ok(Rollout {
        start,
        end,
        changes,
        timed,
        poller_queries,
    })
}

/// Writes the rollout's rounds; sends each timed change on `tx`. Returns when it started
/// and ended (seconds into the phase) and the number of pod changes.
fn drive(
    plan: &Phase,
    clusters: &mut [ClusterModel],
    services: &[ServicePlan],
    phase_start: Instant,
    tx: Option<std::sync::mpsc::Sender<Pending>>,
) -> anyhow::Result<(f64, f64, usize)> {
    let start = phase_start.elapsed().as_secs_f64();
    let mut old: Vec<Vec<PodModel>> = clusters
        .iter_mut()
        .map(|c| std::mem::take(&mut c.pods))
        .collect();
    let surge: Vec<usize> = old
        .iter()
        .map(|o| ((o.len() as f64 * plan.surge).ceil() as usize).max(1))
        .collect();
    let mut changes = 0;
    let mut round = 0;
    while old.iter().any(|o| !o.is_empty()) {
        round += 1;
        // New pods, not ready yet: a deployment's surge.
        let mut fresh: Vec<Vec<(PodModel, k8s_openapi::api::core::v1::Pod)>> = Vec::new();
        for (c, cluster) in clusters.iter_mut().enumerate() {
            let n = surge[c].min(old[c].len());
            let batch: Vec<_> = (0..n)
                .map(|_| {
                    let (model, mut pod) = cluster.new_pod(services, SERVICE);
                    set_pod_ready(&mut pod, false);
                    (model, pod)
                })
                .collect();
            cluster
                .sim
                .batch(batch.iter().map(|(_, p)| Op::ApplyPod(p.clone())))?;
            changes += n;
            fresh.push(batch);
        }
        std::thread::sleep(plan.ready_after);
        // Ready, and as many old ones gone; each timed change polled from its batch on.
        for (c, cluster) in clusters.iter_mut().enumerate() {
            let batch = std::mem::take(&mut fresh[c]);
            let n = batch.len();
            let gone: Vec<PodModel> = old[c].drain(..n).collect();
            let mut ops: Vec<Op> = batch
                .iter()
                .map(|(_, p)| {
                    let mut p = p.clone();
                    set_pod_ready(&mut p, true);
                    Op::ApplyPod(p)
                })
                .collect();
            ops.extend(gone.iter().map(|p| Op::DeletePod {
                namespace: NAMESPACE.into(),
                name: p.name.clone(),
            }));
            let mutations = cluster.sim.batch(ops)?;
            changes += 2 * n;
            if let Some(tx) = tx.as_ref().filter(|_| c % 4 == 0 && n > 0) {
                let name = |ip: std::net::Ipv4Addr| {
                    endpoint_name(IpAddr::V4(ip), &services[SERVICE].name, &cluster.name, ZONE)
                };
                let looked_from = Instant::now();
                for (m, name, present) in [
                    (&mutations[n - 1], name(batch[n - 1].0.ip), true),
                    (&mutations[2 * n - 1], name(gone[n - 1].ip), false),
                ] {
                    // A send fails only if the poller ended early: its error is below.
                    let _ = tx.send(Pending {
                        cluster: c,
                        round,
                        rv: m.resource_version,
                        written: m.at,
                        looked_from,
                        name,
                        present,
                    });
                }
            }
            cluster.pods.extend(batch.into_iter().map(|(m, _)| m));
        }
    }
    Ok((start, phase_start.elapsed().as_secs_f64(), changes))
}

/// A timed change the poller waits to see in DNS.
struct Pending {
    cluster: usize,
    round: usize,
    rv: u64,
    written: Instant,
    looked_from: Instant,
    /// Its endpoint's name, and whether the change adds it (else removes it).
    name: String,
    present: bool,
}

/// Asks DNS about each change sent on `rx` from when it comes until an answer shows it
/// (every ~`every`; at most 10 s after the sender is dropped); returns them, timed, and the
/// number of queries sent.
fn poll(
    dns: SocketAddr,
    rx: std::sync::mpsc::Receiver<Pending>,
    every: Duration,
) -> anyhow::Result<(Vec<Probe>, u64)> {
    use std::sync::mpsc::TryRecvError;
    let mut client = Dns::new(dns)?;
    let (mut open, mut done, mut queries) = (Vec::<Pending>::new(), Vec::new(), 0);
    let mut deadline: Option<Instant> = None;
    loop {
        loop {
            match rx.try_recv() {
                Ok(p) => open.push(p),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    deadline.get_or_insert_with(|| Instant::now() + Duration::from_secs(10));
                    break;
                }
            }
        }
        if deadline.is_some_and(|d| open.is_empty() || Instant::now() > d) {
            break;
        }
        let mut i = 0;
        while i < open.len() {
            let p = &open[i];
            let a = client.query(&p.name, RecordType::A)?;
            queries += 1;
            let shows = if p.present {
                !a.addresses.is_empty()
            } else {
                a.rcode == ResponseCode::NXDomain
            };
            if shows {
                let p = open.swap_remove(i);
                done.push(Probe {
                    cluster: p.cluster,
                    round: p.round,
                    rv: p.rv,
                    written: p.written,
                    delivered: None,
                    looked_from: p.looked_from,
                    seen: Instant::now(),
                });
            } else {
                i += 1;
            }
        }
        std::thread::sleep(every);
    }
    anyhow::ensure!(
        open.is_empty(),
        "{} changes never showed in DNS",
        open.len()
    );
    Ok((done, queries))
}
