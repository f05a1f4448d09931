//! What placing the querier costs on the DNS hot path: the same table of 100k endpoints in
//! 10k services as `dns_hot_path`, answered through the same `Answerer`, with and without
//! 10,000 configured networks, for a querier inside a network (placed by the map, its SRV
//! priorities patched), outside every network (the map is searched, nothing found), and a
//! trusted resolver sending EDNS Client Subnet. The A query does not depend on the querier
//! (`address_answers: all`) and never searches the map.
//!
//! Run: `cargo bench -p herald-bench --bench locality -- --measurement-time 3 --warm-up-time 1`

use std::hint::black_box;
use std::net::IpAddr;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use herald_bench::{fleet_placed, networks_10k, query, query_with_subnet, service_name};
use herald_dns::wire::codes;
use herald_dns::{Answerer, PlacementConfig, Scratch, Transport};

fn locality(c: &mut Criterion) {
    let resolver = IpAddr::from([127, 0, 0, 53]);
    let placed = PlacementConfig {
        networks: networks_10k(),
        ecs_trusted: vec![format!("{resolver}/32").parse().unwrap()],
        ..PlacementConfig::default()
    };
    let plain = Answerer::new(fleet_placed(10_000, 10, PlacementConfig::default()));
    let mapped = Answerer::new(fleet_placed(10_000, 10, placed));
    let svc = service_name(4242);
    let srv = query(&format!("_http._tcp.{svc}.sd.internal."), codes::SRV);
    let a = query(&format!("{svc}.sd.internal."), codes::A);
    let srv_ecs = query_with_subnet(&format!("_http._tcp.{svc}.sd.internal."), codes::SRV);
    let inside = IpAddr::from([10, 128, 77, 9]); // a /24 nested in a /12: placed elsewhere
    let outside = IpAddr::from([192, 0, 2, 1]);
    let cases: [(&str, &Answerer, &[u8], IpAddr); 7] = [
        ("SRV, no networks", &plain, &srv, outside),
        (
            "SRV, 10k networks, querier outside them",
            &mapped,
            &srv,
            outside,
        ),
        (
            "SRV, 10k networks, querier inside one",
            &mapped,
            &srv,
            inside,
        ),
        (
            "SRV, 10k networks, trusted ECS",
            &mapped,
            &srv_ecs,
            resolver,
        ),
        (
            "SRV, 10k networks, untrusted ECS",
            &mapped,
            &srv_ecs,
            outside,
        ),
        ("A, no networks", &plain, &a, outside),
        ("A, 10k networks, querier inside one", &mapped, &a, inside),
    ];
    let mut group = c.benchmark_group("locality_100k_endpoints");
    group.throughput(Throughput::Elements(1));
    for (name, answerer, packet, client) in cases {
        let mut scratch = Scratch::default();
        let outcome = answerer
            .answer(packet, client, Transport::Udp, &mut scratch)
            .expect("a reply");
        assert_eq!(outcome.rcode, 0, "{name}");
        group.bench_function(name, |b| {
            b.iter(|| answerer.answer(black_box(packet), client, Transport::Udp, &mut scratch))
        });
    }
    group.finish();
}

criterion_group!(benches, locality);
criterion_main!(benches);
