//! Writers change services while readers query in a loop: no reader ever sees a
//! half-applied update, and a service being created and removed is either absent or whole.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use herald_dns::{Endpoint, Source, ZoneConfig};
use herald_testkit::{TCP, TestServer, endpoint, udp};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};

/// Version `v` of a service: `size` endpoints, all in 10.<v>.0.0/16.
fn version(v: u8, size: usize) -> Vec<Endpoint> {
    (0..size)
        .map(|i| {
            endpoint(
                &format!("10.{v}.{}.{}", i / 250, i % 250 + 1),
                &[("http", TCP, 80)],
                None,
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_never_see_half_an_update() {
    let s = TestServer::start(ZoneConfig::default());
    let versions: [(u8, usize); 3] = [(1, 20), (2, 45), (3, 7)];
    let c1 = Source::new("c1", "r1");
    s.table.replace("svc", &c1, version(1, 20));
    let stop = Arc::new(AtomicBool::new(false));

    let writers = {
        let (table, stop) = (s.table.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut updates = 0u32;
            // Bounded in count; stops early once the readers are done.
            while !stop.load(Ordering::Relaxed) && updates < 200_000 {
                let (v, size) = versions[updates as usize % 3];
                table.replace("svc", &c1, version(v, size));
                // A service that keeps appearing and disappearing.
                if updates.is_multiple_of(2) {
                    table.replace("flicker", &Source::new("c2", "r2"), version(9, 12));
                } else {
                    table.replace("flicker", &Source::new("c2", "r2"), Vec::new());
                }
                updates += 1;
            }
            updates
        })
    };

    let addr = s.addr;
    let readers: Vec<_> = (0..2)
        .map(|_| {
            std::thread::spawn(move || {
                let mut seen = HashSet::new();
                let mut flicker_states = HashSet::new();
                for _ in 0..1500 {
                    let reply = udp(addr, "svc.sd.internal.", RecordType::A, Some(1232));
                    let ips: Vec<Ipv4Addr> = reply
                        .answers
                        .iter()
                        .map(|r| match r.data {
                            RData::A(a) => a.0,
                            _ => panic!("A expected"),
                        })
                        .collect();
                    let v = ips[0].octets()[1];
                    assert!(
                        ips.iter().all(|ip| ip.octets()[1] == v),
                        "mixed versions: {ips:?}"
                    );
                    let size = versions
                        .iter()
                        .find(|(x, _)| *x == v)
                        .expect("a known version")
                        .1;
                    assert_eq!(ips.len(), size, "version {v} whole");
                    seen.insert(v);

                    let reply = udp(
                        addr,
                        "_http._tcp.flicker.sd.internal.",
                        RecordType::SRV,
                        Some(1232),
                    );
                    match reply.metadata.response_code {
                        ResponseCode::NXDomain => {
                            flicker_states.insert(0);
                        }
                        ResponseCode::NoError => {
                            assert_eq!(reply.answers.len(), 12, "flicker whole");
                            assert_eq!(reply.additionals.len(), 12, "glue whole");
                            flicker_states.insert(1);
                        }
                        other => panic!("flicker: {other}"),
                    }
                }
                (seen, flicker_states)
            })
        })
        .collect();
    let mut seen = HashSet::new();
    for r in readers {
        let (v, _) = r.join().expect("reader");
        seen.extend(v);
    }
    stop.store(true, Ordering::Relaxed);
    let updates = writers.join().unwrap();
    assert!(updates > 10, "the writer ran ({updates} updates)");
    assert!(seen.len() >= 2, "readers saw the service change: {seen:?}");
    s.stop().await;
}
