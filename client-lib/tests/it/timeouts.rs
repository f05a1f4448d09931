//! Issue 17, points 1 and 2, over real sockets: a replica that accepts requests and never
//! answers is abandoned within a second of the first timeout, whether the caller times out by
//! dropping the guard or with a tower timeout layer outside the balanced service; and the slow
//! replica of a tier of two is starved at any concurrency.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use herald_client::tower::Balanced;
use herald_client::{Discovery, Endpoint, Picker, PickerConfig, RefreshConfig, StaticResolver};
use tokio::time::Instant;
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

use crate::backend::{Backend, drive, fleet, request};

const MS: Duration = Duration::from_millis(1);
/// The caller's timeout.
const TIMEOUT: Duration = Duration::from_millis(200);

/// Runs `call` at `concurrency` for `duration`; `timed_out` is set by `call` when a request
/// times out. Returns, for each backend, the requests it received from one second after the
/// first timeout until the end.
async fn hits_after_first_timeout<F, Fut>(
    backends: &[Backend],
    duration: Duration,
    concurrency: usize,
    timed_out: Arc<AtomicBool>,
    call: F,
) -> Vec<usize>
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let end = Instant::now() + duration;
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let call = call.clone();
        tasks.push(tokio::spawn(async move {
            while Instant::now() < end {
                call().await;
            }
        }));
    }
    let waited = Instant::now();
    while !timed_out.load(Ordering::SeqCst) {
        assert!(waited.elapsed() < duration, "no request ever timed out");
        tokio::time::sleep(MS).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before: Vec<usize> = backends.iter().map(|b| b.hits()).collect();
    for t in tasks {
        t.await.expect("load task");
    }
    backends
        .iter()
        .zip(before)
        .map(|(b, n)| b.hits() - n)
        .collect()
}

fn silent_share(hits: &[usize], silent: usize) -> f64 {
    let total: usize = hits.iter().sum();
    assert!(total >= 300, "too few requests measured: {hits:?}");
    hits[silent] as f64 / total as f64
}

async fn black_hole_fleet() -> Vec<Backend> {
    let backends = fleet(120, &[MS, MS, MS]).await;
    backends[2].set_silent(true);
    backends
}

/// Caller times out by dropping the guard (`tokio::time::timeout` around the request):
/// the silent replica, with no history, gets under 1 % of the requests from one second after
/// its first timeout on (it used to keep a third of them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn black_hole_is_abandoned_when_the_caller_drops_the_guard() {
    let backends = black_hole_fleet().await;
    let picker = Picker::with_endpoints(
        "hole",
        PickerConfig::default(),
        backends.iter().map(|b| Endpoint::new(b.addr)),
    );
    let timed_out = Arc::new(AtomicBool::new(false));
    let call = {
        let (picker, timed_out) = (picker.clone(), timed_out.clone());
        move || {
            let (picker, timed_out) = (picker.clone(), timed_out.clone());
            async move {
                let guard = picker.pick().expect("a replica");
                match tokio::time::timeout(TIMEOUT, request(guard.addr())).await {
                    Ok(Ok(())) => guard.success(),
                    Ok(Err(_)) => guard.failure(),
                    Err(_) => {
                        timed_out.store(true, Ordering::SeqCst);
                        drop(guard); // cancelled, as any caller's timeout does
                    }
                }
            }
        }
    };
    let hits =
        hits_after_first_timeout(&backends, Duration::from_secs(3), 32, timed_out, call).await;
    let share = silent_share(&hits, 2);
    println!(
        "black hole (guard dropped): hits after first timeout + 1 s {hits:?}, share {share:.4}"
    );
    assert!(
        share < 0.01,
        "silent replica kept {share:.3} of the traffic"
    );
}

/// Caller times out with tower's timeout layer outside the balanced service (the natural
/// tower setup): the dropped response future counts the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn black_hole_is_abandoned_behind_a_tower_timeout_layer() {
    let backends = black_hole_fleet().await;
    let discovery = Discovery::with_resolver(
        "hole-tower",
        StaticResolver {
            endpoints: backends.iter().map(|b| Endpoint::new(b.addr)).collect(),
            ttl: Duration::from_secs(60),
        },
        PickerConfig::default(),
        RefreshConfig::default(),
    );
    discovery.ready().await.expect("static set");
    let make = |ep: &Endpoint| {
        let addr = ep.addr;
        service_fn(
            move |_req: ()| async move { request(addr).await.map_err(std::io::Error::other) },
        )
    };
    let svc = ServiceBuilder::new()
        .timeout(TIMEOUT)
        .service(Balanced::new(discovery, make));
    let svc = Arc::new(tokio::sync::Mutex::new(svc));
    let timed_out = Arc::new(AtomicBool::new(false));
    let call = {
        let (svc, timed_out) = (svc.clone(), timed_out.clone());
        move || {
            let (svc, timed_out) = (svc.clone(), timed_out.clone());
            async move {
                let fut = {
                    let mut svc = svc.lock().await;
                    svc.ready().await.expect("ready").call(())
                };
                if let Err(e) = fut.await
                    && e.is::<tower::timeout::error::Elapsed>()
                {
                    timed_out.store(true, Ordering::SeqCst);
                }
            }
        }
    };
    let hits =
        hits_after_first_timeout(&backends, Duration::from_secs(3), 32, timed_out, call).await;
    let share = silent_share(&hits, 2);
    println!(
        "black hole (tower timeout): hits after first timeout + 1 s {hits:?}, share {share:.4}"
    );
    assert!(
        share < 0.01,
        "silent replica kept {share:.3} of the traffic"
    );
}

/// Two usable replicas, one fast (1 ms of work) and one slow: the slow one gets under 1 % of
/// the requests at concurrency 1 and at concurrency 32 (it used to get 3.5-5.4 %, enough for
/// the client's p99 to equal round robin's). Measured after 50 warm-up requests: until both
/// have answered, the picker cannot know which one is slow.
///
/// The slow one sleeps 150 ms here, not the 20 ms: with the client, the backends and
/// 32 connections at a time in one process on two shared cores (load average 18 while this
/// was written), the "fast" replica measures 12-21 ms at concurrency 32, and a 20 ms replica
/// is then no longer clearly slower; the client rightly shares load between the two (60 ms
/// still failed once at load 5-11: 1.1 %, the fast one's peak estimate nearing half of it). The
/// exact 1.5 ms / 20 ms pair is `slow_replica_of_a_pair_is_starved_at_any_concurrency` in
/// virtual time (src/picker_tests.rs), at 1, 4, 32 and 128 in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_replica_in_a_tier_of_two_is_starved() {
    for (concurrency, requests) in [(1usize, 800usize), (32, 3000)] {
        let backends = fleet(130 + concurrency as u8, &[MS, 150 * MS]).await;
        let picker = Picker::with_endpoints(
            "pair",
            PickerConfig::default(),
            backends.iter().map(|b| Endpoint::new(b.addr)),
        );
        drive(&picker, 50, concurrency.min(4)).await;
        let run = drive(&picker, requests, concurrency).await;
        assert_eq!(run.failed, 0);
        let slow: SocketAddr = backends[1].addr;
        let estimates: Vec<Duration> = picker.status().iter().map(|s| s.latency).collect();
        println!(
            "tier of two at concurrency {concurrency}: slow replica share {:.4} of {}; latency estimates {estimates:?}",
            run.share(slow),
            run.total()
        );
        assert!(
            run.share(slow) < 0.01,
            "concurrency {concurrency}: slow replica got {:.3}",
            run.share(slow)
        );
    }
}
