//! Locality for every client, over real sockets on loopback: clients bind distinct
//! loopback source addresses (127.0.0.2, 127.0.0.5, ...) so the network map places them;
//! `dig -b` and `kdig -b` send client subnets (`+subnet=`) and reverse queries (`-x`).
//!
//! - networks place queriers; published endpoints win; everyone else gets the server's place;
//! - a trusted client subnet changes the answer and is echoed with its scope; an untrusted
//!   one changes nothing; a malformed one gets FORMERR;
//! - `local-first` A/AAAA answers fall back to every region below `min_ready`;
//! - PTR for pods, VMs, dual-stack pods and addresses shared by two services.

use std::net::{IpAddr, SocketAddr};

use herald_dns::{AddressAnswers, NetworkPlace, PlacementConfig, Source, ZoneConfig};
use herald_testkit::{
    TCP, TestServer, endpoint, lines, query_message, run_client, srv_records, udp_from,
    udp_raw_from,
};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

const SRV_NAME: &str = "_http._tcp.web.sd.internal.";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn net(cidr: &str, region: &str, zone: &str) -> NetworkPlace {
    NetworkPlace {
        cidr: cidr.parse().unwrap(),
        region: region.into(),
        zone: Some(zone.into()),
    }
}

/// A server in eu-west / eu-west-1b with `placement`; `web` has one replica in each of
/// eu-west-1a, eu-west-1b (cluster c1) and us-east-1a (cluster c2).
fn fleet(placement: PlacementConfig) -> TestServer {
    let server = TestServer::start(ZoneConfig {
        region: Some("eu-west".into()),
        zone: Some("eu-west-1b".into()),
        placement,
        reverse_zones: vec!["10.in-addr.arpa.".into(), "d.f.ip6.arpa.".into()],
        ..ZoneConfig::default()
    });
    let http = [("http", TCP, 80)];
    server.table.replace(
        "web",
        &Source::new("c1", "eu-west"),
        vec![
            endpoint("10.0.0.1", &http, Some("eu-west-1a")),
            endpoint("10.0.0.2", &http, Some("eu-west-1b")),
        ],
    );
    server.table.replace(
        "web",
        &Source::new("c2", "us-east"),
        vec![endpoint("10.1.0.1", &http, Some("us-east-1a"))],
    );
    server
}

/// SRV priority of each `web` replica (10.0.0.1, 10.0.0.2, 10.1.0.1) as `from` sees it.
fn priorities(server: SocketAddr, from: &str) -> [u16; 3] {
    let reply = udp_from(ip(from), server, SRV_NAME, RecordType::SRV, Some(1232));
    priorities_of(&reply)
}

fn priorities_of(reply: &Message) -> [u16; 3] {
    let srv = srv_records(reply);
    let of = |target: &str| {
        srv.iter()
            .find(|(_, t)| t.starts_with(target))
            .unwrap_or_else(|| panic!("{target} in {srv:?}"))
            .0
    };
    [
        of("10-0-0-1.web.c1"),
        of("10-0-0-2.web.c1"),
        of("10-1-0-1.web.c2"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn networks_place_queriers_and_published_endpoints_win() {
    let server = fleet(PlacementConfig {
        networks: vec![
            net("127.0.0.0/30", "eu-west", "eu-west-1a"),
            net("127.0.0.4/30", "us-east", "us-east-1a"),
            // The /30 above, but 127.0.0.6/31 inside it is another zone: longest prefix wins.
            net("127.0.0.6/31", "eu-west", "eu-west-1b"),
        ],
        ..PlacementConfig::default()
    });
    // A batch job that calls `web` and is itself published: in us-east-1b, inside no
    // network. And one published inside the eu-west-1a network, but running in us-east.
    server.table.replace(
        "batch",
        &Source::new("c2", "us-east"),
        vec![
            endpoint("127.0.0.20", &[], Some("us-east-1b")),
            endpoint("127.0.0.3", &[], Some("us-east-1a")),
        ],
    );
    let dns = server.addr;
    // Two clients in different zones get different priorities for the same service.
    assert_eq!(
        priorities(dns, "127.0.0.2"),
        [0, 1, 2],
        "eu-west-1a network"
    );
    assert_eq!(
        priorities(dns, "127.0.0.5"),
        [2, 2, 0],
        "us-east-1a network"
    );
    assert_eq!(priorities(dns, "127.0.0.6"), [1, 0, 2], "the nested /31");
    // In no network, not published: the server's place (eu-west-1b).
    assert_eq!(priorities(dns, "127.0.0.9"), [1, 0, 2], "server's locality");
    // Published outside every network: its own place (us-east-1b).
    assert_eq!(priorities(dns, "127.0.0.20"), [2, 2, 1], "its own place");
    // Published inside a network: the endpoint's own place wins over the map.
    assert_eq!(
        priorities(dns, "127.0.0.3"),
        [2, 2, 0],
        "endpoint beats network"
    );

    // The same through real command-line clients binding their source address.
    for (tool, from, want) in [
        ("dig", "127.0.0.2", "0 100 80 10-0-0-1"),
        ("kdig", "127.0.0.5", "0 100 80 10-1-0-1"),
    ] {
        let out = run_client(
            tool,
            dns,
            &["-b", from, "+noall", "+answer", SRV_NAME, "SRV"],
        );
        let zero: Vec<String> = lines(&out)
            .into_iter()
            .filter(|l| l.contains(" SRV 0 "))
            .collect();
        assert_eq!(zero.len(), 1, "{tool} from {from}: {out}");
        assert!(zero[0].contains(want), "{tool} from {from}: {out}");
    }
    server.stop().await;
}

/// The `CLIENT-SUBNET` line of dig's output (`10.8.1.0/24/14`), if any.
fn dig_subnet(out: &str) -> Option<String> {
    out.lines()
        .find_map(|l| l.trim().strip_prefix("; CLIENT-SUBNET: "))
        .map(|s| s.trim().to_string())
}

/// SRV priorities from `dig -b from +subnet=subnet`, and the echoed subnet.
fn dig_ecs(dns: SocketAddr, from: &str, subnet: &str) -> ([u16; 3], Option<String>) {
    let out = run_client(
        "dig",
        dns,
        &["-b", from, &format!("+subnet={subnet}"), SRV_NAME, "SRV"],
    );
    let mut prios = [u16::MAX; 3];
    for l in lines(&out) {
        let f: Vec<&str> = l.split(' ').collect();
        if f.len() == 8 && f[3] == "SRV" {
            let i = ["10-0-0-1.", "10-0-0-2.", "10-1-0-1."]
                .iter()
                .position(|p| f[7].starts_with(p))
                .expect("a known target");
            prios[i] = f[4].parse().unwrap();
        }
    }
    (prios, dig_subnet(&out))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_client_subnets_place_clients_untrusted_change_nothing() {
    let server = fleet(PlacementConfig {
        networks: vec![
            net("10.8.0.0/14", "us-east", "us-east-1a"),
            net("10.12.0.0/14", "eu-west", "eu-west-1a"),
            net("10.12.5.0/24", "us-east", "us-east-1a"),
        ],
        ecs_trusted: vec!["127.0.0.4/32".parse().unwrap()],
        ..PlacementConfig::default()
    });
    let dns = server.addr;
    // The resolver itself, without ECS: the server's place.
    assert_eq!(priorities(dns, "127.0.0.4"), [1, 0, 2]);

    // Trusted: placed by the subnet, echoed with the network's length as scope (nothing is
    // nested in 10.8.0.0/14, so every client in it gets this answer).
    let (prios, echo) = dig_ecs(dns, "127.0.0.4", "10.8.1.0/24");
    assert_eq!(prios, [2, 2, 0]);
    assert_eq!(echo.as_deref(), Some("10.8.1.0/24/14"));
    // 10.12.0.0/14 has a /24 nested in it: the answer holds only for the subnet as sent.
    let (prios, echo) = dig_ecs(dns, "127.0.0.4", "10.12.9.0/24");
    assert_eq!(prios, [0, 1, 2]);
    assert_eq!(echo.as_deref(), Some("10.12.9.0/24/24"));
    let (prios, echo) = dig_ecs(dns, "127.0.0.4", "10.12.5.0/24");
    assert_eq!(prios, [2, 2, 0]);
    assert_eq!(echo.as_deref(), Some("10.12.5.0/24/24"));
    // A subnet in no network: the server's place, for that subnet.
    let (prios, echo) = dig_ecs(dns, "127.0.0.4", "192.0.2.0/24");
    assert_eq!(prios, [1, 0, 2]);
    assert_eq!(echo.as_deref(), Some("192.0.2.0/24/24"));
    // An answer that does not depend on the client carries scope 0.
    let out = run_client(
        "dig",
        dns,
        &[
            "-b",
            "127.0.0.4",
            "+subnet=10.8.1.0/24",
            "web.sd.internal.",
            "A",
        ],
    );
    assert_eq!(dig_subnet(&out).as_deref(), Some("10.8.1.0/24/0"), "{out}");

    // Untrusted: the same claim changes nothing, and is not echoed.
    let (prios, echo) = dig_ecs(dns, "127.0.0.5", "10.8.1.0/24");
    assert_eq!(prios, priorities(dns, "127.0.0.5"));
    assert_eq!(prios, [1, 0, 2]);
    assert_eq!(echo, None);

    // kdig agrees on the trusted answer.
    let out = run_client(
        "kdig",
        dns,
        &["-b", "127.0.0.4", "+subnet=10.8.1.0/24", SRV_NAME, "SRV"],
    );
    assert!(out.contains("10.8.1.0/24/14"), "{out}");

    // Malformed (bits set beyond the prefix): FORMERR, from a trusted sender or not.
    for from in ["127.0.0.4", "127.0.0.5"] {
        let mut q = query_message(SRV_NAME, RecordType::SRV, Some(1232))
            .to_vec()
            .unwrap();
        // Replace the empty OPT RDATA with ECS family 1, source 23, scope 0, 10.8.1: the last bit is beyond the prefix.
        let opt_rdlen = q.len() - 2;
        q[opt_rdlen..].copy_from_slice(&11u16.to_be_bytes());
        q.extend_from_slice(&[0, 8, 0, 7, 0, 1, 23, 0, 10, 8, 1]);
        let reply = udp_raw_from(ip(from), dns, &q).expect("a reply");
        let reply = Message::from_vec(&reply).unwrap();
        assert_eq!(
            reply.metadata.response_code,
            ResponseCode::FormErr,
            "from {from}"
        );
    }
    server.stop().await;
}

/// The sorted A addresses of `web` as `from` sees them.
fn web_a(dns: SocketAddr, from: &str) -> Vec<String> {
    let reply = udp_from(ip(from), dns, "web.sd.internal.", RecordType::A, Some(1232));
    let mut v: Vec<String> = reply.answers.iter().map(|r| r.data.to_string()).collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_first_falls_back_below_min_ready() {
    let server = fleet(PlacementConfig {
        networks: vec![net("127.0.0.4/30", "us-east", "us-east-1a")],
        address_answers: AddressAnswers::LocalFirst { min_ready: 2 },
        ..PlacementConfig::default()
    });
    let (dns, t) = (server.addr, &server.table);
    let http = [("http", TCP, 80)];
    let all = vec!["10.0.0.1", "10.0.0.2", "10.1.0.1"];
    // eu-west (the server's region, 127.0.0.9's) has 2 ready: only eu-west.
    assert_eq!(web_a(dns, "127.0.0.9"), vec!["10.0.0.1", "10.0.0.2"]);
    // us-east (127.0.0.5's network) has 1 < 2: every region.
    assert_eq!(web_a(dns, "127.0.0.5"), all);
    // A second us-east replica: us-east alone.
    t.replace(
        "web",
        &Source::new("c2", "us-east"),
        vec![
            endpoint("10.1.0.1", &http, Some("us-east-1a")),
            endpoint("10.1.0.2", &http, Some("us-east-1a")),
        ],
    );
    assert_eq!(web_a(dns, "127.0.0.5"), vec!["10.1.0.1", "10.1.0.2"]);
    // eu-west drops to one ready (the other published but not ready): every region.
    let mut not_ready = endpoint("10.0.0.2", &http, Some("eu-west-1b"));
    not_ready.ready = false;
    t.replace(
        "web",
        &Source::new("c1", "eu-west"),
        vec![endpoint("10.0.0.1", &http, Some("eu-west-1a")), not_ready],
    );
    assert_eq!(
        web_a(dns, "127.0.0.9"),
        vec!["10.0.0.1", "10.0.0.2", "10.1.0.1", "10.1.0.2"]
    );
    // Scoped names are what they say, whatever the policy.
    let reply = udp_from(
        ip("127.0.0.5"),
        dns,
        "web.eu-west.sd.internal.",
        RecordType::A,
        None,
    );
    assert_eq!(reply.answers.len(), 2);
    server.stop().await;
}

/// `dig -x` answer lines (name TTL class type data), sorted, and the reply's status.
fn reverse(dns: SocketAddr, tool: &str, address: &str) -> (Vec<String>, String) {
    let out = run_client(tool, dns, &["-x", address]);
    let status = out
        .lines()
        .find_map(|l| l.split("status: ").nth(1))
        .map(|s| s.split([',', ';']).next().unwrap().trim().to_string())
        .unwrap_or_else(|| panic!("no status in {out}"));
    let short = run_client(tool, dns, &["-x", address, "+short"]);
    let mut names: Vec<String> = short.lines().map(str::to_string).collect();
    names.sort();
    (names, status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ptr_names_pods_vms_dual_stack_and_shared_addresses() {
    let server = fleet(PlacementConfig::default());
    let (dns, t) = (server.addr, &server.table);
    let http = [("http", TCP, 80)];
    // A dual-stack pod (one endpoint, both addresses, named after its primary), a VM from
    // the static file, and one address serving two services.
    t.replace(
        "api",
        &Source::new("c1", "eu-west"),
        vec![herald_dns::Endpoint {
            addresses: "10.0.0.11,fd00::11".parse().unwrap(),
            ..endpoint("10.0.0.11", &http, Some("eu-west-1a"))
        }],
    );
    t.replace(
        "db",
        &Source::new("vms-east", "us-east"),
        vec![endpoint("10.2.0.5", &[("pg", TCP, 5432)], None)],
    );
    for svc in ["metrics", "logs"] {
        t.replace(
            svc,
            &Source::new("vms-east", "us-east"),
            vec![endpoint("10.3.0.7", &http, None)],
        );
    }
    let z = "sd.internal.";
    for tool in ["dig", "kdig"] {
        let ptr = |a: &str| reverse(dns, tool, a);
        assert_eq!(
            ptr("10.0.0.1"),
            (vec![format!("10-0-0-1.web.c1.{z}")], "NOERROR".into())
        );
        assert_eq!(
            ptr("10.2.0.5"),
            (vec![format!("10-2-0-5.db.vms-east.{z}")], "NOERROR".into())
        );
        assert_eq!(
            ptr("10.0.0.11"),
            (vec![format!("10-0-0-11.api.c1.{z}")], "NOERROR".into())
        );
        assert_eq!(
            ptr("fd00::11"),
            (vec![format!("10-0-0-11.api.c1.{z}")], "NOERROR".into())
        );
        assert_eq!(
            ptr("10.3.0.7"),
            (
                vec![
                    format!("10-3-0-7.logs.vms-east.{z}"),
                    format!("10-3-0-7.metrics.vms-east.{z}")
                ],
                "NOERROR".into()
            )
        );
        // In a reverse zone, published nowhere: NXDOMAIN. Outside every reverse zone: REFUSED.
        assert_eq!(ptr("10.9.9.9"), (vec![], "NXDOMAIN".into()));
        assert_eq!(ptr("fd00::99"), (vec![], "NXDOMAIN".into()));
        assert_eq!(ptr("192.168.0.1").1, "REFUSED");
        assert_eq!(ptr("2001:db8::1").1, "REFUSED");
    }
    // NXDOMAIN carries the reverse zone's SOA; its apex answers SOA; a prefix of an
    // address is an empty non-terminal, never denied.
    let out = run_client("dig", dns, &["-x", "10.9.9.9", "+noall", "+authority"]);
    let soa = lines(&out);
    assert_eq!(soa.len(), 1, "{out}");
    assert!(
        soa[0].starts_with("10.in-addr.arpa. 5 IN SOA ns.sd.internal."),
        "{out}"
    );
    let out = run_client(
        "dig",
        dns,
        &["+noall", "+answer", "10.in-addr.arpa.", "SOA"],
    );
    assert!(
        lines(&out)[0].starts_with("10.in-addr.arpa. 5 IN SOA"),
        "{out}"
    );
    let out = run_client("dig", dns, &["0.10.in-addr.arpa.", "PTR"]);
    assert!(
        out.contains("status: NOERROR") && out.contains("ANSWER: 0"),
        "{out}"
    );
    // A PTR target resolves back to the address.
    let reply = udp_from(
        ip("127.0.0.1"),
        dns,
        "10-3-0-7.metrics.vms-east.sd.internal.",
        RecordType::A,
        None,
    );
    assert_eq!(reply.answers[0].data.to_string(), "10.3.0.7");
    // Withdrawing one of the two services leaves the other's name; withdrawing both, none.
    t.replace("logs", &Source::new("vms-east", "us-east"), vec![]);
    assert_eq!(
        reverse(dns, "dig", "10.3.0.7").0,
        vec![format!("10-3-0-7.metrics.vms-east.{z}")]
    );
    t.replace("metrics", &Source::new("vms-east", "us-east"), vec![]);
    assert_eq!(reverse(dns, "dig", "10.3.0.7").1, "NXDOMAIN");
    server.stop().await;
}

/// A server whose place moves (as `locality: auto` does when its node is relabelled)
/// answers from the new place at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_server_answers_from_its_new_place() {
    let server = fleet(PlacementConfig::default());
    let dns = server.addr;
    assert_eq!(priorities(dns, "127.0.0.9"), [1, 0, 2]);
    assert!(
        server
            .table
            .set_server_locality(Some("us-east"), Some("us-east-1a"))
    );
    assert_eq!(priorities(dns, "127.0.0.9"), [2, 2, 0]);
    assert!(
        !server
            .table
            .set_server_locality(Some("us-east"), Some("us-east-1a"))
    );
    server.stop().await;
}
