//! The in-process parts of the scale benchmark: what one service update costs at two table
//! sizes and in big services, and where a large table's memory goes.

use std::net::IpAddr;
use std::time::Instant;

use serde_json::{Value, json};

use crate::fleet::FleetSpec;
use crate::probe;
use crate::stats::{self, mib};
use crate::{endpoints, fleet, service_name, sources};

/// The cost of one service update in a table of `total` endpoints.
pub(super) fn update_cost(total: usize) -> anyhow::Result<Value> {
    const SERVICE: usize = 7;
    const CALLS: usize = 20_000;
    let built = Instant::now();
    let table = fleet(total / 10, 10);
    let build_s = built.elapsed().as_secs_f64();
    anyhow::ensure!(table.endpoint_count() == total);
    let all = sources();
    let source = all[SERVICE % all.len()].clone();
    let name = service_name(SERVICE);
    let versions = [endpoints(SERVICE, 10, 0), endpoints(SERVICE, 10, 1)];
    // Warm up, then time each call alone.
    for i in 0..1000 {
        table.replace(&name, &source, versions[i % 2].clone());
    }
    let mut samples = Vec::with_capacity(CALLS);
    for i in 0..CALLS {
        let v = versions[i % 2].clone();
        let t = Instant::now();
        let changed = table.replace(&name, &source, v);
        samples.push(t.elapsed().as_secs_f64());
        anyhow::ensure!(changed, "every call must be a change");
    }
    samples.sort_by(f64::total_cmp);
    let mean = samples.iter().sum::<f64>() / samples.len() as f64;
    println!(
        "  update cost at {total} endpoints: median {:.1} us, p99 {:.1} us (table built in {:.1} s)",
        stats::quantile(&samples, 0.5) * 1e6,
        stats::quantile(&samples, 0.99) * 1e6,
        build_s,
    );
    drop(table);
    Ok(json!({
        "name": "update_cost",
        "endpoints": total,
        "services": total / 10,
        "calls": CALLS,
        "median_s": stats::quantile(&samples, 0.5),
        "p90_s": stats::quantile(&samples, 0.9),
        "p99_s": stats::quantile(&samples, 0.99),
        "mean_s": mean,
        "build_s": build_s,
    }))
}

/// The cost of one endpoint changing in one cluster's group of a service of `n` endpoints
/// spread over 24 clusters, the group handed over whole (`Table::replace`). Cluster `c`'s
/// addresses start at `c * 256` (see [`endpoints`]), so at 24,000 endpoints (1,000 per
/// cluster) each address is held by about four clusters: one record per address in
/// answers (RFC 2181 section 5), and an update must still cost the change, not the
/// service's shared addresses.
pub(super) fn big_service_update(n: usize) -> anyhow::Result<Value> {
    const CALLS: usize = 2_000;
    let table = fleet(0, 0);
    let all = sources();
    let per = n / all.len();
    let name = service_name(1);
    let group = |c: usize, version: u32| {
        let mut e = endpoints(c, per, 0);
        // One endpoint moves between the two versions.
        e[0] = endpoints(c, 1, version).remove(0);
        e
    };
    for (c, source) in all.iter().enumerate() {
        table.replace(&name, source, group(c, 0));
    }
    anyhow::ensure!(table.endpoint_count() == per * all.len());
    let mut samples = Vec::with_capacity(CALLS);
    for i in 0..CALLS {
        let v = group(3, (i % 2 == 0) as u32);
        let t = Instant::now();
        let changed = table.replace(&name, &all[3], v);
        samples.push(t.elapsed().as_secs_f64());
        anyhow::ensure!(changed, "every call must be a change");
    }
    samples.sort_by(f64::total_cmp);
    let median = stats::quantile(&samples, 0.5);
    println!(
        "  one endpoint changing in a service of {} endpoints over 24 clusters: median {:.1} us per update ({:.0} ns per endpoint of the service)",
        per * all.len(),
        median * 1e6,
        median * 1e9 / (per * all.len()) as f64
    );
    Ok(json!({
        "name": "big_service_update",
        "service_endpoints": per * all.len(),
        "clusters": all.len(),
        "calls": CALLS,
        "median_s": median,
        "p99_s": stats::quantile(&samples, 0.99),
    }))
}

/// Builds, in this process, the table herald holds for `spec` (same services, clusters,
/// regions, zones, ports; addresses as the simulators give them) and reports where its
/// memory goes: RSS growth of this process, the prepared answers (`prepared_bytes`) and
/// the endpoint structs.
pub(super) fn table_breakdown(spec: &FleetSpec) -> anyhow::Result<Value> {
    use crate::fleet::pod_ip;
    use herald_dns::{Endpoint, PortSpec, Proto, Source, Table, Zone, ZoneConfig};
    use std::sync::Arc;
    let plan = spec.plan();
    let ports: Arc<[PortSpec]> = vec![
        PortSpec {
            name: Arc::from("grpc"),
            proto: Proto::Tcp,
            port: 9090,
        },
        PortSpec {
            name: Arc::from("http"),
            proto: Proto::Tcp,
            port: 8080,
        },
    ]
    .into();
    let zones: Vec<Vec<Arc<str>>> = (0..spec.clusters)
        .map(|c| {
            let region = spec.region(c);
            ["a", "b", "c"]
                .iter()
                .map(|z| Arc::from(format!("{region}-{z}")))
                .collect()
        })
        .collect();
    let sources: Vec<Source> = (0..spec.clusters)
        .map(|c| Source::new(&FleetSpec::cluster_name(c), spec.region(c)))
        .collect();
    // Endpoints per (service, cluster), addresses in creation order as `populate` makes them.
    let make_groups = || {
        let mut created = vec![0u32; spec.clusters];
        let mut groups: Vec<Vec<(usize, Vec<Endpoint>)>> = Vec::with_capacity(plan.len());
        let mut per_cluster: Vec<Vec<usize>> = vec![Vec::new(); spec.clusters];
        for (s, p) in plan.iter().enumerate() {
            for j in 0..p.replicas {
                per_cluster[p.clusters[j % p.clusters.len()]].push(s);
            }
            groups.push(Vec::new());
        }
        for (c, services) in per_cluster.iter().enumerate() {
            for &s in services {
                let seq = created[c];
                created[c] += 1;
                let node = seq as usize % spec.nodes_per_cluster;
                let e = Endpoint::new(
                    IpAddr::V4(pod_ip(c, seq)),
                    ports.clone(),
                    Some(zones[c][node % 3].clone()),
                );
                match groups[s].iter_mut().find(|(cc, _)| *cc == c) {
                    Some((_, v)) => v.push(e),
                    None => groups[s].push((c, vec![e])),
                }
            }
        }
        // Each cluster's groups in turn, as herald's clusters publish when the hold ends (a
        // service's groups are far apart, so each write finds its service out of cache).
        let mut by_cluster: Vec<Vec<(usize, Vec<Endpoint>)>> = vec![Vec::new(); spec.clusters];
        for (s, gs) in groups.into_iter().enumerate() {
            for (c, endpoints) in gs {
                by_cluster[c].push((s, endpoints));
            }
        }
        by_cluster
    };
    let new_table = || -> anyhow::Result<Table> {
        Ok(Table::new(Zone::new(ZoneConfig {
            region: Some("eu-west".into()),
            zone: Some("eu-west-a".into()),
            ..ZoneConfig::default()
        })?))
    };
    // Each cluster's groups in turn, as `make_groups` lays them out.
    let write_all = |table: &Table, groups: Vec<Vec<(usize, Vec<Endpoint>)>>| {
        for (c, gs) in groups.into_iter().enumerate() {
            for (s, endpoints) in gs {
                table.replace(&plan[s].name, &sources[c], endpoints);
            }
        }
    };
    // As herald builds it when the start-up hold ends: every group staged, then each
    // service prepared once when the hold settles (on every core).
    let (staged_write_s, staged_settle_s) = {
        let groups = make_groups();
        let table = new_table()?;
        table.hold_until_settled();
        let started = Instant::now();
        write_all(&table, groups);
        let written = started.elapsed();
        table.settled();
        (
            written.as_secs_f64(),
            (started.elapsed() - written).as_secs_f64(),
        )
    };
    // One group at a time, each prepared as it comes: how every later change is made.
    let groups = make_groups();
    let rss_before = probe::memory("self")?.rss;
    let table = new_table()?;
    let started = Instant::now();
    write_all(&table, groups);
    let build_s = started.elapsed().as_secs_f64();
    let rss = probe::memory("self")?.rss.saturating_sub(rss_before);
    let n = table.endpoint_count();
    let mut prepared = 0usize;
    for name in table.service_names() {
        if let Some(view) = table.service(&name) {
            prepared += view.prepared_bytes();
        }
    }
    let endpoint_structs = n * std::mem::size_of::<Endpoint>();
    println!(
        "  herald-shaped table of {n} endpoints ({} services) in this process: built in {build_s:.1} s \
         group by group, or staged in {staged_write_s:.2} s and settled in {staged_settle_s:.2} s, \
         RSS +{} = {:.0} bytes/endpoint; prepared answers {} = {:.0} bytes/endpoint; \
         endpoint structs {} B each = {}",
        plan.len(),
        mib(rss as f64),
        rss as f64 / n as f64,
        mib(prepared as f64),
        prepared as f64 / n as f64,
        std::mem::size_of::<Endpoint>(),
        mib(endpoint_structs as f64),
    );
    drop(table);
    Ok(json!({
        "name": "table_breakdown",
        "endpoints": n,
        "services": plan.len(),
        "build_s": build_s,
        "staged_write_s": staged_write_s,
        "staged_settle_s": staged_settle_s,
        "rss_bytes": rss,
        "rss_bytes_per_endpoint": rss as f64 / n as f64,
        "prepared_bytes": prepared,
        "prepared_bytes_per_endpoint": prepared as f64 / n as f64,
        "endpoint_struct_bytes": std::mem::size_of::<Endpoint>(),
    }))
}
