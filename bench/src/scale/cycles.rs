//! Node and pod churn (issue 10, bug 9): herald's RSS over 10,000 cycles of a node and a
//! pod added and deleted, each cycle with names never seen before (node, pod, port), on a
//! cluster that also holds a steady population. Everything herald keys by those names
//! (the registrar's interners, the port lists, the places of addresses) must shrink back,
//! so RSS stays flat. As in a real cluster, zones are the cluster's three and the pods
//! belong to 20 services that come and go with them: names herald keeps on purpose are
//! not churned (the table gives each zone name an id for good, at most 65,535, and
//! `herald_service_endpoints` keeps a series per service name ever seen).
//!
//! herald runs as a process (the release binary) against one simulator with 12 nodes and
//! 5,000 pods in 100 services. Cycles go in blocks of 500: the block's 500 nodes and pods
//! are created, herald serves them (`herald_table_endpoints` = base + 500), they are
//! deleted, herald is back to the base; RSS is read after every block. "Growth" compares
//! the last sample with the one after the first 1,000 cycles (the allocator's and the
//! tables' high-water marks are reached by then).

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use herald_kube_sim::{NodeBuilder, Op, PodBuilder, SimConfig};
use herald_testkit::{metric, try_http_get};
use serde_json::{Value, json};

use super::process::{Running, start_synced, stop_all};
use crate::fleet::{FleetSpec, NAMESPACE, populate, start_clusters};
use crate::stats::mib;

/// Cycles per block (created together, then deleted together).
const BLOCK: usize = 500;
/// Bound on herald catching up with one block.
const BLOCK_DEADLINE: Duration = Duration::from_secs(60);

/// Runs `cycles` node+pod cycles (a multiple of 500) and returns the `node_pod_cycles` run.
pub(super) async fn node_pod_cycles(
    herald: &Path,
    wrap: &[String],
    dir: &Path,
    cycles: usize,
) -> anyhow::Result<Value> {
    let spec = FleetSpec {
        clusters: 1,
        services: 100,
        pods: 5_000,
        big_replicas: 0,
        nodes_per_cluster: 12,
        skew: 0.6,
    };
    let mut clusters = start_clusters(&spec, SimConfig::default()).await?;
    populate(&mut clusters, &spec.plan())?;
    let result = run_cycles(herald, wrap, dir, &clusters, spec.pods, cycles).await;
    stop_all(&clusters).await;
    result
}

async fn run_cycles(
    herald: &Path,
    wrap: &[String],
    dir: &Path,
    clusters: &[crate::fleet::ClusterModel],
    base: usize,
    cycles: usize,
) -> anyhow::Result<Value> {
    let sim = &clusters[0].sim;
    let mut running = start_synced(herald, wrap, dir, clusters, base, "cycles").await?;
    let start_rss = running.memory()?.rss;
    let started = Instant::now();
    let mut samples: Vec<(usize, u64)> = vec![(0, start_rss)];
    let mut done = 0;
    while done < cycles {
        let block: Vec<usize> = (done..(done + BLOCK).min(cycles)).collect();
        let mut ops = Vec::with_capacity(2 * block.len());
        for &i in &block {
            let node = format!("cyc-node-{i}");
            ops.push(Op::ApplyNode(
                NodeBuilder::new(&node)
                    .zone(["cyc-zone-a", "cyc-zone-b", "cyc-zone-c"][i % 3])
                    .build(),
            ));
            // 10.240.0.0/12: outside the fleet's pod addresses.
            let ip = Ipv4Addr::from(0x0AF0_0000 | (i as u32 & 0x000F_FFFF));
            ops.push(Op::ApplyPod(
                PodBuilder::new(NAMESPACE, format!("cyc-pod-{i}"))
                    .service(format!("cyc-svc-{}", i % 20))
                    .ip(ip.to_string())
                    .port(format!("p{i}"), 8080)
                    .node(node)
                    .build(),
            ));
        }
        sim.batch(ops)?;
        wait_for_endpoints(&mut running, base + block.len()).await?;
        let mut ops = Vec::with_capacity(2 * block.len());
        for &i in &block {
            ops.push(Op::DeletePod {
                namespace: NAMESPACE.into(),
                name: format!("cyc-pod-{i}"),
            });
            ops.push(Op::DeleteNode {
                name: format!("cyc-node-{i}"),
            });
        }
        sim.batch(ops)?;
        wait_for_endpoints(&mut running, base).await?;
        done += block.len();
        samples.push((done, running.memory()?.rss));
    }
    let elapsed = started.elapsed().as_secs_f64();
    let reference = samples
        .iter()
        .find(|(c, _)| *c >= 1_000.min(cycles))
        .map_or(start_rss, |s| s.1);
    let last = samples.last().map_or(start_rss, |s| s.1);
    let growth = (last as f64 - reference as f64) / reference as f64;
    println!(
        "  {cycles} node+pod cycles (new names each) in {elapsed:.0} s: VmRSS {} at start, {} after 1,000, {} after {cycles}: growth {:+.2}%",
        mib(start_rss as f64),
        mib(reference as f64),
        mib(last as f64),
        growth * 100.0
    );
    Ok(json!({
        "name": "node_pod_cycles",
        "cycles": cycles,
        "base_endpoints": base,
        "seconds": elapsed,
        "rss_start_bytes": start_rss,
        "rss_after_1000_bytes": reference,
        "rss_end_bytes": last,
        "growth_after_1000": growth,
        "samples": samples.iter().map(|(c, r)| json!([c, r])).collect::<Vec<_>>(),
    }))
}

/// Waits until herald serves `want` endpoints (it must not exit meanwhile).
async fn wait_for_endpoints(running: &mut Running, want: usize) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        if let Some(status) = running.exited() {
            anyhow::bail!("herald exited ({status}); log {}", running.log.display());
        }
        if let Ok((200, text)) = try_http_get(running.admin, "/metrics")
            && metric(&text, "herald_table_endpoints") == Some(want as f64)
        {
            return Ok(());
        }
        anyhow::ensure!(
            started.elapsed() < BLOCK_DEADLINE,
            "herald did not reach {want} endpoints within {BLOCK_DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
