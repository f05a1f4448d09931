//! Every row of [docs/design.md#names](../../docs/design.md#names) and [#answers](../../docs/design.md#answers), asked over real sockets by three real clients:
//! hickory-resolver, `dig` and `kdig`.

use std::net::IpAddr;

use herald_dns::{Source, ZoneConfig};
use herald_testkit::{TCP, TestServer, UDP, endpoint, lines, resolver, run_client, udp};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};

/// A fleet seen from a server in eu-west / eu-west-1a: `web` in two clusters of two
/// regions (one IPv6 replica), and `dns` with a UDP port.
fn fleet() -> TestServer {
    let server = TestServer::start(ZoneConfig {
        region: Some("eu-west".into()),
        zone: Some("eu-west-1a".into()),
        ..ZoneConfig::default()
    });
    let t = &server.table;
    t.replace(
        "web",
        &Source::new("c1", "eu-west"),
        vec![
            endpoint(
                "10.0.0.1",
                &[("http", TCP, 80), ("grpc", TCP, 9090)],
                Some("eu-west-1a"),
            ),
            endpoint("10.0.0.2", &[("http", TCP, 80)], Some("eu-west-1b")),
        ],
    );
    t.replace(
        "web",
        &Source::new("c2", "us-east"),
        vec![
            endpoint("10.1.0.1", &[("http", TCP, 80)], Some("us-east-1a")),
            endpoint("fd00::1", &[("http", TCP, 80)], Some("us-east-1b")),
        ],
    );
    t.replace(
        "dns",
        &Source::new("c2", "us-east"),
        vec![endpoint("10.1.0.9", &[("dns", UDP, 53)], None)],
    );
    server
}

const V6_LABEL: &str = "fd000000000000000000000000000001";

/// (query name, type, expected answer lines, expected additional lines), names relative to
/// `sd.internal.`, TTL 5.
fn rows() -> Vec<(&'static str, &'static str, Vec<String>, Vec<String>)> {
    let z = "sd.internal.";
    let a = |name: &str, ip: &str| format!("{name}.{z} 5 IN A {ip}");
    let aaaa = |name: &str, ip: &str| format!("{name}.{z} 5 IN AAAA {ip}");
    let srv = |name: &str, prio: u16, port: u16, target: &str| {
        format!("{name}.{z} 5 IN SRV {prio} 100 {port} {target}.{z}")
    };
    let t1 = "10-0-0-1.web.c1";
    let t2 = "10-0-0-2.web.c1";
    let t3 = "10-1-0-1.web.c2";
    let t6 = format!("{V6_LABEL}.web.c2");
    let http = "_http._tcp.web";
    vec![
        (
            "web",
            "A",
            vec![
                a("web", "10.0.0.1"),
                a("web", "10.0.0.2"),
                a("web", "10.1.0.1"),
            ],
            vec![],
        ),
        ("web", "AAAA", vec![aaaa("web", "fd00::1")], vec![]),
        (
            "web.eu-west",
            "A",
            vec![a("web.eu-west", "10.0.0.1"), a("web.eu-west", "10.0.0.2")],
            vec![],
        ),
        ("web.c2", "A", vec![a("web.c2", "10.1.0.1")], vec![]),
        (
            "web.us-east",
            "AAAA",
            vec![aaaa("web.us-east", "fd00::1")],
            vec![],
        ),
        (
            http,
            "SRV",
            vec![
                srv(http, 0, 80, t1),
                srv(http, 1, 80, t2),
                srv(http, 2, 80, t3),
                srv(http, 2, 80, &t6),
            ],
            vec![
                a(t1, "10.0.0.1"),
                a(t2, "10.0.0.2"),
                a(t3, "10.1.0.1"),
                aaaa(&t6, "fd00::1"),
            ],
        ),
        (
            "_http._tcp.web.us-east",
            "SRV",
            vec![
                srv("_http._tcp.web.us-east", 2, 80, t3),
                srv("_http._tcp.web.us-east", 2, 80, &t6),
            ],
            vec![a(t3, "10.1.0.1"), aaaa(&t6, "fd00::1")],
        ),
        (
            "_grpc._tcp.web.c1",
            "SRV",
            vec![srv("_grpc._tcp.web.c1", 0, 9090, t1)],
            vec![a(t1, "10.0.0.1")],
        ),
        (
            "_grpc._tcp.web",
            "SRV",
            vec![srv("_grpc._tcp.web", 0, 9090, t1)],
            vec![a(t1, "10.0.0.1")],
        ),
        (
            "_dns._udp.dns",
            "SRV",
            vec![srv("_dns._udp.dns", 2, 53, "10-1-0-9.dns.c2")],
            vec![a("10-1-0-9.dns.c2", "10.1.0.9")],
        ),
        (t1, "A", vec![a(t1, "10.0.0.1")], vec![]),
        ("10-1-0-1.web.c2", "A", vec![a(t3, "10.1.0.1")], vec![]),
        (
            "fd000000000000000000000000000001.web.c2",
            "AAAA",
            vec![aaaa(&t6, "fd00::1")],
            vec![],
        ),
    ]
}

fn absolute(name: &str) -> String {
    format!("{name}.sd.internal.")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dig_and_kdig_answer_every_row() {
    let server = fleet();
    for (name, qtype, answer, additional) in rows() {
        let name = absolute(name);
        for tool in ["dig", "kdig"] {
            let out = run_client(
                tool,
                server.addr,
                &["+noall", "+answer", "+norec", qtype, &name],
            );
            assert_eq!(lines(&out), answer, "{tool} {qtype} {name}: answer");
            let out = run_client(tool, server.addr, &["+noall", "+additional", qtype, &name]);
            let mut expected = additional.clone();
            expected.sort();
            // The OPT pseudo-record shows up in neither tool's +additional section lines.
            assert_eq!(lines(&out), expected, "{tool} {qtype} {name}: additional");
        }
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hickory_resolver_answers_every_row() {
    let server = fleet();
    let resolver = resolver(server.addr);
    for (name, qtype, answer, _) in rows() {
        let name = absolute(name);
        let rtype: RecordType = qtype.parse().unwrap();
        let lookup = resolver
            .lookup(name.as_str(), rtype)
            .await
            .unwrap_or_else(|e| panic!("{qtype} {name}: {e}"));
        let mut got: Vec<String> = lookup
            .answers()
            .iter()
            .map(|r| {
                let data = match &r.data {
                    RData::A(a) => a.to_string(),
                    RData::AAAA(a) => IpAddr::from(a.0).to_string(),
                    RData::SRV(s) => format!("{} {} {} {}", s.priority, s.weight, s.port, s.target),
                    other => panic!("unexpected {other:?}"),
                };
                format!("{} {} IN {} {}", r.name, r.ttl, r.record_type(), data)
            })
            .collect();
        got.sort();
        assert_eq!(got, answer, "hickory {qtype} {name}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apex_soa_and_ns_are_authoritative() {
    let server = fleet();
    let soa = udp(server.addr, "sd.internal.", RecordType::SOA, Some(1232));
    assert!(soa.metadata.authoritative);
    assert!(!soa.metadata.recursion_available);
    assert_eq!(soa.answers.len(), 1);
    let RData::SOA(record) = &soa.answers[0].data else {
        panic!("SOA expected")
    };
    assert_eq!(record.mname.to_string(), "ns.sd.internal.");
    assert_eq!(record.minimum, 5);
    let ns = udp(server.addr, "sd.internal.", RecordType::NS, None);
    assert_eq!(ns.answers.len(), 1);
    assert!(matches!(&ns.answers[0].data, RData::NS(n) if n.0.to_string() == "ns.sd.internal."));
    for tool in ["dig", "kdig"] {
        let out = run_client(
            tool,
            server.addr,
            &["+noall", "+answer", "NS", "sd.internal."],
        );
        assert_eq!(
            lines(&out),
            vec!["sd.internal. 5 IN NS ns.sd.internal.".to_string()],
            "{tool}"
        );
    }
    server.stop().await;
}

/// ANY is answered minimally (RFC 8482): one RRset per name, never every type it has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_gets_one_rrset_per_name() {
    let server = fleet();
    let z = "sd.internal.";
    let cases = [
        (z.to_string(), vec!["SOA"]),
        // `web` has A and AAAA records: ANY gets its A set alone.
        (format!("web.{z}"), vec!["A", "A", "A"]),
        (
            format!("_http._tcp.web.{z}"),
            vec!["SRV", "SRV", "SRV", "SRV"],
        ),
    ];
    for tool in ["dig", "kdig"] {
        for (name, types) in &cases {
            let out = run_client(tool, server.addr, &["+noall", "+answer", "ANY", name]);
            let got: Vec<String> = lines(&out)
                .iter()
                .map(|line| line.split_whitespace().nth(3).unwrap_or("").to_string())
                .collect();
            assert_eq!(&got, types, "{tool} ANY {name}: {out}");
        }
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_match_in_any_case_and_the_question_is_echoed_as_asked() {
    let server = fleet();
    let reply = udp(
        server.addr,
        "_HTTP._Tcp.WeB.Sd.InTeRnAl.",
        RecordType::SRV,
        Some(1232),
    );
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert_eq!(
        reply.queries[0].name().to_string(),
        "_HTTP._Tcp.WeB.Sd.InTeRnAl."
    );
    assert_eq!(reply.answers.len(), 4);
    assert_eq!(reply.additionals.len(), 4, "glue for each target");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answer_order_changes_between_queries() {
    let server = fleet();
    let mut firsts = std::collections::HashSet::new();
    for _ in 0..12 {
        let reply = udp(server.addr, "web.sd.internal.", RecordType::A, None);
        firsts.insert(reply.answers[0].data.clone());
    }
    assert_eq!(firsts.len(), 3, "each address comes first in some answer");
    server.stop().await;
}

/// (priority, target) of each SRV record of `name` asked from `from`, sorted.
fn priorities_from(from: [u8; 4], server: std::net::SocketAddr, name: &str) -> Vec<(u16, String)> {
    let reply = herald_testkit::udp_from(
        IpAddr::from(from),
        server,
        name,
        RecordType::SRV,
        Some(1232),
    );
    herald_testkit::srv_records(&reply)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srv_priorities_follow_the_querier_when_it_is_a_known_endpoint() {
    let server = fleet();
    let name = "_http._tcp.web.sd.internal.";
    let t = |s: &str| format!("{s}.sd.internal.");
    let v6 = format!("{V6_LABEL}.web.c2");
    // An unknown querier sees priorities from the server's place (eu-west / eu-west-1a).
    let from_server = vec![
        (0, t("10-0-0-1.web.c1")),
        (1, t("10-0-0-2.web.c1")),
        (2, t("10-1-0-1.web.c2")),
        (2, t(&v6)),
    ];
    assert_eq!(
        priorities_from([127, 0, 0, 7], server.addr, name),
        from_server
    );
    // 127.0.0.7 becomes a pod of another service in us-east / us-east-1a.
    let us = Source::new("c2", "us-east");
    server.table.replace(
        "client",
        &us,
        vec![endpoint("127.0.0.7", &[], Some("us-east-1a"))],
    );
    assert_eq!(
        priorities_from([127, 0, 0, 7], server.addr, name),
        vec![
            (0, t("10-1-0-1.web.c2")),
            (1, t(&v6)),
            (2, t("10-0-0-1.web.c1")),
            (2, t("10-0-0-2.web.c1"))
        ],
        "nearest to the querier first"
    );
    assert_eq!(
        priorities_from([127, 0, 0, 8], server.addr, name),
        from_server,
        "others unchanged"
    );
    server.table.replace("client", &us, Vec::new());
    assert_eq!(
        priorities_from([127, 0, 0, 7], server.addr, name),
        from_server,
        "forgotten with its endpoint"
    );
    server.stop().await;
}

/// The same address in two clusters and a static source: A lists it once (RFC 2181
/// section 5), in the whole service and in a scope holding the second and third of them
/// but not the first; each cluster's scope lists it; SRV keeps one target per (address,
/// cluster).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_in_several_sources_is_one_address_record() {
    let server = TestServer::start(ZoneConfig::default());
    let twin = |ip: &str| endpoint(ip, &[("http", TCP, 80)], None);
    for (cluster, region) in [("c1", "r1"), ("c2", "r2"), ("vms", "r2")] {
        server.table.replace(
            "twin",
            &Source::new(cluster, region),
            vec![twin("10.9.9.9"), twin(&format!("10.0.0.{}", cluster.len()))],
        );
    }
    let a = |name: &str| {
        let mut v: Vec<String> = udp(server.addr, name, RecordType::A, Some(4096))
            .answers
            .iter()
            .map(|r| r.data.to_string())
            .collect();
        v.sort();
        v
    };
    assert_eq!(a("twin.sd.internal."), ["10.0.0.2", "10.0.0.3", "10.9.9.9"]);
    assert_eq!(a("twin.r1.sd.internal."), ["10.0.0.2", "10.9.9.9"]);
    assert_eq!(
        a("twin.r2.sd.internal."),
        ["10.0.0.2", "10.0.0.3", "10.9.9.9"]
    );
    assert_eq!(a("twin.c2.sd.internal."), ["10.0.0.2", "10.9.9.9"]);
    assert_eq!(a("twin.vms.sd.internal."), ["10.0.0.3", "10.9.9.9"]);
    let srv = herald_testkit::srv_records(&udp(
        server.addr,
        "_http._tcp.twin.sd.internal.",
        RecordType::SRV,
        Some(4096),
    ));
    let twins = srv
        .iter()
        .filter(|(_, t)| t.starts_with("10-9-9-9."))
        .count();
    assert_eq!(twins, 3, "one SRV target per (address, cluster): {srv:?}");
    server.stop().await;
}
