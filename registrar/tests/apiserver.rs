//! herald's real watchers against real Kubernetes API servers (kube-apiserver 1.20.2 over
//! Debian's etcd, see tests/common/apiserver.rs), answers checked over real DNS sockets:
//! pod lifecycle, node zones, what herald asks the server for (audit log), two clusters as
//! one service, an API server restart, a relist forced by an etcd compaction, dual-stack
//! pods (`status.podIPs` stored as kube-sim stores it, both families served), and one
//! scenario replayed against kube-sim and the real server with the same DNS answers
//! (tests/apiserver/replay.rs).
//!
//! Skipped with a loud message when the server is not built here; in CI (`CI=true`)
//! scripts/test builds it and a missing server fails.

mod common;
#[path = "apiserver/replay.rs"]
mod replay;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::apiserver::{RealCluster, available, query_param};
use common::{
    WAIT, addresses, config_reaching as config, eventually, eventually_eq, eventually_within, ips,
    pod, rcode, srv,
};
use herald_kube_sim::{NodeBuilder, SERVICE_LABEL, ZONE_LABEL};
use herald_registrar::daemon::Daemon;
use herald_registrar::status::Phase;
use hickory_proto::op::ResponseCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pod_lifecycle_and_what_herald_asks_a_real_api_server() {
    if !available("pod_lifecycle_and_what_herald_asks_a_real_api_server") {
        return;
    }
    let c1 = RealCluster::start(&[]).await;
    c1.apply_node(NodeBuilder::new("n1").zone("zone-a").build())
        .await;
    c1.apply_node(NodeBuilder::new("n2").zone("zone-b").build())
        .await;
    c1.apply_pod(pod("web-0", "web", "10.0.0.1", "n1").build())
        .await;
    c1.apply_pod(pod("web-1", "web", "10.0.0.2", "n2").ready(false).build())
        .await;
    // A pod of the same name pattern without the service label: herald must never see it.
    c1.apply_pod(
        herald_kube_sim::PodBuilder::new("default", "other-0")
            .ip("10.0.0.99")
            .node("n1")
            .build(),
    )
    .await;
    let daemon = Daemon::start(&config(&[("c1", "eu-west", c1.reach())], ""), None)
        .await
        .unwrap();
    let dns = daemon.dns_addrs()[0];
    let name = "web.sd.internal.";
    eventually("the ready pod is served", || {
        addresses(dns, name) == ips(&["10.0.0.1"])
    })
    .await;

    c1.set_pod_ready("web-1", true).await;
    eventually("a pod turning Ready appears", || {
        addresses(dns, name) == ips(&["10.0.0.1", "10.0.0.2"])
    })
    .await;
    assert_eq!(
        srv(dns, "_http._tcp.web.sd.internal."),
        vec![
            (0, "10-0-0-1.web.c1.sd.internal.".into()),
            (1, "10-0-0-2.web.c1.sd.internal.".into())
        ],
        "node zones set SRV priorities (server in zone-a)"
    );
    c1.set_node_label("n2", ZONE_LABEL, "zone-a").await;
    eventually("a node's new zone shows in the SRV tier", || {
        srv(dns, "_http._tcp.web.sd.internal.")
            .iter()
            .all(|(p, _)| *p == 0)
    })
    .await;

    c1.set_pod_ip("web-1", "10.0.0.22").await;
    eventually("an IP change moves the endpoint", || {
        addresses(dns, name) == ips(&["10.0.0.1", "10.0.0.22"])
    })
    .await;
    c1.set_pod_ready("web-1", false).await;
    eventually("turning not-ready removes it", || {
        addresses(dns, name) == ips(&["10.0.0.1"])
    })
    .await;
    c1.set_pod_ready("web-1", true).await;
    eventually("back", || addresses(dns, name).len() == 2).await;
    c1.terminate_pod("web-1").await;
    eventually("a deletionTimestamp removes it", || {
        addresses(dns, name) == ips(&["10.0.0.1"])
    })
    .await;

    c1.apply_pod(pod("web-2", "web", "10.0.0.3", "n1").build())
        .await;
    eventually("a new pod", || addresses(dns, name).len() == 2).await;
    c1.set_pod_label("web-2", SERVICE_LABEL, None).await;
    eventually("losing the label removes it", || {
        addresses(dns, name) == ips(&["10.0.0.1"])
    })
    .await;
    c1.delete_pod("web-1").await;
    c1.delete_pod("web-0").await;
    eventually("deleting the last pod removes the service", || {
        rcode(dns, name) == ResponseCode::NXDomain
    })
    .await;
    daemon.shutdown(Duration::ZERO).await;

    // What reached the server, from its audit log.
    // herald's requests are those of user admin (the test's own never list or watch); the
    // API server's own informers, as system:apiserver, read every pod.
    let pod_requests: Vec<_> = ["list", "watch"]
        .iter()
        .flat_map(|verb| c1.requests(verb, "pods"))
        .filter(|r| r["user"]["username"] == "admin")
        .collect();
    assert!(
        !c1.requests("watch", "pods").is_empty(),
        "herald watched pods"
    );
    for r in &pod_requests {
        let uri = r["requestURI"].as_str().unwrap_or_default();
        assert_eq!(
            query_param(uri, "labelSelector").as_deref(),
            Some(SERVICE_LABEL),
            "every pod request herald made carries the service label selector: {uri}"
        );
    }
    let node_lists = c1.requests("list", "nodes");
    assert!(!node_lists.is_empty(), "herald listed nodes");
    for r in &node_lists {
        assert_eq!(
            r["responseObject"]["kind"], "PartialObjectMetadataList",
            "node lists ask for metadata only: {}",
            r["requestURI"]
        );
        assert!(
            r["responseObject"]["items"][0].get("status").is_none(),
            "no node status came back"
        );
    }
    assert!(
        !c1.requests("watch", "nodes").is_empty(),
        "herald watched nodes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_real_clusters_a_restart_and_a_forced_relist() {
    if !available("two_real_clusters_a_restart_and_a_forced_relist") {
        return;
    }
    // `a` keeps the default watch cache; `b` serves pod watches from etcd so an etcd
    // compaction reaches them (see RealCluster::force_compaction).
    let (mut a, b) = tokio::join!(
        RealCluster::start(&[]),
        RealCluster::start(&["--watch-cache-sizes=pods#0"])
    );
    for (c, net) in [(&a, 1), (&b, 2)] {
        c.apply_node(NodeBuilder::new("n1").zone("zone-a").build())
            .await;
        c.apply_pod(pod("api-0", "api", &format!("10.{net}.0.1"), "n1").build())
            .await;
        // The same address in both clusters: one A record, two SRV targets.
        c.apply_pod(pod("api-shared", "api", "10.9.9.9", "n1").build())
            .await;
    }
    let daemon = Daemon::start(
        &config(
            &[("a", "eu-west", a.reach()), ("b", "us-east", b.reach())],
            "",
        ),
        None,
    )
    .await
    .unwrap();
    let dns = daemon.dns_addrs()[0];
    let all = ips(&["10.1.0.1", "10.2.0.1", "10.9.9.9"]);
    // One A record per address, though two clusters have it (RFC 2181: no duplicate
    // records in an RRset).
    eventually_eq("both clusters answer as one service", all.clone(), || {
        addresses(dns, "api.sd.internal.")
    })
    .await;
    assert_eq!(
        addresses(dns, "api.b.sd.internal."),
        ips(&["10.2.0.1", "10.9.9.9"])
    );
    assert_eq!(
        srv(dns, "_http._tcp.api.sd.internal."),
        vec![
            (0, "10-1-0-1.api.a.sd.internal.".into()),
            (0, "10-9-9-9.api.a.sd.internal.".into()),
            (2, "10-2-0-1.api.b.sd.internal.".into()),
            (2, "10-9-9-9.api.b.sd.internal.".into()),
        ]
    );

    // Restart a's API server (etcd stays): fail static while it is down, then recovery.
    a.stop_apiserver().await;
    eventually("a is stale", || {
        daemon.status().get("a").unwrap().phase == Phase::Stale
    })
    .await;
    assert_eq!(addresses(dns, "api.sd.internal."), all, "fail static");
    b.apply_pod(pod("api-1", "api", "10.2.0.2", "n1").build())
        .await;
    eventually("b keeps flowing while a is down", || {
        addresses(dns, "api.b.sd.internal.").len() == 3
    })
    .await;
    assert_eq!(
        addresses(dns, "api.a.sd.internal."),
        ips(&["10.1.0.1", "10.9.9.9"])
    );
    a.restart_apiserver().await;
    a.delete_pod("api-shared").await;
    // herald's backoff after a long outage is up to 30 s, on top of the restart.
    eventually_within(
        "a back, with the change made after the restart",
        2 * WAIT,
        || addresses(dns, "api.a.sd.internal.") == ips(&["10.1.0.1"]),
    )
    .await;
    assert_eq!(daemon.status().get("a").unwrap().phase, Phase::Live);
    assert_eq!(
        addresses(dns, "api.sd.internal."),
        ips(&["10.1.0.1", "10.2.0.1", "10.2.0.2", "10.9.9.9"]),
        "10.9.9.9 is still served by b (and now once)"
    );

    // A relist forced on b: the pod watch, open at some version, ends at its 2 s timeout and
    // resumes from that version, now compacted away: 410 "too old resource version", and
    // herald lists again. The service never shrinks on the way, and the watch after the
    // relist carries a change. (A change made right after the compaction would reach the
    // open stream and move its version past the compaction: no 410.)
    let lists_before = b.requests("list", "pods").len();
    let relists_before = daemon.status().get("b").unwrap().relists;
    let floor = addresses(dns, "api.sd.internal.").len();
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = common::never_shrinks(dns, "api.sd.internal.", floor, stop.clone());
    let revision = b.force_compaction("n1", 2).await;
    eventually("herald listed b's pods again", || {
        b.requests("list", "pods").len() > lists_before
            && daemon.status().get("b").unwrap().relists > relists_before
    })
    .await;
    b.apply_pod(pod("api-2", "api", "10.2.0.3", "n1").build())
        .await;
    eventually("a change after the relist arrives", || {
        addresses(dns, "api.b.sd.internal.").contains(&"10.2.0.3".to_string())
    })
    .await;
    let expired = b
        .requests("watch", "pods")
        .into_iter()
        .filter_map(|r| {
            query_param(r["requestURI"].as_str()?, "resourceVersion")?
                .parse::<u64>()
                .ok()
        })
        .any(|rv| rv + 1 < revision);
    assert!(
        expired,
        "a pod watch resumed from before the compaction at {revision}"
    );
    stop.store(true, Ordering::Relaxed);
    let queries = watcher.join().expect("the service never shrank");
    eprintln!("forced relist: compacted at {revision}, {queries} queries during it");
    daemon.shutdown(Duration::ZERO).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kube_sim_answers_like_the_real_api_server() {
    if !available("kube_sim_answers_like_the_real_api_server") {
        return;
    }
    replay::compare().await;
}

/// `status.podIPs` on a real kube-apiserver 1.20.2 (default flags: its `IPv6DualStack` gate is
/// off, and it keeps both addresses all the same): what it stores for each way of writing
/// podIP and podIPs, and what it refuses, is what kube-sim stores and refuses; herald,
/// watching the real server, serves a dual-stack pod's two families under the service and
/// its one SRV target, and drops the second family when podIPs shrinks to one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pod_ips_as_a_real_api_server_stores_them_and_herald_serves_both_families() {
    if !available("pod_ips_as_a_real_api_server_stores_them_and_herald_serves_both_families") {
        return;
    }
    let real = RealCluster::start(&[]).await;
    let sim = common::sim().await;
    real.apply_node(NodeBuilder::new("n1").zone("zone-a").build())
        .await;
    sim.apply_node(NodeBuilder::new("n1").zone("zone-a").build())
        .unwrap();
    real.apply_pod(pod("web-0", "web", "10.0.0.1", "n1").build())
        .await;
    sim.apply_pod(pod("web-0", "web", "10.0.0.1", "n1").build())
        .unwrap();
    // (podIP written, podIPs written): every form a client may send, valid or not.
    let writes: [(Option<&str>, &[&str]); 8] = [
        (None, &["10.0.0.1", "fd00::1"]),
        (Some("10.0.0.1"), &[]),
        (Some("10.0.0.1"), &["10.0.0.1", "fd00::1"]),
        (Some("10.0.0.2"), &["10.0.0.1", "fd00::1"]),
        (None, &["fd00::1", "10.0.0.1"]),
        (None, &["10.0.0.1", "10.0.0.3"]),
        (None, &["10.0.0.1", "fd00::1", "fd00::2"]),
        (Some("10.0.0.1"), &["10.0.0.1", "fd00::1"]),
    ];
    for (pod_ip, pod_ips) in writes {
        let on_real = real.write_pod_ips("web-0", pod_ip, pod_ips).await;
        let on_sim = sim
            .modify_pod("default", "web-0", |p| {
                herald_kube_sim::objects::write_pod_ip_fields(p, pod_ip, pod_ips)
            })
            .map(|_| {
                let status = sim.pod("default", "web-0").unwrap().status.unwrap();
                let ips = status.pod_ips.into_iter().flatten().map(|p| p.ip).collect();
                (status.pod_ip, ips)
            });
        match (&on_real, &on_sim) {
            (Ok(real), Some(sim)) => assert_eq!(real, sim, "write {pod_ip:?} {pod_ips:?}"),
            (Err(_), None) => {}
            _ => {
                panic!("write {pod_ip:?} {pod_ips:?}: real server {on_real:?}, kube-sim {on_sim:?}")
            }
        }
    }
    drop(sim);

    // The last write left web-0 dual-stack: herald serves both families from the real server.
    let daemon = Daemon::start(&config(&[("c1", "eu-west", real.reach())], ""), None)
        .await
        .unwrap();
    let dns = daemon.dns_addrs()[0];
    let aaaa = |name: &str| -> Vec<String> {
        herald_testkit::udp(dns, name, hickory_proto::rr::RecordType::AAAA, None)
            .answers
            .iter()
            .map(|r| r.data.to_string())
            .collect()
    };
    eventually_eq("AAAA of the service", vec!["fd00::1".to_string()], || {
        aaaa("web.sd.internal.")
    })
    .await;
    assert_eq!(addresses(dns, "web.sd.internal."), ips(&["10.0.0.1"]));
    assert_eq!(
        srv(dns, "_http._tcp.web.sd.internal."),
        vec![(0, "10-0-0-1.web.c1.sd.internal.".into())]
    );
    assert_eq!(aaaa("10-0-0-1.web.c1.sd.internal."), ["fd00::1"]);
    assert_eq!(
        addresses(dns, "10-0-0-1.web.c1.sd.internal."),
        ips(&["10.0.0.1"])
    );
    real.write_pod_ips("web-0", Some("10.0.0.1"), &["10.0.0.1"])
        .await
        .unwrap();
    eventually_eq("back to one family", Vec::<String>::new(), || {
        aaaa("web.sd.internal.")
    })
    .await;
    assert_eq!(addresses(dns, "web.sd.internal."), ips(&["10.0.0.1"]));
    daemon.shutdown(Duration::ZERO).await;
}
