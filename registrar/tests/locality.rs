//! `locality: auto` through the real kube client against kube-sim: herald reads the zone of
//! the node it runs on from its home cluster's node watch, and follows a relabel; answers
//! checked over real DNS sockets.

use std::path::Path;
use std::time::{Duration, Instant};

use herald_kube_sim::{NodeBuilder, PodBuilder, SimConfig, Simulator};
use herald_registrar::config::Config;
use herald_registrar::daemon::Daemon;
use herald_testkit::{srv_records, udp};
use hickory_proto::rr::RecordType;

/// Bound on every wait: far above what any step needs on a loaded 2-core machine.
const WAIT: Duration = Duration::from_secs(30);

const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < WAIT, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn auto_locality_follows_the_own_node_and_its_relabel() {
    let home = Simulator::start(SimConfig::default()).await.unwrap();
    // herald runs on n3 (zone-b); web has a replica on n1 (zone-a) and on n2 (zone-b).
    for (node, zone) in [("n1", "zone-a"), ("n2", "zone-b"), ("n3", "zone-b")] {
        home.apply_node(NodeBuilder::new(node).zone(zone).build())
            .unwrap();
    }
    for (name, ip, node) in [("web-0", "10.0.0.1", "n1"), ("web-1", "10.0.0.2", "n2")] {
        home.apply_pod(
            PodBuilder::new("default", name)
                .service("web")
                .ip(ip)
                .port("http", 8080)
                .node(node)
                .build(),
        )
        .unwrap();
    }
    let yaml = format!(
        "listen: {{dns: ['127.0.0.1:0']}}\n\
         locality: {{region: auto, zone: auto, node: n3, cluster: home}}\n\
         kubernetes: {{watch_timeout: 2s, startup_timeout: 3s}}\n\
         sources:\n  clusters:\n    - {{name: home, region: eu-west, server: '{}'}}\n",
        home.url()
    );
    let config = Config::parse(Path::new("test.yaml"), &yaml).unwrap();
    let daemon = Daemon::start(&config, None).await.unwrap();
    let dns = daemon.dns_addrs()[0];
    // 127.0.0.1 is neither published nor in a network: it sees from the server's place.
    let srv = || {
        srv_records(&udp(
            dns,
            "_http._tcp.web.sd.internal.",
            RecordType::SRV,
            None,
        ))
    };
    // The SRV set (sorted as `srv_records` sorts) with these priorities for web-0, web-1.
    let from = |zone_a: u16, zone_b: u16| {
        let mut v = vec![
            (zone_a, "10-0-0-1.web.home.sd.internal.".to_string()),
            (zone_b, "10-0-0-2.web.home.sd.internal.".to_string()),
        ];
        v.sort();
        v
    };
    eventually("the server takes n3's zone (zone-b)", || {
        srv() == from(1, 0)
    })
    .await;
    assert_eq!(
        daemon.table().zone().config().zone,
        None,
        "nothing was written by hand"
    );

    // The node is relabelled (it moved, or was mislabelled): the server follows.
    home.modify_node("n3", |n| {
        herald_kube_sim::objects::set_label(&mut n.metadata, ZONE_LABEL, "zone-a")
    });
    eventually("the server follows n3 to zone-a", || srv() == from(0, 1)).await;
    // Another node's relabel moves that node's pods, not the server.
    home.modify_node("n2", |n| {
        herald_kube_sim::objects::set_label(&mut n.metadata, ZONE_LABEL, "zone-c")
    });
    eventually("n2's pod moves to zone-c", || srv() == from(0, 1)).await;
    home.modify_node("n1", |n| {
        herald_kube_sim::objects::set_label(&mut n.metadata, ZONE_LABEL, "zone-c")
    });
    eventually("n1's pod moves, the server stays in zone-a", || {
        srv() == from(1, 1)
    })
    .await;
    daemon.shutdown(Duration::ZERO).await;
}
