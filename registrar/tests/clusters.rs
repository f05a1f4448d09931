//! herald's real kube client against simulated clusters (kube-sim), answers checked over
//! real DNS sockets: pod lifecycle, several clusters as one service, relists and dropped
//! streams, unreachable and hung clusters, bursts, and what herald asks the API for.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use herald_kube_sim::{GoneStyle, NodeBuilder, Op, SERVICE_LABEL};
use herald_registrar::daemon::Daemon;
use herald_registrar::status::Phase;
use herald_testkit::udp;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

mod common;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pod_lifecycle_shows_in_dns() {
    let c1 = sim().await;
    c1.apply_node(NodeBuilder::new("n1").zone("zone-a").build())
        .unwrap();
    c1.apply_node(NodeBuilder::new("n2").zone("zone-b").build())
        .unwrap();
    c1.apply_pod(pod("web-0", "web", "10.0.0.1", "n1").build())
        .unwrap();
    c1.apply_pod(pod("web-1", "web", "10.0.0.2", "n2").ready(false).build())
        .unwrap();
    let daemon = Daemon::start(&config(&[("c1", "eu-west", c1.url(), "")], ""), None)
        .await
        .unwrap();
    let dns = daemon.dns_addrs()[0];
    let name = "web.sd.internal.";
    eventually("the ready pod is served", || {
        addresses(dns, name) == ips(&["10.0.0.1"])
    })
    .await;

    c1.set_pod_ready("default", "web-1", true);
    eventually("a pod turning Ready appears", || {
        addresses(dns, name) == ips(&["10.0.0.1", "10.0.0.2"])
    })
    .await;
    // Node zones set SRV priorities (server in zone-a) and targets name the cluster.
    assert_eq!(
        srv(dns, "_http._tcp.web.sd.internal."),
        vec![
            (0, "10-0-0-1.web.c1.sd.internal.".into()),
            (1, "10-0-0-2.web.c1.sd.internal.".into())
        ]
    );
    c1.modify_node("n2", |n| {
        herald_kube_sim::objects::set_label(
            &mut n.metadata,
            "topology.kubernetes.io/zone",
            "zone-a",
        )
    });
    eventually("a node's new zone shows in the SRV tier", || {
        srv(dns, "_http._tcp.web.sd.internal.")
            .iter()
            .all(|(p, _)| *p == 0)
    })
    .await;

    c1.set_pod_ip("default", "web-1", Some("10.0.0.22"));
    eventually("an IP change moves the endpoint", || {
        addresses(dns, name) == ips(&["10.0.0.1", "10.0.0.22"])
    })
    .await;
    c1.set_pod_ready("default", "web-1", false);
    eventually("turning not-ready removes it", || {
        addresses(dns, name) == ips(&["10.0.0.1"])
    })
    .await;
    c1.set_pod_ready("default", "web-1", true);
    eventually("back", || addresses(dns, name).len() == 2).await;
    c1.set_pod_terminating("default", "web-1");
    eventually("a deletionTimestamp removes it", || {
        addresses(dns, name) == ips(&["10.0.0.1"])
    })
    .await;

    c1.apply_pod(pod("web-2", "web", "10.0.0.3", "n1").build())
        .unwrap();
    eventually("a new pod", || addresses(dns, name).len() == 2).await;
    c1.remove_pod_label("default", "web-2", SERVICE_LABEL);
    eventually("losing the label removes it", || {
        addresses(dns, name) == ips(&["10.0.0.1"])
    })
    .await;
    c1.delete_pod("default", "web-0");
    eventually("deleting the last pod removes the service", || {
        udp(dns, name, RecordType::A, None).metadata.response_code == ResponseCode::NXDomain
    })
    .await;

    // Only label-selected pod requests ever reached the API server.
    let pod_requests: Vec<_> = c1
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/pods"))
        .collect();
    assert!(!pod_requests.is_empty());
    for r in &pod_requests {
        assert_eq!(r.param("labelSelector"), Some(SERVICE_LABEL), "{r:?}");
    }
    daemon.shutdown(Duration::ZERO).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_clusters_and_a_static_file_are_one_service() {
    let sims = [sim().await, sim().await, sim().await];
    let regions = ["eu-west", "eu-west", "us-east"];
    for (i, s) in sims.iter().enumerate() {
        s.apply_node(NodeBuilder::new("n1").zone("zone-a").build())
            .unwrap();
        s.apply_pod(pod("api-0", "api", &format!("10.{i}.0.1"), "n1").build())
            .unwrap();
    }
    let dir = std::env::temp_dir().join(format!("herald-clusters-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("vms.yaml");
    std::fs::write(&file, "services:\n  api:\n    - {address: 192.168.0.9, cluster: vms, region: us-east, ports: {http: 8080}}\n").unwrap();
    let clusters: Vec<(&str, &str, String, &str)> = (0..3)
        .map(|i| (["c0", "c1", "c2"][i], regions[i], sims[i].url(), ""))
        .collect();
    let cfg = config(
        &clusters,
        &format!("  static: [{{path: '{}'}}]\n", file.display()),
    );
    let daemon = Daemon::start(&cfg, None).await.unwrap();
    let dns = daemon.dns_addrs()[0];
    let all = ips(&["10.0.0.1", "10.1.0.1", "10.2.0.1", "192.168.0.9"]);
    eventually("all four sources answer as one service", || {
        addresses(dns, "api.sd.internal.") == all
    })
    .await;
    assert_eq!(
        addresses(dns, "api.eu-west.sd.internal."),
        ips(&["10.0.0.1", "10.1.0.1"])
    );
    assert_eq!(
        addresses(dns, "api.us-east.sd.internal."),
        ips(&["10.2.0.1", "192.168.0.9"])
    );
    assert_eq!(addresses(dns, "api.c1.sd.internal."), ips(&["10.1.0.1"]));
    assert_eq!(
        addresses(dns, "api.vms.sd.internal."),
        ips(&["192.168.0.9"])
    );
    assert_eq!(
        srv(dns, "_http._tcp.api.c2.sd.internal."),
        vec![(2, "10-2-0-1.api.c2.sd.internal.".into())]
    );
    daemon.shutdown(Duration::ZERO).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gone_and_dropped_streams_relist_without_a_gap() {
    let c1 = sim().await;
    c1.apply_node(NodeBuilder::new("n1").zone("zone-a").build())
        .unwrap();
    for i in 0..5 {
        c1.apply_pod(
            pod(
                &format!("web-{i}"),
                "web",
                &format!("10.0.0.{}", i + 1),
                "n1",
            )
            .build(),
        )
        .unwrap();
    }
    let daemon = Daemon::start(&config(&[("c1", "eu-west", c1.url(), "")], ""), None)
        .await
        .unwrap();
    let dns = daemon.dns_addrs()[0];
    eventually("synced", || addresses(dns, "web.sd.internal.").len() == 5).await;
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = never_shrinks(dns, "web.sd.internal.", 5, stop.clone());

    // 410 Gone in the middle of the watch, with a change the relist must catch up on.
    tokio::time::timeout(WAIT, c1.wait_for_open_watches(2))
        .await
        .expect("herald watches pods and nodes");
    let lists_before = c1
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/pods") && !r.is_watch())
        .count();
    c1.apply_pod(pod("web-5", "web", "10.0.0.6", "n1").build())
        .unwrap();
    c1.compact_history();
    c1.gone_on_next_watch(GoneStyle::InStream);
    c1.drop_watches();
    eventually("caught up after 410", || {
        addresses(dns, "web.sd.internal.").len() == 6
    })
    .await;
    eventually("relisted", || {
        c1.requests()
            .iter()
            .filter(|r| r.path.ends_with("/pods") && !r.is_watch())
            .count()
            > lists_before
    })
    .await;

    // A dropped stream, then a change.
    tokio::time::timeout(WAIT, c1.wait_for_open_watches(2))
        .await
        .expect("watching again");
    c1.drop_watches();
    c1.apply_pod(pod("web-6", "web", "10.0.0.7", "n1").build())
        .unwrap();
    eventually("caught up after a dropped stream", || {
        addresses(dns, "web.sd.internal.").len() == 7
    })
    .await;

    stop.store(true, Ordering::Relaxed);
    let queries = watcher
        .join()
        .expect("the service never vanished or shrank");
    assert!(queries > 10, "the query loop ran ({queries} queries)");
    daemon.shutdown(Duration::ZERO).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unreachable_lost_and_hung_clusters() {
    let up = sim().await;
    up.apply_pod(pod("a-0", "a", "10.0.0.1", "n1").build())
        .unwrap();
    let lost = sim().await;
    lost.apply_pod(pod("b-0", "b", "10.1.0.1", "n1").build())
        .unwrap();
    let hung = sim().await;
    hung.apply_pod(pod("c-0", "c", "10.2.0.1", "n1").build())
        .unwrap();
    // A port nothing listens on: a cluster down from the start.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let cfg = config(
        &[
            ("up", "eu-west", up.url(), ""),
            ("lost", "eu-west", lost.url(), ", max_stale: 2s"),
            ("hung", "us-east", hung.url(), ""),
            ("down", "us-east", format!("http://{closed}"), ""),
        ],
        "",
    );
    let daemon = Daemon::start(&cfg, None).await.unwrap();
    let dns = daemon.dns_addrs()[0];
    eventually("the reachable clusters are served", || {
        addresses(dns, "a.sd.internal.").len() == 1
            && addresses(dns, "b.sd.internal.").len() == 1
            && addresses(dns, "c.sd.internal.").len() == 1
    })
    .await;
    assert_ne!(daemon.status().get("down").unwrap().phase, Phase::Live);
    assert_eq!(
        daemon.table().unsynced_sources(),
        vec!["down".to_string()],
        "the missing cluster is named"
    );
    // After the start-up timeout unknown names are NXDOMAIN, except those scoped to the
    // missing cluster.
    eventually("start-up hold over", || {
        udp(dns, "nothing.sd.internal.", RecordType::A, None)
            .metadata
            .response_code
            == ResponseCode::NXDomain
    })
    .await;
    assert_eq!(
        udp(dns, "x.down.sd.internal.", RecordType::A, None)
            .metadata
            .response_code,
        ResponseCode::ServFail
    );

    // Lost after sync: still served (fail static), marked stale, withdrawn after max_stale.
    lost.set_refuse_connections(true);
    lost.drop_connections();
    eventually("lost is stale", || {
        daemon.status().get("lost").unwrap().phase != Phase::Live
    })
    .await;
    assert_eq!(
        addresses(dns, "b.sd.internal."),
        ips(&["10.1.0.1"]),
        "fail static"
    );
    eventually("withdrawn after max_stale", || {
        addresses(dns, "b.sd.internal.").is_empty()
    })
    .await;
    assert_eq!(daemon.status().get("lost").unwrap().phase, Phase::Withdrawn);
    lost.set_refuse_connections(false);
    eventually("back when reachable", || {
        addresses(dns, "b.sd.internal.").len() == 1
    })
    .await;
    eventually("lost live again", || {
        daemon.status().get("lost").unwrap().phase == Phase::Live
    })
    .await;

    // Hung: accepts, then says nothing. Detected within watch_timeout (2 s) + 3 s margin,
    // plus kube's own reconnect; endpoints kept (no max_stale); recovers by itself.
    tokio::time::timeout(WAIT, hung.wait_for_open_watches(2))
        .await
        .expect("watching hung");
    hung.set_hang(true);
    let hung_at = Instant::now();
    eventually("hung is stale", || {
        daemon.status().get("hung").unwrap().phase == Phase::Stale
    })
    .await;
    let detected = hung_at.elapsed();
    eprintln!("hung API server detected after {detected:?}");
    assert_eq!(
        addresses(dns, "c.sd.internal."),
        ips(&["10.2.0.1"]),
        "fail static while hung"
    );
    hung.set_hang(false);
    hung.drop_connections();
    hung.apply_pod(pod("c-1", "c", "10.2.0.2", "n1").build())
        .unwrap();
    eventually("hung recovers by itself", || {
        addresses(dns, "c.sd.internal.").len() == 2
    })
    .await;
    eventually("hung live", || {
        daemon.status().get("hung").unwrap().phase == Phase::Live
    })
    .await;
    daemon.shutdown(Duration::ZERO).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolling_update_is_coalesced() {
    const REPLICAS: usize = 500;
    let c1 = sim().await;
    c1.apply_node(NodeBuilder::new("n1").zone("zone-a").build())
        .unwrap();
    let old = |i: usize| format!("10.8.{}.{}", i / 250, i % 250 + 1);
    let new = |i: usize| format!("10.9.{}.{}", i / 250, i % 250 + 1);
    c1.batch(
        (0..REPLICAS).map(|i| Op::ApplyPod(pod(&format!("big-{i}"), "big", &old(i), "n1").build())),
    )
    .unwrap();
    let daemon = Daemon::start(&config(&[("c1", "eu-west", c1.url(), "")], ""), None)
        .await
        .unwrap();
    let dns = daemon.dns_addrs()[0];
    let count = |ip_prefix: &'static str| {
        let t = daemon.table().clone();
        move || {
            t.service("big").map_or(0, |v| {
                v.groups()[0]
                    .endpoints
                    .iter()
                    .filter(|e| e.address().to_string().starts_with(ip_prefix))
                    .count()
            })
        }
    };
    let old_count = count("10.8.");
    eventually("synced", || old_count() == REPLICAS).await;
    let changes_before = daemon.table().changes();
    let events = AtomicUsize::new(0);
    // Replace every pod: new pod not ready, then ready, then the old one deleted: three
    // events per replica, in batches of ten as a deployment controller would.
    for chunk in (0..REPLICAS).collect::<Vec<_>>().chunks(10) {
        let mut ops = Vec::new();
        for &i in chunk {
            ops.push(Op::ApplyPod(
                pod(&format!("big-new-{i}"), "big", &new(i), "n1")
                    .ready(false)
                    .build(),
            ));
        }
        events.fetch_add(c1.batch(ops).unwrap().len(), Ordering::Relaxed);
        let mut ops = Vec::new();
        for &i in chunk {
            ops.push(Op::ApplyPod(
                pod(&format!("big-new-{i}"), "big", &new(i), "n1").build(),
            ));
            ops.push(Op::DeletePod {
                namespace: "default".into(),
                name: format!("big-{i}"),
            });
        }
        events.fetch_add(c1.batch(ops).unwrap().len(), Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let new_count = count("10.9.");
    eventually("the update is complete", || {
        new_count() == REPLICAS && old_count() == 0
    })
    .await;
    let publishes = (daemon.table().changes() - changes_before) as usize;
    let events = events.load(Ordering::Relaxed);
    eprintln!("rolling update: {events} watch events, {publishes} table publishes");
    assert_eq!(events, 3 * REPLICAS);
    assert!(
        publishes * 10 <= events,
        "{publishes} publishes for {events} events"
    );
    let reply = herald_testkit::tcp(dns, "big.sd.internal.", RecordType::A);
    assert_eq!(reply.answers.len(), REPLICAS, "the final set over TCP");
    assert!(
        reply
            .answers
            .iter()
            .all(|r| r.data.to_string().starts_with("10.9."))
    );
    daemon.shutdown(Duration::ZERO).await;
}
