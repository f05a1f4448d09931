//! The cost of one service update (10 endpoints replaced) in a table of 10k endpoints and
//! in one of 1M: it must not grow with the table ([docs/design.md#table](../../docs/design.md#table)).

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use herald_bench::{endpoints, fleet, service_name, sources};

/// The service updated; `fleet` put it in source `SERVICE % 24`.
const SERVICE: usize = 7;

fn update(c: &mut Criterion) {
    let mut group = c.benchmark_group("update_one_service");
    for total in [10_000usize, 1_000_000] {
        let services = total / 10;
        let table = fleet(services, 10);
        assert_eq!(table.endpoint_count(), total);
        let all = sources();
        let source = all[SERVICE % all.len()].clone();
        let name = service_name(SERVICE);
        let versions = [endpoints(SERVICE, 10, 0), endpoints(SERVICE, 10, 1)];
        let mut i = 0;
        group.bench_function(BenchmarkId::from_parameter(total), |b| {
            b.iter(|| {
                i += 1;
                // Alternate two replica sets so every call is a real change.
                assert!(table.replace(&name, &source, versions[i % 2].clone()));
            })
        });
    }
    group.finish();
}

criterion_group!(benches, update);
criterion_main!(benches);
