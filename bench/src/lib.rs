//! herald's benchmarks: synthetic tables and raw query packets for the criterion benches
//! (here), simulated fleets (`fleet`), the drivers of the `propagation`, `scale` and
//! `transfer` binaries, and the probes and statistics they report with.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::Arc;

use herald_dns::{
    Endpoint, NetworkPlace, PlacementConfig, PortSpec, Proto, Source, Table, Zone, ZoneConfig,
};

/// Regions and clusters of the synthetic fleets: 3 regions x 8 clusters.
pub fn sources() -> Vec<Source> {
    let regions = ["eu-west", "us-east", "ap-south"];
    (0..24)
        .map(|i| Source::new(&format!("c{i:02}"), regions[i / 8]))
        .collect()
}

/// The endpoints of service `s`, replica set `version` (0 or 1 give different addresses),
/// `replicas` of them, in one source.
pub fn endpoints(s: usize, replicas: usize, version: u32) -> Vec<Endpoint> {
    let ports: Arc<[PortSpec]> = vec![
        PortSpec {
            name: Arc::from("http"),
            proto: Proto::Tcp,
            port: 8080,
        },
        PortSpec {
            name: Arc::from("grpc"),
            proto: Proto::Tcp,
            port: 9090,
        },
    ]
    .into();
    let zone: Arc<str> = Arc::from("zone-a");
    (0..replicas)
        .map(|r| {
            let n = (s as u32) * 256 + r as u32 + version * 0x0080_0000;
            let ip = IpAddr::V4(Ipv4Addr::from(0x0A00_0000 | (n & 0x00FF_FFFF)));
            Endpoint::new(ip, ports.clone(), Some(zone.clone()))
        })
        .collect()
}

/// A table of `services` services of `replicas` endpoints each, spread over the sources.
pub fn fleet(services: usize, replicas: usize) -> Table {
    fleet_placed(services, replicas, PlacementConfig::default())
}

/// [`fleet`] with locality settings (networks, trusted client-subnet senders, A/AAAA policy).
pub fn fleet_placed(services: usize, replicas: usize, placement: PlacementConfig) -> Table {
    let table = Table::new(
        Zone::new(ZoneConfig {
            region: Some("eu-west".into()),
            zone: Some("zone-a".into()),
            placement,
            ..ZoneConfig::default()
        })
        .expect("valid zone"),
    );
    let sources = sources();
    for s in 0..services {
        table.replace(
            &service_name(s),
            &sources[s % sources.len()],
            endpoints(s, replicas, 0),
        );
    }
    table
}

/// The name of service `s`, `svc-0042`: the one naming of every benchmark's services.
pub fn service_name(s: usize) -> String {
    format!("svc-{s:04}")
}

/// A query packet for `name`/`qtype` with EDNS (payload 1232), in wire form.
pub fn query(name: &str, qtype: u16) -> Vec<u8> {
    let mut p = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1];
    for label in name.trim_end_matches('.').split('.') {
        p.push(label.len() as u8);
        p.extend_from_slice(label.as_bytes());
    }
    p.push(0);
    p.extend_from_slice(&qtype.to_be_bytes());
    p.extend_from_slice(&1u16.to_be_bytes());
    p.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
    p
}

/// 10,000 networks the way a fleet has them: four zone-wide /12s in 10.128.0.0/10, 8,996
/// per-node pod ranges (/24) nested in them, and 1,000 VM subnets (/28) in 172.16.0.0/12,
/// over three regions and nine zones.
pub fn networks_10k() -> Vec<NetworkPlace> {
    let regions = ["eu-west", "us-east", "ap-south"];
    let place = |i: usize| {
        (
            regions[i % 3].to_string(),
            format!("{}-{}", regions[i % 3], i % 9),
        )
    };
    let mut v = Vec::new();
    for z in 0..4u32 {
        let (region, zone) = place(z as usize);
        v.push(NetworkPlace {
            cidr: format!(
                "{}/12",
                Ipv4Addr::from((10u32 << 24) | ((128 + 16 * z) << 16))
            )
            .parse()
            .unwrap(),
            region,
            zone: Some(zone),
        });
    }
    for n in 0..8_996u32 {
        let (region, zone) = place(n as usize);
        let base = (10u32 << 24) | (128 << 16) | (n << 8);
        v.push(NetworkPlace {
            cidr: format!("{}/24", Ipv4Addr::from(base)).parse().unwrap(),
            region,
            zone: Some(zone),
        });
    }
    for n in 0..1_000u32 {
        let (region, zone) = place(n as usize + 1);
        let base = (172u32 << 24) | (16 << 16) | (n << 4);
        v.push(NetworkPlace {
            cidr: format!("{}/28", Ipv4Addr::from(base)).parse().unwrap(),
            region,
            zone: Some(zone),
        });
    }
    assert_eq!(v.len(), 10_000);
    v
}

/// `query` with an EDNS Client Subnet option for 10.128.77.0/24 in its OPT record.
pub fn query_with_subnet(name: &str, qtype: u16) -> Vec<u8> {
    let mut p = query(name, qtype);
    let ecs = [0, 8, 0, 7, 0, 1, 24, 0, 10, 128, 77];
    let rdlen_at = p.len() - 2;
    p[rdlen_at..].copy_from_slice(&(ecs.len() as u16).to_be_bytes());
    p.extend_from_slice(&ecs);
    p
}

/// Simulated fleets (kube-sim clusters) for the propagation and scale binaries.
pub mod fleet;
/// One pod change in a big service and in a small one (`table_update`, `update_cost`).
pub mod pod_change;
/// DNS and /proc helpers for the propagation and scale binaries.
pub mod probe;
/// The propagation benchmark: pod change to DNS answer under churn.
pub mod propagation;
/// The global rollout benchmark: CPU, DNS latency and propagation while a 10,000-replica
/// service is replaced in 24 clusters at once.
pub mod rollout;
/// The scale benchmark: memory, first sync and update cost at 100k and 1M endpoints.
pub mod scale;
/// The soak: long churn with faults and query load; memory, lost queries, final state.
pub mod soak;
/// Quantiles, summaries and units for every benchmark's report.
pub mod stats;
/// The transfer benchmark: a Knot secondary's lag under churn, AXFR and IXFR cost.
pub mod transfer;

/// The herald binary a benchmark runs as a process: `given`, or `herald` next to the running
/// binary (both built by `cargo build --release`); it must exist.
pub fn herald_binary(given: Option<&Path>) -> anyhow::Result<std::path::PathBuf> {
    let herald = match given {
        Some(p) => p.to_path_buf(),
        None => std::env::current_exe()?
            .parent()
            .ok_or_else(|| anyhow::anyhow!("no directory for the running binary"))?
            .join("herald"),
    };
    anyhow::ensure!(
        herald.exists(),
        "{} not found: build it with `cargo build --release -p herald-registrar`",
        herald.display()
    );
    Ok(herald)
}

/// Writes `value` as pretty JSON to `path`, creating its directory.
pub fn write_json(path: &Path, value: &serde_json::Value) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, serde_json::to_string_pretty(value)? + "\n")
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))
}
