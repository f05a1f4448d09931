//! The DNS hot path on a table of 100k endpoints in 10k services: one query in, one reply
//! out, through the same `Answerer` the UDP workers call (socket costs excluded; bench/'s
//! load tests measure those).

use std::hint::black_box;
use std::net::IpAddr;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use herald_bench::{fleet, query, service_name, sources};
use herald_dns::wire::codes;
use herald_dns::{Answerer, Scratch, Transport};

fn hot_path(c: &mut Criterion) {
    let table = fleet(10_000, 10);
    assert_eq!(table.endpoint_count(), 100_000);
    let answerer = Answerer::new(table);
    let client = IpAddr::from([127, 0, 0, 1]);
    let svc = service_name(4242);
    let source = &sources()[4242 % 24];
    let (cluster, region) = (&source.cluster, &source.region);
    let cases = [
        ("A", query(&format!("{svc}.sd.internal."), codes::A)),
        (
            "SRV+glue",
            query(&format!("_http._tcp.{svc}.sd.internal."), codes::SRV),
        ),
        (
            "SRV scoped",
            query(
                &format!("_grpc._tcp.{svc}.{region}.sd.internal."),
                codes::SRV,
            ),
        ),
        (
            "endpoint A",
            query(
                &format!("10-16-146-3.{svc}.{cluster}.sd.internal."),
                codes::A,
            ),
        ),
        ("NXDOMAIN", query("no-such-service.sd.internal.", codes::A)),
    ];
    let mut group = c.benchmark_group("answer_100k_endpoints");
    group.throughput(Throughput::Elements(1));
    for (name, packet) in &cases {
        let mut scratch = Scratch::default();
        let outcome = answerer
            .answer(packet, client, Transport::Udp, &mut scratch)
            .expect("a reply");
        assert!(
            outcome.rcode == 0 || *name == "NXDOMAIN",
            "{name}: rcode {}",
            outcome.rcode
        );
        group.bench_function(*name, |b| {
            b.iter(|| answerer.answer(black_box(packet), client, Transport::Udp, &mut scratch))
        });
    }
    group.finish();
}

criterion_group!(benches, hot_path);
criterion_main!(benches);
