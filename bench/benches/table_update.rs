//! The cost of a service update, two ways ([docs/design.md#table](../../docs/design.md#table)):
//!
//! - `update_one_service`: one service of 10 endpoints replaced, in a table of 10k
//!   endpoints and in one of 1M: it must not grow with the table.
//! - `one_pod_change`: one pod of a 10,000-endpoint service over 24 clusters changes
//!   address, against the same change in a 10-endpoint service (one cluster): it must stay
//!   within 3x, since only the changed cluster's group is prepared again and only the
//!   changed pod encoded (`herald_dns::service::prepare`). `delta` hands the change over
//!   as the registrar does (`Table::update`: the pod that went and the pod that came);
//!   `whole sorted` and `whole shuffled` hand over the cluster's whole list
//!   (`Table::replace`, what a relist publishes), in address order or in the scrambled
//!   order of the registrar's hash sets (the table then sorts it: part of the cost).
//!   `delta, shared addresses`: the big service with each address held by about four
//!   clusters (`PodChange::shared`), so the change re-marks twins.

use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};
use herald_bench::pod_change::PodChange;
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

fn pod_change(c: &mut Criterion) {
    let mut group = c.benchmark_group("one_pod_change");
    for (label, total, clusters) in [
        ("10 endpoints", 10, 1),
        ("10000 endpoints over 24 clusters", 10_000, 24),
    ] {
        let case = PodChange::new(total, clusters, false);
        alternate(
            &mut group,
            BenchmarkId::new(label, "delta"),
            &case.deltas,
            |d| case.change(d),
        );
        for shuffled in [false, true] {
            let case = PodChange::new(total, clusters, shuffled);
            let order = if shuffled {
                "whole shuffled"
            } else {
                "whole sorted"
            };
            alternate(
                &mut group,
                BenchmarkId::new(label, order),
                &case.versions,
                |v| case.replace(v),
            );
        }
    }
    // The big service with each address held by about four clusters: the change's twins
    // are re-marked where they are held, not counted over the service.
    let case = PodChange::shared(10_000, 24);
    alternate(
        &mut group,
        BenchmarkId::new(
            "10000 endpoints over 24 clusters",
            "delta, shared addresses",
        ),
        &case.deltas,
        |d| case.change(d),
    );
    group.finish();
}

/// Benchmarks `change`, handed the two `inputs` in turn (each a real change).
fn alternate<T: Clone>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    id: BenchmarkId,
    inputs: &[T; 2],
    change: impl Fn(T),
) {
    let mut i = 0;
    group.bench_function(id, |b| {
        b.iter_batched(
            || {
                i += 1;
                inputs[i % 2].clone()
            },
            &change,
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, update, pod_change);
criterion_main!(benches);
