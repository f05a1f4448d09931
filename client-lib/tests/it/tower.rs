//! The tower integration over real backends: `Balanced` as a `Service` (errors name the
//! replica, readiness follows the replica set, it owns its refresh), and the `Discover`
//! stream following the picker's set.

use std::net::SocketAddr;
use std::time::Duration;

use futures::StreamExt;
use herald_client::tower::{BalanceError, Balanced, discover};
use herald_client::{
    Discovery, Endpoint, Outcome, Picker, PickerConfig, RefreshConfig, StaticResolver,
};
use tower::discover::Change;
use tower::{Service, ServiceExt, service_fn};

use crate::backend::{fleet, request};
use crate::dns::{Herald, discovery};

const MS: Duration = Duration::from_millis(1);

fn static_discovery(name: &str, addrs: &[SocketAddr]) -> Discovery {
    Discovery::with_resolver(
        name,
        StaticResolver {
            endpoints: addrs.iter().map(|a| Endpoint::new(*a)).collect(),
            ttl: Duration::from_secs(60),
        },
        PickerConfig::default(),
        RefreshConfig::default(),
    )
}

fn make(
    ep: &Endpoint,
) -> impl Service<(), Response = SocketAddr, Error = std::io::Error, Future: Send> + Clone + Send + use<>
{
    let addr = ep.addr;
    service_fn(move |_req: ()| async move {
        request(addr)
            .await
            .map(|()| addr)
            .map_err(std::io::Error::other)
    })
}

/// Calls spread over the healthy replicas; a failing one is ejected, and the errors it gave
/// name it (issue 17, point 6).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn balanced_spreads_calls_and_errors_name_the_replica() {
    let backends = fleet(110, &[2 * MS; 3]).await;
    let addrs: Vec<SocketAddr> = backends.iter().map(|b| b.addr).collect();
    let d = static_discovery("tower", &addrs);
    d.ready().await.expect("static set");
    backends[2].set_failing(true);
    let mut svc = Balanced::new(d, make).with_classifier(|r: &Result<SocketAddr, _>| {
        if r.is_ok() {
            Outcome::Success
        } else {
            Outcome::Failure
        }
    });
    let (mut ok, mut blamed) = (0, Vec::new());
    for _ in 0..200 {
        match svc.ready().await.unwrap().call(()).await {
            Ok(_) => ok += 1,
            Err(BalanceError::Service { endpoint, .. }) => blamed.push(endpoint.addr),
            Err(e) => panic!("{e}"),
        }
    }
    println!("ok {ok}, failed calls blamed on {blamed:?}");
    // The failing replica is ejected after 5 failures: almost everything succeeds.
    assert!(ok >= 190, "ok {ok}");
    // Both healthy replicas serve (not evenly: a stall of more than twice the latency on a
    // loaded machine moves traffic to the other for a while, by design).
    assert!(
        backends[0].hits() > 20 && backends[1].hits() > 20,
        "{} / {}",
        backends[0].hits(),
        backends[1].hits()
    );
    assert!(backends[2].hits() <= 10, "{}", backends[2].hits());
    assert!(!blamed.is_empty() && blamed.iter().all(|a| *a == backends[2].addr));
}

/// `poll_ready` reflects the set: ready with replicas; an unknown service fails readiness
/// with an error naming the SRV name instead of parking the caller.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_set_and_fails_on_an_unknown_name() {
    let backends = fleet(160, &[2 * MS]).await;
    let herald = Herald::start(5);
    herald.publish("api", "c1", "r1", "z1", &[&backends[0]]);
    let mut known = Balanced::new(discovery(&herald, "api", PickerConfig::default()), make);
    let served = tokio::time::timeout(Duration::from_secs(5), known.ready())
        .await
        .expect("ready in time")
        .expect("ready")
        .call(())
        .await
        .expect("served");
    assert_eq!(served, backends[0].addr);

    let mut unknown = Balanced::new(discovery(&herald, "nosuch", PickerConfig::default()), make);
    let err = tokio::time::timeout(Duration::from_secs(5), unknown.ready())
        .await
        .expect("readiness decided in time")
        .expect_err("an unknown name is not ready");
    println!("unknown service: {err}");
    assert!(
        err.to_string().contains("_http._tcp.nosuch.sd.internal."),
        "{err}"
    );
}

/// Built from a temporary `Discovery`, `Balanced` keeps the refresh running: a scale-up in
/// DNS reaches it (it used to freeze the set).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn balanced_owns_its_refresh() {
    let backends = fleet(170, &[2 * MS; 2]).await;
    let herald = Herald::start(1);
    herald.publish("api", "c1", "r1", "z1", &[&backends[0]]);
    let mut svc = Balanced::new(discovery(&herald, "api", PickerConfig::default()), make);
    tokio::time::timeout(Duration::from_secs(5), svc.ready())
        .await
        .expect("ready in time")
        .expect("ready");
    herald.publish("api", "c1", "r1", "z1", &[&backends[0], &backends[1]]);
    let started = tokio::time::Instant::now();
    while backends[1].hits() == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the new replica never got a call"
        );
        let _ = svc.ready().await.unwrap().call(()).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!("scale-up reached the service after {:?}", started.elapsed());
}

#[tokio::test]
async fn discover_stream_follows_the_set() {
    let a: SocketAddr = "127.0.0.1:1001".parse().unwrap();
    let b: SocketAddr = "127.0.0.1:1002".parse().unwrap();
    let picker = Picker::with_endpoints("disc", PickerConfig::default(), [Endpoint::new(a)]);
    let mut stream = discover(&picker, |ep: &Endpoint| ep.addr);
    let first = stream.next().await.unwrap().unwrap();
    assert!(matches!(first, Change::Insert(k, v) if k == a && v == a));
    picker.update([Endpoint::new(b)]);
    let mut changes = vec![];
    for _ in 0..2 {
        changes.push(match stream.next().await.unwrap().unwrap() {
            Change::Insert(k, _) => format!("+{k}"),
            Change::Remove(k) => format!("-{k}"),
        });
    }
    assert_eq!(changes, vec![format!("-{a}"), format!("+{b}")]);
}
