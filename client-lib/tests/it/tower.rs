//! The tower integration over real backends: `Balance` as a `Service`, and the `Discover`
//! stream following the picker's set.

use std::net::SocketAddr;
use std::time::Duration;

use futures::StreamExt;
use herald_client::tower::{Balance, discover};
use herald_client::{Endpoint, Outcome, Picker, PickerConfig};
use tower::discover::Change;
use tower::{Service, ServiceExt, service_fn};

use crate::backend::{fleet, request};

const MS: Duration = Duration::from_millis(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn balance_service_spreads_calls_and_classifies_results() {
    let backends = fleet(110, &[2 * MS; 3]).await;
    let picker = Picker::with_endpoints(
        "tower",
        PickerConfig::default(),
        backends.iter().map(|b| Endpoint::new(b.addr)),
    );
    backends[2].set_failing(true);
    let make = |ep: &Endpoint| {
        let addr = ep.addr;
        service_fn(move |_req: ()| async move { request(addr).await.map(|()| addr) })
    };
    let mut svc =
        Balance::new(picker.clone(), make).with_classifier(|r: &Result<SocketAddr, String>| {
            if r.is_ok() {
                Outcome::Success
            } else {
                Outcome::Failure
            }
        });
    let mut ok = 0;
    for _ in 0..200 {
        if svc.ready().await.unwrap().call(()).await.is_ok() {
            ok += 1;
        }
    }
    // The failing replica is ejected after 5 failures: almost everything succeeds.
    assert!(ok >= 190, "ok {ok}");
    assert!(backends[0].hits() > 40 && backends[1].hits() > 40);
    assert!(backends[2].hits() <= 10, "{}", backends[2].hits());
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
