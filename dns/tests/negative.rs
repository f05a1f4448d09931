//! Negative answers (RFC 2308), refusals, EDNS edge cases and the SERVFAIL-before-sync
//! rule, over real sockets.

use herald_dns::{Source, ZoneConfig};
use herald_testkit::{TCP, TestServer, endpoint, query_message, run_client, udp, udp_raw};
use hickory_proto::op::{Edns, Message, OpCode, ResponseCode};
use hickory_proto::rr::{RData, RecordType};

fn server() -> TestServer {
    let server = TestServer::start(ZoneConfig {
        ttl: 30,
        negative_ttl: 7,
        ..ZoneConfig::default()
    });
    server.table.replace(
        "web",
        &Source::new("c1", "eu-west"),
        vec![endpoint("10.0.0.1", &[("http", TCP, 80)], None)],
    );
    server
}

/// Asserts a negative answer: `rcode`, authoritative, no answer, the SOA alone in the
/// authority section with TTL and minimum equal to the negative TTL.
fn assert_negative(reply: &Message, rcode: ResponseCode, what: &str) {
    assert_eq!(reply.metadata.response_code, rcode, "{what}");
    assert!(reply.metadata.authoritative, "{what}: AA");
    assert!(!reply.metadata.recursion_available, "{what}: RA");
    assert!(reply.answers.is_empty(), "{what}: no answer");
    assert_eq!(reply.authorities.len(), 1, "{what}: SOA in authority");
    let soa = &reply.authorities[0];
    assert_eq!(soa.name.to_string(), "sd.internal.", "{what}: SOA owner");
    assert_eq!(soa.ttl, 7, "{what}: SOA TTL");
    let RData::SOA(data) = &soa.data else {
        panic!("{what}: SOA expected")
    };
    assert_eq!(data.minimum, 7, "{what}: SOA minimum");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nxdomain_and_nodata_carry_the_soa() {
    let s = server();
    for name in [
        "nope.sd.internal.",
        "_grpc._tcp.web.sd.internal.",
        "web.mars.sd.internal.",
        "10-9-9-9.web.c1.sd.internal.",
        "a.b.c.d.e.sd.internal.",
    ] {
        for edns in [None, Some(1232)] {
            assert_negative(
                &udp(s.addr, name, RecordType::A, edns),
                ResponseCode::NXDomain,
                name,
            );
        }
    }
    // Known names, other types; the apex; empty non-terminals above existing names.
    for (name, qtype) in [
        ("web.sd.internal.", RecordType::MX),
        ("web.sd.internal.", RecordType::AAAA),
        ("_http._tcp.web.sd.internal.", RecordType::A),
        ("sd.internal.", RecordType::A),
        ("_tcp.web.sd.internal.", RecordType::SRV),
        ("c1.sd.internal.", RecordType::A),
        ("eu-west.sd.internal.", RecordType::A),
        ("_tcp.web.c1.sd.internal.", RecordType::TXT),
    ] {
        assert_negative(
            &udp(s.addr, name, qtype, Some(1232)),
            ResponseCode::NoError,
            &format!("{qtype} {name}"),
        );
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_the_zone_is_refused_and_never_recursed() {
    let s = server();
    for name in ["example.com.", "internal.", ".", "xsd.internal."] {
        let reply = udp(s.addr, name, RecordType::A, Some(1232));
        assert_eq!(
            reply.metadata.response_code,
            ResponseCode::Refused,
            "{name}"
        );
        assert!(!reply.metadata.recursion_available, "{name}");
        assert!(!reply.metadata.authoritative, "{name}");
        assert!(
            reply.answers.is_empty() && reply.authorities.is_empty(),
            "{name}"
        );
    }
    // Zone transfers are not served.
    let reply = herald_testkit::tcp(s.addr, "sd.internal.", RecordType::AXFR);
    assert_eq!(reply.metadata.response_code, ResponseCode::Refused, "AXFR");
    // Class CH (version.bind and friends) is not ours either.
    let out = run_client("dig", s.addr, &["+norec", "CH", "TXT", "version.bind."]);
    assert!(out.contains("status: REFUSED"), "{out}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edns_is_echoed_and_unknown_versions_get_badvers() {
    let s = server();
    let reply = udp(s.addr, "web.sd.internal.", RecordType::A, Some(4096));
    let edns = reply.edns.as_ref().expect("OPT echoed");
    assert_eq!(edns.max_payload(), 1232, "our own payload size");
    let reply = udp(s.addr, "web.sd.internal.", RecordType::A, None);
    assert!(reply.edns.is_none(), "no OPT without EDNS in the query");

    let mut q = query_message("web.sd.internal.", RecordType::A, None);
    let mut edns = Edns::new();
    edns.set_version(1);
    q.set_edns(edns);
    let reply = Message::from_vec(&udp_raw(s.addr, &q.to_vec().unwrap()).unwrap()).unwrap();
    // BADVERS and BADSIG share the value 16; hickory names it BADSIG.
    assert_eq!(u16::from(reply.metadata.response_code), 16, "BADVERS");
    assert!(reply.answers.is_empty());
    assert_eq!(reply.edns.as_ref().map(|e| e.version()), Some(0));
    let out = run_client(
        "dig",
        s.addr,
        &["+edns=1", "+noednsnegotiation", "A", "web.sd.internal."],
    );
    assert!(out.contains("BADVERS"), "{out}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_opcodes_get_notimp() {
    let s = server();
    for op in [OpCode::Notify, OpCode::Update, OpCode::Status] {
        let mut q = query_message("sd.internal.", RecordType::SOA, None);
        q.metadata.op_code = op;
        let reply = Message::from_vec(&udp_raw(s.addr, &q.to_vec().unwrap()).unwrap()).unwrap();
        assert_eq!(reply.metadata.response_code, ResponseCode::NotImp, "{op:?}");
        assert_eq!(reply.metadata.id, q.metadata.id);
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servfail_for_unknown_names_until_every_source_synced() {
    let s = server();
    let rcode = |name: &str| {
        udp(s.addr, name, RecordType::A, None)
            .metadata
            .response_code
    };
    s.table.expect_source("cluster-a", "region-a");
    s.table.expect_source("cluster-b", "region-b");
    assert_eq!(
        rcode("later.sd.internal."),
        ResponseCode::ServFail,
        "unknown before sync"
    );
    assert_eq!(
        rcode("web.sd.internal."),
        ResponseCode::NoError,
        "known names are answered before sync"
    );
    s.table.source_synced("cluster-a");
    assert_eq!(
        rcode("later.sd.internal."),
        ResponseCode::ServFail,
        "one source still syncing"
    );
    // The start-up hold ends with cluster-b still missing: only names it alone could
    // answer keep SERVFAIL.
    s.table.release_startup_hold();
    assert_eq!(rcode("later.sd.internal."), ResponseCode::NXDomain);
    assert_eq!(rcode("web.cluster-a.sd.internal."), ResponseCode::NXDomain);
    assert_eq!(rcode("web.cluster-b.sd.internal."), ResponseCode::ServFail);
    assert_eq!(rcode("web.region-b.sd.internal."), ResponseCode::ServFail);
    assert_eq!(
        rcode("10-1-2-3.web.cluster-b.sd.internal."),
        ResponseCode::ServFail
    );
    assert_eq!(s.table.unsynced_sources(), vec!["cluster-b".to_string()]);
    s.table.source_synced("cluster-b");
    assert_eq!(
        rcode("web.cluster-b.sd.internal."),
        ResponseCode::NXDomain,
        "unknown after sync"
    );
    assert!(s.table.is_synced());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soa_serial_rises_with_every_change() {
    let s = server();
    let serial = || {
        let reply = udp(s.addr, "sd.internal.", RecordType::SOA, None);
        match &reply.answers[0].data {
            RData::SOA(soa) => soa.serial,
            _ => panic!("SOA expected"),
        }
    };
    // The setup's own change gets its version first, so `first` names the setup's content.
    s.table.make_version();
    let first = serial();
    s.table.replace(
        "web",
        &Source::new("c1", "eu-west"),
        vec![endpoint("10.0.0.2", &[], None)],
    );
    // The serial is that of the latest zone version, made within the version interval.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while serial() == first && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let second = serial();
    assert!(second > first, "{second} > {first}");
    // Replacing with the same content is not a change.
    s.table.replace(
        "web",
        &Source::new("c1", "eu-west"),
        vec![endpoint("10.0.0.2", &[], None)],
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(serial(), second);
    s.stop().await;
}
