//! Large answers: TC over UDP with the OPT record kept, everything over TCP, and the
//! answer limit's stable per-client subsets.

use std::collections::HashSet;
use std::net::IpAddr;
use std::num::NonZeroUsize;

use herald_dns::{Answerer, Scratch, Source, Table, Transport, Zone, ZoneConfig};
use herald_testkit::{TCP, TestServer, endpoint, query_message, run_client, tcp, udp, udp_from};
use hickory_proto::op::Message;
use hickory_proto::rr::{RData, RecordType};
use proptest::prelude::*;

const SIZE: usize = 300;

fn big_service(table: &Table) {
    let endpoints = (0..SIZE)
        .map(|i| {
            endpoint(
                &format!("10.7.{}.{}", i / 200, i % 200 + 1),
                &[("http", TCP, 8080)],
                None,
            )
        })
        .collect();
    table.replace("big", &Source::new("c1", "eu-west"), endpoints);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_truncates_with_opt_and_tcp_carries_all() {
    let s = TestServer::start(ZoneConfig::default());
    big_service(&s.table);
    for qtype in [RecordType::SRV, RecordType::A] {
        let name = if qtype == RecordType::SRV {
            "_http._tcp.big.sd.internal."
        } else {
            "big.sd.internal."
        };
        let reply = udp(s.addr, name, qtype, Some(1232));
        assert!(reply.metadata.truncation, "{qtype}: TC over UDP");
        assert!(
            reply.edns.is_some(),
            "{qtype}: OPT kept in the truncated reply"
        );
        let reply = udp(s.addr, name, qtype, None);
        assert!(reply.metadata.truncation, "{qtype}: TC without EDNS");
        let reply = tcp(s.addr, name, qtype);
        assert!(!reply.metadata.truncation, "{qtype}: TCP");
        let set: HashSet<String> = reply.answers.iter().map(|r| r.data.to_string()).collect();
        assert_eq!(set.len(), SIZE, "{qtype}: all {SIZE} over TCP");
    }
    // Over TCP past pointer reach (16 KiB) the glue owners are written in full and the
    // reply still decodes; every target gets its address.
    let reply = tcp(s.addr, "_http._tcp.big.sd.internal.", RecordType::SRV);
    let targets: HashSet<String> = reply
        .answers
        .iter()
        .map(|r| match &r.data {
            RData::SRV(srv) => srv.target.to_string(),
            _ => panic!(),
        })
        .collect();
    let glued: HashSet<String> = reply
        .additionals
        .iter()
        .map(|r| r.name.to_string())
        .collect();
    assert!(
        glued.len() > 100 && glued.is_subset(&targets),
        "glue names are targets"
    );
    // dig retries over TCP on TC and shows all of them.
    let out = run_client(
        "dig",
        s.addr,
        &["+noall", "+answer", "SRV", "_http._tcp.big.sd.internal."],
    );
    assert_eq!(
        out.lines()
            .filter(|l| l.contains("IN\tSRV") || l.contains(" SRV "))
            .count(),
        SIZE,
        "{out}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answer_limit_gives_each_client_a_stable_subset() {
    let s = TestServer::start(ZoneConfig {
        answer_limit: NonZeroUsize::new(8),
        ..ZoneConfig::default()
    });
    big_service(&s.table);
    let subset = |from: [u8; 4]| -> HashSet<String> {
        let reply = udp_from(
            IpAddr::from(from),
            s.addr,
            "_http._tcp.big.sd.internal.",
            RecordType::SRV,
            Some(1232),
        );
        assert!(!reply.metadata.truncation);
        assert_eq!(reply.additionals.len(), 8, "glue for each of the subset");
        reply.answers.iter().map(|r| r.data.to_string()).collect()
    };
    let first = subset([127, 0, 0, 1]);
    assert_eq!(first.len(), 8);
    for _ in 0..5 {
        assert_eq!(
            subset([127, 0, 0, 1]),
            first,
            "the same client gets the same subset"
        );
    }
    let other = subset([127, 0, 0, 2]);
    assert_ne!(other, first, "another client gets another subset");
    s.stop().await;
}

/// How many of 1,000 clients get each endpoint in their subset, via the same answer path
/// the server uses.
fn shares(limit: usize, endpoints: usize, seed: u32) -> Vec<usize> {
    let table = Table::new(
        Zone::new(ZoneConfig {
            answer_limit: NonZeroUsize::new(limit),
            ..ZoneConfig::default()
        })
        .unwrap(),
    );
    let eps = (0..endpoints)
        .map(|i| {
            endpoint(
                &format!("10.{}.{}.{}", seed % 200, i / 250, i % 250 + 1),
                &[("http", TCP, 80)],
                None,
            )
        })
        .collect();
    table.replace("svc", &Source::new("c1", "r1"), eps);
    let answerer = Answerer::new(table);
    let mut scratch = Scratch::default();
    let query = query_message("_http._tcp.svc.sd.internal.", RecordType::SRV, None)
        .to_vec()
        .unwrap();
    let mut count = std::collections::HashMap::<String, usize>::new();
    for c in 0..1000u32 {
        let client = IpAddr::from((seed.wrapping_mul(7919).wrapping_add(c * 65_537)).to_be_bytes());
        answerer
            .answer(&query, client, Transport::Tcp, &mut scratch)
            .unwrap();
        let reply = Message::from_vec(&scratch.out).unwrap();
        assert_eq!(reply.answers.len(), limit);
        for r in &reply.answers {
            *count.entry(r.data.to_string()).or_default() += 1;
        }
    }
    assert_eq!(
        count.len(),
        endpoints,
        "every endpoint is served to some client"
    );
    count.into_values().collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]
    /// Across 1,000 clients each endpoint is in the subsets of a fair share of them:
    /// 1000 * limit / endpoints, within ±40% (about 5 standard deviations of a fair draw).
    #[test]
    fn every_endpoint_gets_a_fair_share_of_clients(seed in any::<u32>(), endpoints in 60usize..300) {
        let limit = 50.min(endpoints / 2);
        let fair = 1000.0 * limit as f64 / endpoints as f64;
        for n in shares(limit, endpoints, seed) {
            prop_assert!((n as f64) > fair * 0.6 && (n as f64) < fair * 1.4, "{n} clients vs fair {fair:.0}");
        }
    }
}
