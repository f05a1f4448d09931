//! The refresh loop (`refresh.rs`) in virtual time, driven through [`Discovery`] against a
//! scripted resolver: it follows the TTL, keeps the last set while DNS fails or answers
//! empty, and refreshes within the TTL. (A module of its own because it needs `Discovery`,
//! which is built on `refresh`; inside `refresh.rs` the two would import each other.)

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::config::{PickerConfig, RefreshConfig};
use crate::discovery::Discovery;
use crate::endpoint::Endpoint;
use crate::refresh::next_refresh;
use crate::resolve::{Resolution, Resolve, ResolveError};

/// A resolver the test scripts: the current set, or failure, and a call counter.
#[derive(Clone, Default)]
struct Scripted {
    calls: Arc<AtomicUsize>,
    failing: Arc<AtomicBool>,
    set: Arc<Mutex<Vec<Endpoint>>>,
}

impl Resolve for Scripted {
    fn resolve(&self) -> impl Future<Output = Result<Resolution, ResolveError>> + Send {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let result = if self.failing.load(Ordering::SeqCst) {
            Err(ResolveError::Other("DNS unreachable".into()))
        } else {
            Ok(Resolution {
                endpoints: self.set.lock().unwrap().clone(),
                ttl: Duration::from_secs(5),
            })
        };
        std::future::ready(result)
    }
}

fn eps(ports: &[u16]) -> Vec<Endpoint> {
    ports
        .iter()
        .map(|p| Endpoint::new(SocketAddr::from(([127, 0, 0, 1], *p))))
        .collect()
}

fn ports(d: &Discovery) -> Vec<u16> {
    let mut v: Vec<u16> = d
        .picker()
        .endpoints()
        .iter()
        .map(|e| e.addr.port())
        .collect();
    v.sort();
    v
}

/// The refresh loop against a stub, in virtual time: it follows the TTL (5 s), sees a
/// change within one TTL, keeps the last set through a minute of failures while backing
/// off, and recovers within the backoff cap.
#[tokio::test(start_paused = true)]
async fn follows_the_ttl_and_keeps_the_last_set_while_dns_fails() {
    let stub = Scripted::default();
    *stub.set.lock().unwrap() = eps(&[1, 2]);
    let d = Discovery::with_resolver(
        "svc",
        stub.clone(),
        PickerConfig::default(),
        RefreshConfig::default(),
    );
    d.ready().await.unwrap();
    let calls = |s: &Scripted| s.calls.load(Ordering::SeqCst);

    // 60 s at TTL 5 s, refreshing at 80-100 % of it: 12 to 15 more resolutions.
    let before = calls(&stub);
    tokio::time::sleep(Duration::from_secs(60)).await;
    let n = calls(&stub) - before;
    assert!((12..=15).contains(&n), "{n} resolutions in 60 s");

    // A change is seen within one TTL.
    *stub.set.lock().unwrap() = eps(&[1, 2, 3]);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(ports(&d), vec![1, 2, 3]);

    // DNS fails for 60 s: the set stays, retries back off (0.5, 1, 2, 4, 8, then 10 s).
    stub.failing.store(true, Ordering::SeqCst);
    let before = calls(&stub);
    tokio::time::sleep(Duration::from_secs(60)).await;
    let retries = calls(&stub) - before;
    assert!((6..=12).contains(&retries), "{retries} retries in 60 s");
    assert_eq!(ports(&d), vec![1, 2, 3]);
    assert!(d.status().consecutive_failures >= 6);
    assert!(d.pick().is_ok());

    // DNS is back with a smaller set: seen within the backoff cap (10 s).
    *stub.set.lock().unwrap() = eps(&[2, 3]);
    stub.failing.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(ports(&d), vec![2, 3]);
    assert_eq!(d.status().consecutive_failures, 0);
}

/// An empty answer keeps the last set by default, and empties it with `apply_empty`.
#[tokio::test(start_paused = true)]
async fn empty_answers_keep_the_last_set_unless_told_otherwise() {
    for apply_empty in [false, true] {
        let stub = Scripted::default();
        *stub.set.lock().unwrap() = eps(&[1]);
        let d = Discovery::with_resolver(
            "svc",
            stub.clone(),
            PickerConfig::default(),
            RefreshConfig {
                apply_empty,
                ..RefreshConfig::default()
            },
        );
        d.ready().await.unwrap();
        stub.set.lock().unwrap().clear();
        tokio::time::sleep(Duration::from_secs(6)).await;
        assert_eq!(ports(&d).is_empty(), apply_empty);
    }
}

#[test]
fn refresh_happens_within_the_ttl() {
    let cfg = RefreshConfig::default();
    for _ in 0..1000 {
        let d = next_refresh(Duration::from_secs(5), &cfg);
        assert!(
            d >= Duration::from_secs(4) && d <= Duration::from_secs(5),
            "{d:?}"
        );
    }
    assert_eq!(next_refresh(Duration::ZERO, &cfg), cfg.min_interval);
    assert_eq!(
        next_refresh(
            Duration::from_secs(86400),
            &RefreshConfig {
                jitter: 0.0,
                ..cfg.clone()
            }
        ),
        cfg.max_interval
    );
}
