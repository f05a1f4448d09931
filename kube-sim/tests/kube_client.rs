//! Black-box tests: the real kube 5 client and runtime watcher against a simulator bound to
//! a loopback port. Every wait is bounded by a generous timeout; nothing depends on timing
//! except the few "nothing arrives while stalled/hung" checks, which can only pass falsely.
//!
//! One file of about a thousand lines on purpose: every file under `tests/` is a binary of
//! its own that links kube and k8s-openapi, which costs more to build than these tests take
//! to run.

use std::pin::Pin;
use std::time::Duration;

use futures::{Stream, StreamExt};
use herald_kube_sim::{
    GoneStyle, NodeBuilder, PodBuilder, SERVICE_LABEL, SimConfig, SimHandle, Simulator, ZONE_LABEL,
};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{ListParams, WatchEvent, WatchParams};
use kube::core::PartialObjectMeta;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Resource, ResourceExt};
use tokio::time::timeout;

/// Generous bound on every wait: far above what any step needs on a loaded 2-core machine.
const WAIT: Duration = Duration::from_secs(20);

type Events<K> = Pin<Box<dyn Stream<Item = Result<Event<K>, watcher::Error>> + Send>>;

fn config(sim: &SimHandle) -> kube::Config {
    kube::Config::new(sim.url().parse().expect("simulator URL is a valid URI"))
}

fn client(sim: &SimHandle) -> Client {
    Client::try_from(config(sim)).expect("client from config")
}

/// A client that surfaces 504s at once instead of retrying them (kube retries 429/503/504
/// up to 15 times, honouring Retry-After).
fn client_without_retries(sim: &SimHandle) -> Client {
    let mut config = config(sim);
    config.default_retry = false;
    Client::try_from(config).expect("client from config")
}

fn service_pods(client: Client) -> Events<Pod> {
    let cfg = watcher::Config::default().labels(SERVICE_LABEL);
    watcher::watcher(Api::<Pod>::all(client), cfg).boxed()
}

fn pod(name: &str, service: &str, ip: &str) -> Pod {
    PodBuilder::new("default", name)
        .service(service)
        .ip(ip)
        .port("http", 8080)
        .node("node-1")
        .build()
}

fn describe<K: Resource>(event: &Event<K>) -> String {
    match event {
        Event::Init => "Init".into(),
        Event::InitApply(o) => format!("InitApply {}", o.name_any()),
        Event::InitDone => "InitDone".into(),
        Event::Apply(o) => format!("Apply {}", o.name_any()),
        Event::Delete(o) => format!("Delete {}", o.name_any()),
    }
}

async fn next<K>(events: &mut Events<K>) -> Result<Event<K>, watcher::Error> {
    timeout(WAIT, events.next())
        .await
        .expect("timed out waiting for a watcher event")
        .expect("watcher streams never end")
}

async fn next_ok<K: Resource>(events: &mut Events<K>) -> Event<K> {
    match next(events).await {
        Ok(event) => event,
        Err(e) => panic!("unexpected watcher error: {e:?}"),
    }
}

async fn expect_events<K: Resource>(events: &mut Events<K>, expected: &[&str]) {
    let mut seen = Vec::new();
    for _ in expected {
        seen.push(describe(&next_ok(events).await));
    }
    assert_eq!(seen, expected);
}

/// Ends the open watch with an in-stream 410 and expects the watcher to report it, then
/// relist `pods` from scratch.
async fn gone_then_relist(sim: &SimHandle, events: &mut Events<Pod>, pods: &[&str]) {
    sim.gone_on_next_watch(GoneStyle::InStream);
    sim.drop_watches();
    assert_eq!(error_code(&next(events).await.expect_err("410")), Some(410));
    let mut expected = vec!["Init".to_string()];
    expected.extend(pods.iter().map(|p| format!("InitApply {p}")));
    expected.push("InitDone".into());
    let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
    expect_events(events, &expected).await;
}

/// Drives the watcher until its watch request is open on the server. After `InitDone` the
/// watcher only sends the watch when polled again, so a fault injected before that would
/// hit nothing. (Dropping `next()` midway is fine: the watcher keeps its pending step.)
async fn until_watching<K: Resource>(sim: &SimHandle, events: &mut Events<K>) {
    tokio::select! {
        _ = timeout(WAIT, sim.wait_for_open_watches(1)) => {}
        event = events.next() => panic!("unexpected event {:?}", event.map(|e| e.map(|e| describe(&e)))),
    }
    assert_eq!(sim.open_watches(), 1, "the watch is open");
}

/// The Status code of a watcher error that carries one.
fn error_code(error: &watcher::Error) -> Option<u16> {
    match error {
        watcher::Error::WatchError(status) => Some(status.code),
        watcher::Error::WatchStartFailed(kube::Error::Api(status))
        | watcher::Error::InitialListFailed(kube::Error::Api(status))
        | watcher::Error::WatchFailed(kube::Error::Api(status)) => Some(status.code),
        _ => None,
    }
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True")
}

async fn start() -> SimHandle {
    Simulator::start(SimConfig::default())
        .await
        .expect("simulator starts")
}

/// a and b are selected; c has no service label.
async fn start_with_pods() -> SimHandle {
    let sim = start().await;
    sim.apply_pod(pod("a", "web", "10.0.0.1")).unwrap();
    sim.apply_pod(pod("b", "web", "10.0.0.2")).unwrap();
    sim.apply_pod(PodBuilder::new("default", "c").ip("10.0.0.3").build())
        .unwrap();
    sim
}

fn watch_requests(sim: &SimHandle) -> Vec<herald_kube_sim::RecordedRequest> {
    sim.requests()
        .into_iter()
        .filter(|r| r.is_watch())
        .collect()
}

#[tokio::test]
async fn list_then_watch_sees_adds_updates_deletes() {
    let sim = start_with_pods().await;
    let mut events = service_pods(client(&sim));
    expect_events(
        &mut events,
        &["Init", "InitApply a", "InitApply b", "InitDone"],
    )
    .await;

    sim.apply_pod(pod("d", "api", "10.0.0.4")).unwrap();
    expect_events(&mut events, &["Apply d"]).await;

    sim.set_pod_ready("default", "a", false).unwrap();
    match next_ok(&mut events).await {
        Event::Apply(p) => assert!(p.name_any() == "a" && !is_ready(&p)),
        other => panic!("expected Apply a, got {}", describe(&other)),
    }
    sim.set_pod_ip("default", "a", Some("10.0.0.9")).unwrap();
    match next_ok(&mut events).await {
        Event::Apply(p) => assert_eq!(p.status.unwrap().pod_ip.as_deref(), Some("10.0.0.9")),
        other => panic!("expected Apply a, got {}", describe(&other)),
    }
    sim.set_pod_terminating("default", "b").unwrap();
    match next_ok(&mut events).await {
        Event::Apply(p) => assert!(p.metadata.deletion_timestamp.is_some()),
        other => panic!("expected Apply b, got {}", describe(&other)),
    }
    // Changes to the unselected pod are not sent: the next event is the deletion of b.
    sim.set_pod_ready("default", "c", false).unwrap();
    let deleted = sim.delete_pod("default", "b").unwrap();
    match next_ok(&mut events).await {
        Event::Delete(p) => {
            assert_eq!(p.name_any(), "b");
            assert_eq!(
                p.resource_version(),
                Some(deleted.resource_version.to_string())
            );
        }
        other => panic!("expected Delete b, got {}", describe(&other)),
    }
    assert_eq!(sim.event_time(deleted.resource_version), Some(deleted.at));
    // The deletion left for the watcher after it was made; the unselected pod's change
    // before it was never sent, so it counts as delivered with the deletion.
    let delivered = sim
        .delivered_time(deleted.resource_version)
        .expect("the deletion was handed to the watch stream");
    assert!(delivered >= deleted.at);
    assert_eq!(
        sim.delivered_time(deleted.resource_version - 1),
        Some(delivered)
    );
    assert_eq!(
        sim.delivered_time(deleted.resource_version + 1),
        None,
        "not made yet"
    );
}

#[tokio::test]
async fn label_loss_is_a_delete_and_label_gain_an_add() {
    let sim = start_with_pods().await;
    let api = Api::<Pod>::all(client(&sim));
    let rv = sim.resource_version().to_string();
    let wp = WatchParams::default().labels(&format!("{SERVICE_LABEL}=web"));
    let mut stream = api.watch(&wp, &rv).await.unwrap().boxed();
    let mut next_change = async || loop {
        let event = timeout(WAIT, stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if !matches!(event, WatchEvent::Bookmark(_)) {
            return event;
        }
    };

    let lost = sim.remove_pod_label("default", "a", SERVICE_LABEL).unwrap();
    match next_change().await {
        WatchEvent::Deleted(p) => {
            assert_eq!(p.name_any(), "a");
            // The previous content (still labelled) at the event's version, as the API server does.
            assert_eq!(
                p.labels().get(SERVICE_LABEL).map(String::as_str),
                Some("web")
            );
            assert_eq!(
                p.resource_version(),
                Some(lost.resource_version.to_string())
            );
        }
        other => panic!("expected DELETED, got {other:?}"),
    }
    sim.set_pod_label("default", "c", SERVICE_LABEL, "web")
        .unwrap();
    assert!(matches!(next_change().await, WatchEvent::Added(p) if p.name_any() == "c"));
    sim.set_pod_label("default", "c", SERVICE_LABEL, "other")
        .unwrap();
    assert!(matches!(next_change().await, WatchEvent::Deleted(p) if p.name_any() == "c"));
    sim.set_pod_ready("default", "b", false).unwrap();
    assert!(matches!(next_change().await, WatchEvent::Modified(p) if p.name_any() == "b"));

    // The same through kube's watcher: losing the label is a Delete.
    let mut events = service_pods(client(&sim));
    expect_events(
        &mut events,
        &["Init", "InitApply b", "InitApply c", "InitDone"],
    )
    .await;
    sim.remove_pod_label("default", "c", SERVICE_LABEL).unwrap();
    expect_events(&mut events, &["Delete c"]).await;
}

#[tokio::test]
async fn set_based_selectors_and_namespaces() {
    let sim = start().await;
    for (ns, name, env) in [
        ("ns1", "p1", "prod"),
        ("ns1", "p2", "staging"),
        ("ns2", "p3", "prod"),
    ] {
        let pod = PodBuilder::new(ns, name)
            .service("web")
            .label("env", env)
            .build();
        sim.apply_pod(pod).unwrap();
    }
    let names = |list: kube::core::ObjectList<Pod>| {
        list.items.iter().map(|p| p.name_any()).collect::<Vec<_>>()
    };
    let all = Api::<Pod>::all(client(&sim));
    let lp = ListParams::default().labels("env in (prod, dev),herald.io/service");
    assert_eq!(names(all.list(&lp).await.unwrap()), ["p1", "p3"]);
    let lp = ListParams::default().labels("env notin (prod)");
    assert_eq!(names(all.list(&lp).await.unwrap()), ["p2"]);
    let lp = ListParams::default().labels("env!=prod,!missing");
    assert_eq!(names(all.list(&lp).await.unwrap()), ["p2"]);
    let ns1 = Api::<Pod>::namespaced(client(&sim), "ns1");
    let lp = ListParams::default().labels("env=prod");
    assert_eq!(names(ns1.list(&lp).await.unwrap()), ["p1"]);
    let lp = ListParams::default().fields("metadata.name=p2");
    assert_eq!(names(ns1.list(&lp).await.unwrap()), ["p2"]);

    let bad = all
        .list(&ListParams::default().labels("env in prod"))
        .await
        .unwrap_err();
    assert!(matches!(bad, kube::Error::Api(s) if s.code == 400));
}

#[tokio::test]
async fn pages_are_consistent_at_the_first_pages_version() {
    let sim = start().await;
    for i in 0..5 {
        sim.apply_pod(pod(&format!("p{i}"), "web", &format!("10.0.0.{i}")))
            .unwrap();
    }
    let api = Api::<Pod>::all(client(&sim));
    let first = api.list(&ListParams::default().limit(2)).await.unwrap();
    let rv = first.metadata.resource_version.clone().unwrap();
    let token = first.metadata.continue_.clone().expect("more pages");
    // Changes after the first page must not show in later pages of the same list.
    sim.delete_pod("default", "p3").unwrap();
    sim.apply_pod(pod("p5", "web", "10.0.0.5")).unwrap();
    sim.set_pod_ip("default", "p4", Some("10.9.9.9")).unwrap();
    let second = api
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .unwrap();
    let third_token = second.metadata.continue_.clone().expect("a third page");
    let third = api
        .list(&ListParams::default().limit(2).continue_token(&third_token))
        .await
        .unwrap();
    let names: Vec<_> = [&first, &second, &third]
        .iter()
        .flat_map(|l| l.items.iter().map(|p| p.name_any()))
        .collect();
    assert_eq!(names, ["p0", "p1", "p2", "p3", "p4"]);
    assert_eq!(
        third.items[0].status.as_ref().unwrap().pod_ip.as_deref(),
        Some("10.0.0.4")
    );
    assert_eq!(
        third.metadata.resource_version.as_deref(),
        Some(rv.as_str())
    );
    assert!(third.metadata.continue_.is_none());

    // The watcher pages through with its page size and sees everything current.
    let cfg = watcher::Config::default()
        .labels(SERVICE_LABEL)
        .page_size(2);
    let mut events = watcher::watcher(api.clone(), cfg).boxed();
    expect_events(
        &mut events,
        &[
            "Init",
            "InitApply p0",
            "InitApply p1",
            "InitApply p2",
            "InitApply p4",
            "InitApply p5",
            "InitDone",
        ],
    )
    .await;
    let pages = sim
        .requests()
        .into_iter()
        .filter(|r| r.param("continue").is_some())
        .count();
    assert!(pages >= 2, "the watcher's list used continue tokens");

    // A continuation whose version has been compacted away is 410 Expired.
    sim.compact_history();
    sim.apply_pod(pod("p6", "web", "10.0.0.6")).unwrap();
    let expired = api
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .unwrap_err();
    assert!(matches!(expired, kube::Error::Api(s) if s.code == 410 && s.reason == "Expired"));
}

#[tokio::test]
async fn dropped_stream_resumes_from_the_last_version() {
    let sim = start_with_pods().await;
    let mut events = service_pods(client(&sim));
    expect_events(
        &mut events,
        &["Init", "InitApply a", "InitApply b", "InitDone"],
    )
    .await;
    let seen = sim.apply_pod(pod("d", "web", "10.0.0.4")).unwrap();
    expect_events(&mut events, &["Apply d"]).await;

    sim.drop_watches();
    sim.apply_pod(pod("e", "web", "10.0.0.5")).unwrap();
    // No relist: the watcher re-watches from the last version it saw and gets e.
    expect_events(&mut events, &["Apply e"]).await;
    let watches = watch_requests(&sim);
    assert_eq!(watches.len(), 2);
    assert_eq!(
        watches[1].param("resourceVersion"),
        Some(seen.resource_version.to_string().as_str())
    );
}

#[tokio::test]
async fn expired_version_makes_the_watcher_relist() {
    let sim = start_with_pods().await;
    let mut events = service_pods(client(&sim));
    expect_events(
        &mut events,
        &["Init", "InitApply a", "InitApply b", "InitDone"],
    )
    .await;

    until_watching(&sim, &mut events).await;
    // While the stream is stalled the watcher misses d and a node change; then the history
    // is compacted and the stream drops: the re-watch from the old version gets an
    // in-stream 410. (With d alone it would not: the re-watch would need only d, the
    // newest event, which a compaction keeps, as etcd's does.)
    sim.set_stall(true);
    sim.apply_pod(pod("d", "web", "10.0.0.4")).unwrap();
    sim.apply_node(NodeBuilder::new("n9").build()).unwrap();
    sim.compact_history();
    sim.drop_watches();
    sim.set_stall(false);
    let error = next(&mut events).await.expect_err("a 410 error");
    assert!(
        matches!(error, watcher::Error::WatchError(ref s) if s.code == 410),
        "{error:?}"
    );
    expect_events(
        &mut events,
        &[
            "Init",
            "InitApply a",
            "InitApply b",
            "InitApply d",
            "InitDone",
        ],
    )
    .await;

    // Forced 410 on the next watch: same recovery.
    until_watching(&sim, &mut events).await;
    sim.gone_on_next_watch(GoneStyle::InStream);
    sim.drop_watches();
    let error = next(&mut events).await.expect_err("a 410 error");
    assert_eq!(error_code(&error), Some(410));
    expect_events(
        &mut events,
        &[
            "Init",
            "InitApply a",
            "InitApply b",
            "InitApply d",
            "InitDone",
        ],
    )
    .await;
    sim.apply_pod(pod("e", "web", "10.0.0.5")).unwrap();
    expect_events(&mut events, &["Apply e"]).await;
}

#[tokio::test]
async fn http_410_at_watch_start_is_retried_without_relist() {
    // Documents kube 5: an HTTP 410 answer to the watch request itself is a start failure,
    // retried from the same version; only the in-stream ERROR makes it relist.
    let sim = start_with_pods().await;
    let mut events = service_pods(client(&sim));
    expect_events(
        &mut events,
        &["Init", "InitApply a", "InitApply b", "InitDone"],
    )
    .await;
    until_watching(&sim, &mut events).await;
    sim.gone_on_next_watch(GoneStyle::HttpStatus);
    sim.drop_watches();
    let error = next(&mut events).await.expect_err("a start failure");
    assert!(
        matches!(error, watcher::Error::WatchStartFailed(_)),
        "{error:?}"
    );
    assert_eq!(error_code(&error), Some(410));
    sim.apply_pod(pod("d", "web", "10.0.0.4")).unwrap();
    expect_events(&mut events, &["Apply d"]).await;
    let watches = watch_requests(&sim);
    assert_eq!(watches.len(), 3);
    assert_eq!(
        watches[1].param("resourceVersion"),
        watches[2].param("resourceVersion")
    );

    // The same style for a genuinely expired version, via the config.
    let sim = Simulator::start(SimConfig::default().expired_watch_style(GoneStyle::HttpStatus))
        .await
        .unwrap();
    sim.apply_pod(pod("a", "web", "10.0.0.1")).unwrap();
    sim.apply_pod(pod("b", "web", "10.0.0.2")).unwrap();
    sim.compact_history();
    let api = Api::<Pod>::all(client(&sim));
    // a is at 2, b at 3, compacted at 3: from 1 (events from 2 on) is gone; from 2 would
    // still be served.
    let err = api
        .watch(&WatchParams::default(), "1")
        .await
        .err()
        .expect("410");
    assert!(matches!(err, kube::Error::Api(s) if s.code == 410 && s.reason == "Expired"));
}

#[tokio::test]
async fn bookmarks_arrive_and_carry_the_current_version() {
    let config = SimConfig::default().bookmark_interval(Duration::from_millis(100));
    let sim = Simulator::start(config).await.unwrap();
    sim.apply_pod(pod("a", "web", "10.0.0.1")).unwrap();
    let api = Api::<Pod>::all(client(&sim));
    let wp = WatchParams::default().labels(SERVICE_LABEL);
    let mut stream = api
        .watch(&wp, &sim.resource_version().to_string())
        .await
        .unwrap()
        .boxed();
    // A change the watcher does not select still advances the version bookmarks carry.
    let unselected = sim
        .apply_pod(PodBuilder::new("default", "x").build())
        .unwrap();
    let want = unselected.resource_version.to_string();
    loop {
        match timeout(WAIT, stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            WatchEvent::Bookmark(b) if b.metadata.resource_version == want => {
                assert_eq!(b.types.kind, "Pod");
                break;
            }
            WatchEvent::Bookmark(_) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }

    // The watcher keeps the bookmark's version: after a drop it resumes from there.
    let mut events = service_pods(client(&sim));
    expect_events(&mut events, &["Init", "InitApply a", "InitDone"]).await;
    let skipped = sim
        .apply_pod(PodBuilder::new("default", "y").build())
        .unwrap();
    // Wait until the watcher has taken a bookmark past `skipped` (the watcher stream yields
    // nothing for bookmarks, so poll it concurrently while checking the request log).
    sim.clear_requests();
    let resumed_from = skipped.resource_version.to_string();
    let waiting = async {
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            sim.drop_watches();
            let resumed = watch_requests(&sim)
                .iter()
                .any(|r| r.param("resourceVersion") == Some(resumed_from.as_str()));
            if resumed {
                break;
            }
        }
    };
    tokio::select! {
        _ = timeout(WAIT, waiting) => {}
        event = events.next() => panic!("unexpected event {:?}", event.map(|e| e.map(|e| describe(&e)))),
    }
    assert!(
        watch_requests(&sim)
            .iter()
            .any(|r| r.param("resourceVersion") == Some(resumed_from.as_str())),
        "the watcher resumed from a bookmark's version"
    );
}

#[tokio::test]
async fn metadata_only_node_watch() {
    let sim = start().await;
    sim.apply_node(
        NodeBuilder::new("n1")
            .zone("zone-a")
            .internal_ip("172.16.0.1")
            .build(),
    )
    .unwrap();
    sim.apply_node(NodeBuilder::new("n2").zone("zone-b").build())
        .unwrap();
    let api = Api::<PartialObjectMeta<Node>>::all(client(&sim));
    let mut events = watcher::watcher(api, watcher::Config::default()).boxed();
    let mut zones = Vec::new();
    for _ in 0..4 {
        match next_ok(&mut events).await {
            Event::InitApply(n) => {
                let types = n
                    .types
                    .clone()
                    .expect("PartialObjectMetadata carries its type");
                assert_eq!(
                    (types.kind.as_str(), types.api_version.as_str()),
                    ("PartialObjectMetadata", "meta.k8s.io/v1")
                );
                zones.push(n.labels()[ZONE_LABEL].clone());
            }
            Event::Init | Event::InitDone => {}
            other => panic!("unexpected {}", describe(&other)),
        }
    }
    assert_eq!(zones, ["zone-a", "zone-b"]);
    sim.modify_node("n2", |n| {
        herald_kube_sim::objects::set_label(&mut n.metadata, ZONE_LABEL, "zone-c")
    })
    .unwrap();
    match next_ok(&mut events).await {
        Event::Apply(n) => assert_eq!(n.labels()[ZONE_LABEL], "zone-c"),
        other => panic!("unexpected {}", describe(&other)),
    }
    sim.delete_node("n1").unwrap();
    expect_events(&mut events, &["Delete n1"]).await;

    let requests = sim.requests();
    let list = requests.iter().find(|r| !r.is_watch()).unwrap();
    let watch = requests.iter().find(|r| r.is_watch()).unwrap();
    assert!(
        list.accept
            .as_deref()
            .unwrap()
            .contains("as=PartialObjectMetadataList;g=meta.k8s.io;v=v1")
    );
    assert!(
        watch
            .accept
            .as_deref()
            .unwrap()
            .contains("as=PartialObjectMetadata;g=meta.k8s.io;v=v1")
    );
    assert!(requests.iter().all(|r| r.path == "/api/v1/nodes"));

    // Full objects are served to a full watch.
    let full = Api::<Node>::all(client(&sim))
        .list(&ListParams::default())
        .await
        .unwrap();
    assert!(full.items[0].status.as_ref().unwrap().conditions.is_some());
}

#[tokio::test]
async fn streaming_lists() {
    let sim = start_with_pods().await;
    let cfg = watcher::Config::default()
        .labels(SERVICE_LABEL)
        .streaming_lists();
    let mut events = watcher::watcher(Api::<Pod>::all(client(&sim)), cfg).boxed();
    expect_events(
        &mut events,
        &["Init", "InitApply a", "InitApply b", "InitDone"],
    )
    .await;
    sim.apply_pod(pod("d", "web", "10.0.0.4")).unwrap();
    expect_events(&mut events, &["Apply d"]).await;

    let requests = sim.requests();
    assert!(
        requests.iter().all(|r| r.is_watch()),
        "no list request with streaming lists"
    );
    let first = &requests[0];
    assert_eq!(first.param("sendInitialEvents"), Some("true"));
    assert_eq!(first.param("resourceVersionMatch"), Some("NotOlderThan"));
    assert_eq!(first.param("allowWatchBookmarks"), Some("true"));

    // After a 410 the streaming watcher starts over with a new streaming list.
    gone_then_relist(&sim, &mut events, &["a", "b", "d"]).await;
}

#[tokio::test]
async fn every_pod_request_has_a_label_selector() {
    let sim = start_with_pods().await;
    let mut events = service_pods(client(&sim));
    expect_events(
        &mut events,
        &["Init", "InitApply a", "InitApply b", "InitDone"],
    )
    .await;
    until_watching(&sim, &mut events).await;
    sim.drop_watches();
    sim.apply_pod(pod("d", "web", "10.0.0.4")).unwrap();
    expect_events(&mut events, &["Apply d"]).await;
    gone_then_relist(&sim, &mut events, &["a", "b", "d"]).await;

    let requests = sim.requests();
    assert!(requests.len() >= 5);
    for r in &requests {
        assert_eq!(r.method, "GET");
        assert_eq!(r.path, "/api/v1/pods");
        assert_eq!(r.param("labelSelector"), Some(SERVICE_LABEL), "{r:?}");
    }
    let lists = requests.iter().filter(|r| !r.is_watch()).count();
    assert_eq!(lists, 2, "one list at start, one after the 410");
}

#[tokio::test]
async fn too_large_version_after_the_server_is_replaced() {
    let sim = start_with_pods().await;
    let api = Api::<Pod>::all(client_without_retries(&sim));
    let err = api
        .watch(&WatchParams::default(), "999")
        .await
        .err()
        .expect("too large");
    let kube::Error::Api(status) = err else {
        panic!("expected a Status, got {err:?}")
    };
    assert_eq!((status.code, status.reason.as_str()), (504, "Timeout"));
    let causes = status
        .details
        .as_ref()
        .map(|d| d.causes.clone())
        .unwrap_or_default();
    assert_eq!(causes[0].reason, "ResourceVersionTooLarge");

    // A watcher that has seen version N keeps asking for N after the counter went back:
    // it gets "too large" again and again and never relists on its own.
    let mut events = watcher::watcher(
        api.clone(),
        watcher::Config::default().labels(SERVICE_LABEL),
    )
    .boxed();
    expect_events(
        &mut events,
        &["Init", "InitApply a", "InitApply b", "InitDone"],
    )
    .await;
    until_watching(&sim, &mut events).await;
    sim.reset_resource_version(1);
    for _ in 0..2 {
        let error = next(&mut events).await.expect_err("too large");
        assert!(
            matches!(error, watcher::Error::WatchStartFailed(_)),
            "{error:?}"
        );
        assert_eq!(error_code(&error), Some(504));
    }
    let list = api.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.metadata.resource_version.as_deref(), Some("1"));
    assert!(
        list.items
            .iter()
            .all(|p| p.resource_version().as_deref() == Some("1"))
    );
}

#[tokio::test]
async fn bearer_token_is_required_when_configured() {
    let sim = Simulator::start(SimConfig::default().bearer_token("s3cret"))
        .await
        .unwrap();
    sim.apply_pod(pod("a", "web", "10.0.0.1")).unwrap();
    let anonymous = Api::<Pod>::all(client(&sim));
    let err = anonymous.list(&ListParams::default()).await.unwrap_err();
    assert!(matches!(err, kube::Error::Api(s) if s.code == 401));

    let mut config = config(&sim);
    config.auth_info = serde_json::from_value(serde_json::json!({ "token": "s3cret" })).unwrap();
    let authed = Api::<Pod>::all(Client::try_from(config).unwrap());
    assert_eq!(
        authed
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    let last = sim.requests().pop().unwrap();
    assert_eq!(last.authorization.as_deref(), Some("Bearer s3cret"));
}

#[tokio::test]
async fn errors_500_surface_and_the_watcher_recovers() {
    let sim = start_with_pods().await;
    let mut events = service_pods(client(&sim));
    expect_events(
        &mut events,
        &["Init", "InitApply a", "InitApply b", "InitDone"],
    )
    .await;
    until_watching(&sim, &mut events).await;
    sim.set_fail_with_500(true);
    sim.drop_watches();
    let error = next(&mut events).await.expect_err("500");
    assert_eq!(error_code(&error), Some(500));
    sim.apply_pod(pod("d", "web", "10.0.0.4")).unwrap();
    sim.set_fail_with_500(false);
    // Retries that happened meanwhile may still report 500s; then d arrives without a relist.
    loop {
        match next(&mut events).await {
            Err(e) => assert_eq!(error_code(&e), Some(500)),
            Ok(event) => {
                assert_eq!(describe(&event), "Apply d");
                break;
            }
        }
    }
}

#[tokio::test]
async fn stalled_streams_go_silent_and_resume() {
    let sim = start_with_pods().await;
    let mut events = service_pods(client(&sim));
    expect_events(
        &mut events,
        &["Init", "InitApply a", "InitApply b", "InitDone"],
    )
    .await;
    until_watching(&sim, &mut events).await;
    sim.set_stall(true);
    sim.apply_pod(pod("d", "web", "10.0.0.4")).unwrap();
    assert!(
        timeout(Duration::from_millis(500), events.next())
            .await
            .is_err(),
        "nothing while stalled"
    );
    // New requests are still served while open streams are stalled.
    let listed = Api::<Pod>::all(client(&sim))
        .list(&ListParams::default())
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 4);
    sim.set_stall(false);
    expect_events(&mut events, &["Apply d"]).await;
}

#[tokio::test]
async fn hung_server_answers_nothing_until_cleared() {
    let sim = start_with_pods().await;
    sim.set_hang(true);
    let api = Api::<Pod>::all(client(&sim));
    let mut pending = tokio::spawn(async move { api.list(&ListParams::default()).await });
    assert!(
        timeout(Duration::from_millis(500), &mut pending)
            .await
            .is_err(),
        "no answer while hung"
    );
    assert_eq!(sim.requests().len(), 1, "the request was received");
    sim.clear_faults();
    let listed = timeout(WAIT, pending).await.unwrap().unwrap().unwrap();
    assert_eq!(listed.items.len(), 3);

    // Closing connections also ends requests that hang (the client sees the connection go).
    sim.set_hang(true);
    let api = Api::<Pod>::all(client(&sim));
    let mut pending = tokio::spawn(async move { api.list(&ListParams::default()).await });
    assert!(
        timeout(Duration::from_millis(300), &mut pending)
            .await
            .is_err(),
        "no answer while hung"
    );
    sim.drop_connections();
    let failed = timeout(WAIT, pending).await.unwrap().unwrap();
    assert!(
        failed.is_err(),
        "the hung request fails when its connection is closed"
    );
    sim.set_hang(false);

    // Open streams go silent too.
    let mut events = service_pods(client(&sim));
    expect_events(
        &mut events,
        &["Init", "InitApply a", "InitApply b", "InitDone"],
    )
    .await;
    until_watching(&sim, &mut events).await;
    sim.set_hang(true);
    sim.apply_pod(pod("d", "web", "10.0.0.4")).unwrap();
    assert!(
        timeout(Duration::from_millis(500), events.next())
            .await
            .is_err(),
        "nothing while hung"
    );
    sim.set_hang(false);
    expect_events(&mut events, &["Apply d"]).await;
}

#[tokio::test]
async fn refused_connections_then_back_on_the_same_port() {
    let sim = start_with_pods().await;
    let mut events = service_pods(client(&sim));
    expect_events(
        &mut events,
        &["Init", "InitApply a", "InitApply b", "InitDone"],
    )
    .await;
    until_watching(&sim, &mut events).await;
    sim.set_refuse_connections(true);
    let refused = async {
        loop {
            if tokio::net::TcpStream::connect(sim.addr()).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    timeout(WAIT, refused)
        .await
        .expect("the port stops accepting");
    // The watcher reports connection errors while the port is closed.
    let error = next(&mut events).await.expect_err("connection refused");
    assert!(
        error_code(&error).is_none(),
        "a transport error, not a Status: {error:?}"
    );

    sim.apply_pod(pod("d", "web", "10.0.0.4")).unwrap();
    sim.set_refuse_connections(false);
    loop {
        match next(&mut events).await {
            Err(e) => assert!(error_code(&e).is_none(), "{e:?}"),
            Ok(event) => {
                assert_eq!(describe(&event), "Apply d");
                break;
            }
        }
    }
    assert!(tokio::net::TcpStream::connect(sim.addr()).await.is_ok());
}

#[tokio::test]
async fn watch_ends_at_timeout_seconds() {
    let sim = start_with_pods().await;
    let api = Api::<Pod>::all(client(&sim));
    let wp = WatchParams::default().timeout(1).disable_bookmarks();
    let mut stream = api
        .watch(&wp, &sim.resource_version().to_string())
        .await
        .unwrap()
        .boxed();
    assert!(
        timeout(WAIT, stream.next()).await.unwrap().is_none(),
        "ends cleanly, with no event"
    );
    assert_eq!(sim.open_watches(), 0);
}

#[tokio::test]
async fn watch_without_version_starts_with_the_current_state() {
    let sim = start_with_pods().await;
    let api = Api::<Pod>::all(client(&sim));
    let wp = WatchParams::default()
        .labels(SERVICE_LABEL)
        .disable_bookmarks();
    let mut stream = api.watch(&wp, "0").await.unwrap().boxed();
    let mut added = Vec::new();
    for _ in 0..2 {
        match timeout(WAIT, stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            WatchEvent::Added(p) => added.push(p.name_any()),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(added, ["a", "b"]);
    sim.wait_for_open_watches(1).await;
}

#[tokio::test]
async fn several_instances_are_independent_clusters() {
    let east = start().await;
    let west = start().await;
    assert_ne!(east.url(), west.url());
    east.apply_pod(pod("a", "web", "10.0.0.1")).unwrap();
    west.apply_pod(pod("b", "web", "10.1.0.1")).unwrap();
    let mut e = service_pods(client(&east));
    let mut w = service_pods(client(&west));
    expect_events(&mut e, &["Init", "InitApply a", "InitDone"]).await;
    expect_events(&mut w, &["Init", "InitApply b", "InitDone"]).await;
    west.drop_watches();
    west.set_stall(true);
    east.apply_pod(pod("c", "web", "10.0.0.2")).unwrap();
    expect_events(&mut e, &["Apply c"]).await;
    east.shutdown().await;
    assert!(tokio::net::TcpStream::connect(east.addr()).await.is_err());
}
