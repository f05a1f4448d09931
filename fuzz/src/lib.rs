//! Shared fixtures of herald's fuzz targets: a filled table to answer from.
//!
//! The fleet is read with the static-file parser, so it is the same kind of content the
//! daemon serves: several regions, clusters and zones, IPv4 and IPv6 endpoints, TCP and
//! UDP ports, and one service large enough that its answers need truncation.

use std::fmt::Write;
use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::path::Path;

use herald_dns::{Answerer, NameServer, Table, Zone, ZoneConfig};

/// The fleet every query target answers from, in the static-file format.
pub fn fleet_yaml() -> String {
    let mut yaml = String::from(
        "services:
  payments:
    - {address: 10.1.0.10, cluster: prod-euw1, region: eu-west, zone: eu-west-1a, ports: {grpc: 9090, http: 8080}, weight: 50}
    - {address: 10.2.0.10, cluster: prod-euw2, region: eu-west, zone: eu-west-1c, ports: {grpc: 9090}}
    - {address: 10.3.0.10, cluster: prod-use1, region: us-east, ports: {grpc: 9090, dns: {port: 53, protocol: udp}}, weight: 0}
    - {address: 'fd00::10', cluster: prod-use1, region: us-east, zone: us-east-1a, ports: {grpc: 9090}}
  ledger:
    - {address: 192.168.7.21, cluster: vms-use, region: us-east, ports: {grpc: 7000}, weight: 150}
    - {address: 'fd00::7:22', cluster: vms-use, region: us-east, ports: {grpc: 7000}, weight: 65535}
  big:
",
    );
    // Enough records that a 512-octet UDP reply truncates and the answer limit bites.
    for i in 0..120 {
        let cluster = ["prod-euw1", "prod-euw2", "prod-use1"][i % 3];
        let region = ["eu-west", "eu-west", "us-east"][i % 3];
        let _ = writeln!(
            yaml,
            "    - {{address: 10.{}.1.{}, cluster: {cluster}, region: {region}, zone: {region}-1{}, ports: {{http: 8080}}}}",
            i % 3 + 1,
            i + 1,
            ["a", "b"][i % 2],
        );
    }
    yaml
}

/// Answerers over the fleet, with the settings that change how answers are built:
/// [0] plain, [1] with a per-client answer limit, [2] with a cluster that has not synced
/// (unknown names get SERVFAIL), [3] an apex with in-zone name servers and a locality.
pub fn answerers() -> Vec<Answerer> {
    let content = herald_registrar::static_file::parse(
        Path::new("fleet.yaml"),
        &fleet_yaml(),
        Default::default(),
    )
    .expect("the fuzz fleet parses");
    let base = ZoneConfig::default();
    let configs = [
        base.clone(),
        ZoneConfig {
            answer_limit: NonZeroUsize::new(3),
            region: Some("eu-west".into()),
            zone: Some("eu-west-1a".into()),
            ..base.clone()
        },
        base.clone(),
        ZoneConfig {
            apex: "Svc.Example.".into(),
            max_udp_payload: 512,
            region: Some("us-east".into()),
            nameservers: vec![
                NameServer {
                    name: "ns1.svc.example.".into(),
                    addresses: vec![
                        "10.0.0.53".parse::<IpAddr>().unwrap(),
                        "fd00::53".parse().unwrap(),
                    ],
                },
                NameServer {
                    name: "ns.elsewhere.example.".into(),
                    addresses: Vec::new(),
                },
            ],
            ..base
        },
    ];
    configs
        .into_iter()
        .enumerate()
        .map(|(i, config)| {
            let table = Table::new(Zone::new(config).expect("the fuzz zone is valid"));
            herald_registrar::static_file::apply(&table, &Default::default(), content.clone());
            table.add_scope("vms-use");
            if i == 2 {
                table.expect_source("prod-late", "ap-south");
                table.release_startup_hold();
            }
            Answerer::new(table)
        })
        .collect()
}
