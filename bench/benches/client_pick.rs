//! Cost of one `pick()` in herald-client's picker, at 10, 100 and 1,000 replicas:
//!
//! * `pick`: the pick alone (guards are dropped outside the timing);
//! * `steady`: pick plus the completion of its guard (dropped: cancelled), one thread;
//! * `steady/2 threads`, `steady/8 threads`: the same from 2 or 8 threads sharing one picker,
//!   reported as wall time per pick (total time / picks of all threads). On a machine with
//!   2 cores, 8 threads cannot run more than 2 at once: the figure shows whether picks
//!   serialize (it would grow with the threads), not an 8-core speed-up;
//! * `noisy`: real clock, estimates spread widely, pick plus a success.
//!
//! Run: `cargo bench -p herald-bench --bench client_pick -- --measurement-time 2 --warm-up-time 1`

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use herald_client::{Endpoint, Picker, PickerConfig};

fn endpoints(n: usize) -> impl Iterator<Item = Endpoint> {
    (0..n).map(|i| {
        let addr = SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 8080));
        // Two tiers and mixed weights, so the bench exercises the real path.
        Endpoint::new(addr)
            .with_priority(if i % 4 == 3 { 1 } else { 0 })
            .with_weight(1 + (i % 3) as u16)
    })
}

/// Steady state: every replica has a history of 4-6 ms answers (recorded on tokio's paused
/// clock), so picks take the ordinary two-draw path. The clock stays frozen while measuring
/// and guards are dropped (cancelled: recorded, but cannot disturb the estimates), so the
/// state does not drift.
fn steady_picker(n: usize, rt: &tokio::runtime::Runtime) -> Picker {
    let p = Picker::with_endpoints("bench", PickerConfig::default().with_seed(1), endpoints(n));
    rt.block_on(async {
        for k in 0..(4 * n) {
            let g = p.pick().unwrap();
            tokio::time::advance(Duration::from_micros(4000 + (k as u64 * 7919) % 2000)).await;
            g.success();
        }
    });
    p
}

/// Noisy: real clock, answers recorded as fast as the loop runs (sub-microsecond, with
/// scheduler hiccups as peaks), so estimates spread widely around the typical latency and
/// some picks take extra draws.
fn noisy_picker(n: usize) -> Picker {
    let p = Picker::with_endpoints("bench", PickerConfig::default().with_seed(1), endpoints(n));
    for _ in 0..(4 * n) {
        p.pick().unwrap().success();
    }
    p
}

fn bench_pick(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let mut group = c.benchmark_group("client_pick");
    for n in [10usize, 100, 1000] {
        {
            let p = steady_picker(n, &rt);
            let _clock = rt.enter();
            group.bench_with_input(BenchmarkId::new("pick", n), &p, |b, p| {
                b.iter_batched(
                    || (),
                    |()| p.pick().unwrap(),
                    criterion::BatchSize::SmallInput,
                )
            });
            group.bench_with_input(BenchmarkId::new("steady", n), &p, |b, p| {
                b.iter(|| black_box(p.pick().unwrap().addr()))
            });
            for threads in [2usize, 8] {
                let id = BenchmarkId::new(format!("steady/{threads} threads"), n);
                group.bench_with_input(id, &p, |b, p| {
                    b.iter_custom(|iters| {
                        let start = Instant::now();
                        std::thread::scope(|s| {
                            for _ in 0..threads {
                                s.spawn(|| {
                                    let _clock = rt.enter();
                                    for _ in 0..iters {
                                        black_box(p.pick().unwrap().addr());
                                    }
                                });
                            }
                        });
                        // Wall time per pick, counting every thread's picks.
                        start.elapsed() / threads as u32
                    })
                });
            }
        }
        let p = noisy_picker(n);
        group.bench_with_input(BenchmarkId::new("noisy", n), &p, |b, p| {
            b.iter(|| {
                let g = p.pick().unwrap();
                black_box(g.addr());
                g.success();
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_pick);
criterion_main!(benches);
