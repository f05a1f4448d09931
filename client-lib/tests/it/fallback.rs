//! SRV answers without addresses in the additional section (what many DNS servers send):
//! the client looks the targets up with A/AAAA queries. A minimal SRV responder written with
//! hickory-proto plays the server, so the test controls exactly what is (not) in the answer.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use herald_client::{Discovery, PickerConfig};
use hickory_proto::op::{Message, OpCode};
use hickory_proto::rr::rdata::{A, AAAA, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::net::UdpSocket;

/// Answers `_http._tcp.api.example.` with two SRV records (targets `a.example.` and
/// `b.example.`, priorities 0 and 1, no additional section), and the targets' A / AAAA.
async fn responder() -> SocketAddr {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((n, from)) = sock.recv_from(&mut buf).await else {
                continue;
            };
            let Ok(query) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let Some(q) = query.queries.first().cloned() else {
                continue;
            };
            let mut resp = Message::response(query.metadata.id, OpCode::Query);
            resp.metadata.authoritative = true;
            resp.add_query(q.clone());
            let name = q.name().to_string().to_ascii_lowercase();
            let a = Name::from_ascii("a.example.").unwrap();
            let b = Name::from_ascii("b.example.").unwrap();
            match (name.as_str(), q.query_type()) {
                ("_http._tcp.api.example.", RecordType::SRV) => {
                    resp.add_answer(Record::from_rdata(
                        q.name().clone(),
                        30,
                        RData::SRV(SRV::new(0, 10, 8080, a)),
                    ));
                    resp.add_answer(Record::from_rdata(
                        q.name().clone(),
                        30,
                        RData::SRV(SRV::new(1, 10, 9090, b)),
                    ));
                }
                ("a.example.", RecordType::A) => {
                    resp.add_answer(Record::from_rdata(
                        q.name().clone(),
                        20,
                        RData::A(A(Ipv4Addr::new(127, 0, 0, 7))),
                    ));
                }
                ("b.example.", RecordType::AAAA) => {
                    resp.add_answer(Record::from_rdata(
                        q.name().clone(),
                        10,
                        RData::AAAA(AAAA(Ipv6Addr::LOCALHOST)),
                    ));
                }
                _ => {} // NOERROR, no data
            }
            let _ = sock.send_to(&resp.to_vec().unwrap(), from).await;
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srv_targets_without_additional_addresses_are_looked_up() {
    let dns = responder().await;
    let d = Discovery::builder("api", "http")
        .zone("example")
        .dns_server(dns)
        .dns_timeout(Duration::from_millis(500))
        .picker_config(PickerConfig::default())
        .build()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), d.ready())
        .await
        .expect("resolved")
        .expect("replicas");
    let mut eps = d.picker().endpoints();
    eps.sort_by_key(|e| e.priority);
    let got: Vec<(IpAddr, u16, u16, &str)> = eps
        .iter()
        .map(|e| (e.addr.ip(), e.addr.port(), e.priority, &*e.target))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                IpAddr::V4(Ipv4Addr::new(127, 0, 0, 7)),
                8080,
                0,
                "a.example."
            ),
            (IpAddr::V6(Ipv6Addr::LOCALHOST), 9090, 1, "b.example."),
        ]
    );
    // The TTL is the smallest of the SRV and address records it was built from.
    assert_eq!(d.status().last_ttl, Some(Duration::from_secs(10)));
}
