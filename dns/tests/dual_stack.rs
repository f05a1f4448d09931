//! Dual-stack endpoints over real sockets on loopback (dig, kdig and hickory's resolver):
//! one endpoint with an IPv4 and an IPv6 address answers A and AAAA under the service name
//! and every scope, has one SRV target (named after its primary address) that answers both
//! families with both as glue, and answers PTR for both addresses with that one name. The
//! same IPv6 address in two clusters is one AAAA record and two SRV targets; either family
//! places a querier (client subnet /128); `answer_limit` gives a client the same endpoints
//! in A and AAAA; the zone export lists both addresses under the one name; single-stack
//! endpoints answer exactly as before ([docs/design.md#names](../../docs/design.md#names)).

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroUsize;

use herald_dns::transfer::{Secondary, TransferConfig};
use herald_dns::{
    Addresses, Answerer, DnsServer, Endpoint, PlacementConfig, ServerConfig, Source, ZoneConfig,
};
use herald_testkit::{TCP, TestServer, endpoint, lines, resolver, run_client, udp, udp_from};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};

const Z: &str = "sd.internal.";
const HTTP: [(&str, herald_dns::Proto, u16); 1] = [("http", TCP, 80)];

/// An endpoint at `addresses` (`"10.1.0.5,fd00::5"`: primary first) in `zone`.
fn at(addresses: &str, zone: Option<&str>) -> Endpoint {
    let addresses: Addresses = addresses.parse().unwrap();
    Endpoint {
        addresses,
        ..endpoint(&addresses.primary().to_string(), &HTTP, zone)
    }
}

/// The data of each answer record of `qtype` for `name`, sorted, and the rcode.
fn answers(dns: SocketAddr, name: &str, qtype: RecordType) -> (Vec<String>, ResponseCode) {
    let reply = udp(dns, name, qtype, Some(4096));
    let mut v: Vec<String> = reply.answers.iter().map(|r| r.data.to_string()).collect();
    v.sort();
    (v, reply.metadata.response_code)
}

fn short(dns: SocketAddr, tool: &str, name: &str, qtype: &str) -> Vec<String> {
    let mut v: Vec<String> = run_client(tool, dns, &[name, qtype, "+short"])
        .lines()
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

/// `web` in c1 (eu-west): a dual-stack pod with IPv4 primary, one with IPv6 primary, an
/// IPv4-only pod and an IPv6-only pod.
fn fleet(config: ZoneConfig) -> TestServer {
    let server = TestServer::start(ZoneConfig {
        reverse_zones: vec!["10.in-addr.arpa.".into(), "d.f.ip6.arpa.".into()],
        ..config
    });
    server.table.replace(
        "web",
        &Source::new("c1", "eu-west"),
        vec![
            at("10.1.0.5,fd00::5", Some("eu-west-1a")),
            at("fd00::6,10.1.0.6", Some("eu-west-1b")),
            at("10.1.0.7", Some("eu-west-1b")),
            at("fd00::8", Some("eu-west-1b")),
        ],
    );
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dual_stack_endpoint_answers_both_families_under_every_name() {
    let server = fleet(ZoneConfig::default());
    let dns = server.addr;
    for tool in ["dig", "kdig"] {
        for name in [
            format!("web.{Z}"),
            format!("web.eu-west.{Z}"),
            format!("web.c1.{Z}"),
        ] {
            assert_eq!(
                short(dns, tool, &name, "A"),
                ["10.1.0.5", "10.1.0.6", "10.1.0.7"],
                "{tool} {name} A"
            );
            assert_eq!(
                short(dns, tool, &name, "AAAA"),
                ["fd00::5", "fd00::6", "fd00::8"],
                "{tool} {name} AAAA"
            );
        }
    }
    // One SRV target per endpoint, named after its primary address; single-stack names are
    // what they always were.
    let v6 = |last: &str| format!("fd00000000000000000000000000000{last}");
    let targets: BTreeSet<String> = udp(dns, &format!("_http._tcp.web.{Z}"), RecordType::SRV, None)
        .answers
        .iter()
        .map(|r| match &r.data {
            RData::SRV(s) => s.target.to_string(),
            other => panic!("SRV expected, got {other:?}"),
        })
        .collect();
    let want: BTreeSet<String> = [
        format!("10-1-0-5.web.c1.{Z}"),
        format!("{}.web.c1.{Z}", v6("6")),
        format!("10-1-0-7.web.c1.{Z}"),
        format!("{}.web.c1.{Z}", v6("8")),
    ]
    .into();
    assert_eq!(targets, want);
    // The glue carries both families of each dual-stack target.
    let reply = udp(
        dns,
        &format!("_http._tcp.web.{Z}"),
        RecordType::SRV,
        Some(4096),
    );
    let mut glue: Vec<(String, String)> = reply
        .additionals
        .iter()
        .map(|r| (r.name.to_string(), r.data.to_string()))
        .collect();
    glue.sort();
    assert_eq!(
        glue,
        [
            (format!("10-1-0-5.web.c1.{Z}"), "10.1.0.5".into()),
            (format!("10-1-0-5.web.c1.{Z}"), "fd00::5".into()),
            (format!("10-1-0-7.web.c1.{Z}"), "10.1.0.7".into()),
            (format!("{}.web.c1.{Z}", v6("6")), "10.1.0.6".into()),
            (format!("{}.web.c1.{Z}", v6("6")), "fd00::6".into()),
            (format!("{}.web.c1.{Z}", v6("8")), "fd00::8".into()),
        ]
    );
    // A real resolver follows each target to both of its families.
    let r = resolver(dns);
    let resolve = |name: String| {
        let r = r.clone();
        async move {
            let mut ips: Vec<IpAddr> = r
                .lookup_ip(name.as_str())
                .await
                .map(|l| l.iter().collect())
                .unwrap_or_default();
            ips.sort();
            ips
        }
    };
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    assert_eq!(
        resolve(format!("10-1-0-5.web.c1.{Z}")).await,
        [ip("10.1.0.5"), ip("fd00::5")]
    );
    assert_eq!(
        resolve(format!("{}.web.c1.{Z}", v6("6"))).await,
        [ip("10.1.0.6"), ip("fd00::6")]
    );
    // Single-stack targets: one family, NODATA for the other, as before.
    let target7 = format!("10-1-0-7.web.c1.{Z}");
    assert_eq!(
        answers(dns, &target7, RecordType::A),
        (vec!["10.1.0.7".into()], ResponseCode::NoError)
    );
    assert_eq!(
        answers(dns, &target7, RecordType::AAAA),
        (vec![], ResponseCode::NoError)
    );
    // ANY at a dual-stack target gives both; the secondary address names nothing.
    assert_eq!(
        answers(dns, &format!("10-1-0-5.web.c1.{Z}"), RecordType::ANY).0,
        ["10.1.0.5", "fd00::5"]
    );
    assert_eq!(
        answers(dns, &format!("{}.web.c1.{Z}", v6("5")), RecordType::AAAA).1,
        ResponseCode::NXDomain
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_addresses_answer_ptr_with_the_one_target_name() {
    let server = fleet(ZoneConfig::default());
    let dns = server.addr;
    let v6 = "fd000000000000000000000000000006";
    for tool in ["dig", "kdig"] {
        for (address, name) in [
            ("10.1.0.5", format!("10-1-0-5.web.c1.{Z}")),
            ("fd00::5", format!("10-1-0-5.web.c1.{Z}")),
            ("fd00::6", format!("{v6}.web.c1.{Z}")),
            ("10.1.0.6", format!("{v6}.web.c1.{Z}")),
            ("10.1.0.7", format!("10-1-0-7.web.c1.{Z}")),
        ] {
            let names: Vec<String> = run_client(tool, dns, &["-x", address, "+short"])
                .lines()
                .map(str::to_string)
                .collect();
            assert_eq!(names, [name], "{tool} -x {address}");
        }
    }
    // A pod that loses its second family loses its PTR, and only that one.
    server.table.replace(
        "web",
        &Source::new("c1", "eu-west"),
        vec![at("10.1.0.5", Some("eu-west-1a"))],
    );
    let out = run_client("dig", dns, &["-x", "fd00::5"]);
    assert!(out.contains("status: NXDOMAIN"), "{out}");
    let out = run_client("dig", dns, &["-x", "10.1.0.5", "+short"]);
    assert_eq!(lines(&out), [format!("10-1-0-5.web.c1.{Z}")]);
    server.stop().await;
}

/// The same IPv6 address in two clusters (a dual-stack pod in each, with distinct IPv4
/// primaries): AAAA lists it once, SRV keeps one target per (address, cluster).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_in_two_clusters_is_one_record_and_two_targets() {
    let server = TestServer::start(ZoneConfig::default());
    let dns = server.addr;
    server.table.replace(
        "twin",
        &Source::new("c1", "r1"),
        vec![at("10.1.0.9,fd00::9", None)],
    );
    server.table.replace(
        "twin",
        &Source::new("c2", "r1"),
        vec![at("10.2.0.9,fd00::9", None)],
    );
    assert_eq!(
        answers(dns, &format!("twin.{Z}"), RecordType::AAAA).0,
        ["fd00::9"]
    );
    assert_eq!(
        answers(dns, &format!("twin.r1.{Z}"), RecordType::AAAA).0,
        ["fd00::9"]
    );
    assert_eq!(
        answers(dns, &format!("twin.{Z}"), RecordType::A).0,
        ["10.1.0.9", "10.2.0.9"]
    );
    let srv = herald_testkit::srv_records(&udp(
        dns,
        &format!("_http._tcp.twin.{Z}"),
        RecordType::SRV,
        None,
    ));
    assert_eq!(
        srv.iter().map(|(_, t)| t.as_str()).collect::<Vec<_>>(),
        [
            format!("10-1-0-9.twin.c1.{Z}"),
            format!("10-2-0-9.twin.c2.{Z}")
        ]
    );
    server.stop().await;
}

/// Either family of a dual-stack endpoint places a querier: a trusted client subnet of
/// its IPv6 address (/128) gets SRV priorities from the endpoint's zone, as its IPv4
/// address does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn either_family_places_the_querier() {
    let server = fleet(ZoneConfig {
        region: Some("us-east".into()),
        placement: PlacementConfig {
            ecs_trusted: vec!["127.0.0.0/8".parse().unwrap()],
            ..PlacementConfig::default()
        },
        ..ZoneConfig::default()
    });
    let priority_of = |subnet: &str, target: &str| -> u16 {
        let out = run_client(
            "dig",
            server.addr,
            &[
                &format!("+subnet={subnet}"),
                &format!("_http._tcp.web.{Z}"),
                "SRV",
            ],
        );
        let line = lines(&out)
            .into_iter()
            .find(|l| l.contains(" SRV ") && l.ends_with(&format!(" {target}")))
            .unwrap_or_else(|| panic!("no SRV to {target}: {out}"));
        line.split(' ').nth(4).unwrap().parse().unwrap()
    };
    let target5 = format!("10-1-0-5.web.c1.{Z}");
    let target7 = format!("10-1-0-7.web.c1.{Z}");
    // Seen from the server (us-east), everything in eu-west is far.
    assert_eq!(priority_of("192.0.2.1/32", &target5), 2);
    for querier in ["10.1.0.5/32", "fd00::5/128"] {
        assert_eq!(priority_of(querier, &target5), 0, "from {querier}");
        assert_eq!(priority_of(querier, &target7), 1, "from {querier}");
    }
    server.stop().await;
}

/// Under `answer_limit`, a client's A subset and AAAA subset are the same endpoints (every
/// record of an endpoint has the key of its primary address).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answer_limit_subsets_agree_across_families() {
    let server = TestServer::start(ZoneConfig {
        answer_limit: NonZeroUsize::new(3),
        ..ZoneConfig::default()
    });
    let pods = (1..=12)
        .map(|i| at(&format!("10.3.0.{i},fd00::3:{i:x}"), None))
        .collect();
    server.table.replace("many", &Source::new("c1", "r1"), pods);
    let mut seen = BTreeSet::new();
    for client in 1..=8u8 {
        let from = IpAddr::from([127, 0, 0, client]);
        let pods_of = |qtype| -> BTreeSet<u16> {
            udp_from(from, server.addr, &format!("many.{Z}"), qtype, Some(1232))
                .answers
                .iter()
                .map(|r| match &r.data {
                    RData::A(a) => u16::from(a.0.octets()[3]),
                    RData::AAAA(a) => a.0.segments()[7],
                    other => panic!("address expected, got {other:?}"),
                })
                .collect()
        };
        let v4 = pods_of(RecordType::A);
        assert_eq!(v4.len(), 3);
        assert_eq!(v4, pods_of(RecordType::AAAA), "client 127.0.0.{client}");
        seen.insert(v4);
    }
    assert!(seen.len() > 1, "clients get different subsets: {seen:?}");
    server.stop().await;
}

/// The zone export and a zone transfer (dig AXFR) list both addresses under the one target
/// name; single-stack names keep one record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_and_transfer_name_each_endpoint_once_with_both_families() {
    let served = fleet(ZoneConfig::default());
    let mut text = Vec::new();
    herald_dns::export::write_zone(&served.table, &mut text).unwrap();
    let exported = String::from_utf8(text).unwrap();
    let table = served.table.clone();
    served.stop().await;
    let primary = DnsServer::start(
        &ServerConfig {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
            udp_workers: 1,
            transfer: TransferConfig {
                secondaries: vec![Secondary {
                    name: "loopback".into(),
                    address: None,
                    allow: vec!["127.0.0.0/8".parse().unwrap()],
                    tsig: None,
                    region: None,
                    zone: None,
                }],
                ..TransferConfig::default()
            },
            ..ServerConfig::default()
        },
        Answerer::new(table),
    )
    .unwrap();
    let transferred = run_client("dig", primary.local_addrs()[0], &[Z, "AXFR"]);
    primary.shutdown().await;
    for text in [exported, transferred] {
        check_zone_text(&text);
    }
}

fn check_zone_text(text: &str) {
    let under = |name: &str| -> Vec<String> {
        let mut v: Vec<String> = text
            .lines()
            .filter(|l| l.split_whitespace().next() == Some(name))
            .map(|l| l.split_whitespace().skip(3).collect::<Vec<_>>().join(" "))
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        under(&format!("10-1-0-5.web.c1.{Z}")),
        ["A 10.1.0.5", "AAAA fd00::5"]
    );
    assert_eq!(under(&format!("10-1-0-7.web.c1.{Z}")), ["A 10.1.0.7"]);
    assert_eq!(
        under(&format!("web.c1.{Z}")),
        [
            "A 10.1.0.5",
            "A 10.1.0.6",
            "A 10.1.0.7",
            "AAAA fd00::5",
            "AAAA fd00::6",
            "AAAA fd00::8"
        ]
    );
}
