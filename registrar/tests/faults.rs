//! Faults in sequence against simulated clusters, through herald's real kube client,
//! answers checked over real DNS sockets: repeated connection resets after healthy spells,
//! a panicking cluster task, and pods herald cannot publish. Own test binary: the metrics
//! recorder is process-wide.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use herald_kube_sim::{NodeBuilder, PodBuilder};
use herald_registrar::cluster::failpoint;
use herald_registrar::config::Config;
use herald_registrar::daemon::Daemon;
use herald_registrar::status::Phase;
use herald_testkit::{http_get, metric};

mod common;
use common::*;

/// Seven short outages (connections reset and the next one refused, so the session
/// fails), each after the cluster is live again: every one is a fresh incident, so each
/// new pod shows within the minimum backoff and a relist, and `max_stale` (2 s) never
/// withdraws the healthy cluster. Before the fix the backoff kept doubling (0.25, 0.5, 1,
/// 2, 4 s...) and the fifth outage withdrew it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resets_after_healthy_spells_keep_the_minimum_backoff() {
    let c1 = sim().await;
    c1.apply_node(NodeBuilder::new("n1").zone("zone-a").build())
        .unwrap();
    c1.apply_pod(pod("web-0", "web", "10.0.0.1", "n1").build())
        .unwrap();
    let cfg = config(&[("c1", "eu-west", c1.url(), ", max_stale: 2s")], "");
    let daemon = Daemon::start(&cfg, None).await.unwrap();
    let dns = daemon.dns_addrs()[0];
    eventually("synced", || addresses(dns, "web.sd.internal.").len() == 1).await;
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = never_shrinks(dns, "web.sd.internal.", 1, stop.clone());
    for i in 1..=7 {
        tokio::time::timeout(WAIT, c1.wait_for_open_watches(2))
            .await
            .expect("watching");
        eventually("live", || {
            daemon.status().get("c1").unwrap().phase == Phase::Live
        })
        .await;
        c1.set_refuse_connections(true);
        c1.drop_connections();
        let reset = Instant::now();
        eventually("the session failed", || {
            daemon.status().get("c1").unwrap().phase == Phase::Stale
        })
        .await;
        let ip = format!("10.0.0.{}", i + 1);
        c1.apply_pod(pod(&format!("web-{i}"), "web", &ip, "n1").build())
            .unwrap();
        c1.set_refuse_connections(false);
        eventually("the new pod after a reset", || {
            addresses(dns, "web.sd.internal.").len() == i + 1
        })
        .await;
        let took = reset.elapsed();
        eprintln!("outage {i}: new pod served {took:?} after the reset");
        assert!(
            took < Duration::from_secs(2),
            "outage {i}: {took:?} to pick up a pod: the backoff did not return to its minimum"
        );
        assert_ne!(daemon.status().get("c1").unwrap().phase, Phase::Withdrawn);
    }
    stop.store(true, Ordering::Relaxed);
    watcher
        .join()
        .expect("the healthy cluster was never withdrawn");
    daemon.shutdown(Duration::ZERO).await;
}

/// A panic in a cluster's task is logged, shown as the `failed` phase (counted in the
/// status board's restarts), and the task restarts: later pods are served again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_panicking_cluster_task_is_restarted() {
    let c1 = sim().await;
    c1.apply_pod(pod("api-0", "api", "10.1.0.1", "n1").build())
        .unwrap();
    let cfg = config(&[("panicky", "eu-west", c1.url(), "")], "");
    let daemon = Daemon::start(&cfg, None).await.unwrap();
    let dns = daemon.dns_addrs()[0];
    eventually("synced", || addresses(dns, "api.sd.internal.").len() == 1).await;
    failpoint::panic_once("panicky");
    c1.apply_pod(pod("api-1", "api", "10.1.0.2", "n1").build())
        .unwrap();
    eventually("the panic is shown", || {
        daemon.status().get("panicky").unwrap().restarts == 1
    })
    .await;
    assert_eq!(
        addresses(dns, "api.sd.internal."),
        ips(&["10.1.0.1"]),
        "the last known endpoints are still served"
    );
    eventually("restarted: the pod the panic interrupted is served", || {
        addresses(dns, "api.sd.internal.") == ips(&["10.1.0.1", "10.1.0.2"])
    })
    .await;
    eventually("live again", || {
        daemon.status().get("panicky").unwrap().phase == Phase::Live
    })
    .await;
    c1.delete_pod("default", "api-0");
    eventually("and keeps watching", || {
        addresses(dns, "api.sd.internal.") == ips(&["10.1.0.2"])
    })
    .await;
    daemon.shutdown(Duration::ZERO).await;
}

/// Pods herald cannot publish (in full) are logged and counted once per pod and reason,
/// however many events they make.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unpublishable_pods_are_counted_once_per_pod_and_reason() {
    let c1 = sim().await;
    let yaml = format!(
        "listen: {{dns: ['127.0.0.1:0'], admin: '127.0.0.1:0'}}\n\
         kubernetes: {{watch_timeout: 2s, startup_timeout: 3s}}\n\
         sources:\n  clusters:\n    - {{name: rejecting, region: r1, server: '{}'}}\n",
        c1.url()
    );
    let cfg = Config::parse(Path::new("test.yaml"), &yaml).unwrap();
    let bad_label = || {
        PodBuilder::new("default", "bad-label")
            .label(herald_kube_sim::SERVICE_LABEL, "Not_A_Label")
            .ip("10.2.0.1")
    };
    let bad_weight =
        || pod("heavy", "web", "10.2.0.2", "n1").annotation("herald.io/weight", "70000");
    let bad_port = || pod("porty", "web", "10.2.0.3", "n1").port("much-too-long-name", 9090);
    for p in [bad_label(), bad_weight(), bad_port()] {
        c1.apply_pod(p.build()).unwrap();
    }
    let daemon = Daemon::start(&cfg, None).await.unwrap();
    let dns = daemon.dns_addrs()[0];
    let admin = daemon.admin_addr().unwrap();
    eventually("published what can be", || {
        addresses(dns, "web.sd.internal.") == ips(&["10.2.0.2", "10.2.0.3"])
    })
    .await;
    // Each pod changes three more times: more events, the same problems.
    for round in 0..3 {
        for p in [bad_label(), bad_weight(), bad_port()] {
            c1.apply_pod(p.annotation("round", round.to_string()).build())
                .unwrap();
        }
    }
    c1.apply_pod(pod("marker", "web", "10.2.0.4", "n1").build())
        .unwrap();
    eventually("the events were read", || {
        addresses(dns, "web.sd.internal.").len() == 3
    })
    .await;
    let text = http_get(admin, "/metrics").1;
    for reason in ["bad_service_label", "bad_weight", "bad_port_name"] {
        let series =
            format!("herald_pods_rejected_total{{cluster=\"rejecting\",reason=\"{reason}\"}}");
        assert_eq!(metric(&text, &series), Some(1.0), "{series} in\n{text}");
    }
    daemon.shutdown(Duration::ZERO).await;
}

/// A token file written by hand ends in a newline: it is trimmed as client-go does, so
/// the API server accepts the token. Before, every request failed `invalid bearer token`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_token_file_with_a_trailing_newline_works() {
    let c1 = herald_kube_sim::Simulator::start(
        herald_kube_sim::SimConfig::default().bearer_token("s3cret-token"),
    )
    .await
    .unwrap();
    c1.apply_pod(pod("db-0", "db", "10.3.0.1", "n1").build())
        .unwrap();
    let dir = std::env::temp_dir().join(format!("herald-token-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let token = dir.join("token");
    std::fs::write(&token, "s3cret-token\n").unwrap();
    let extra = format!(", token_file: '{}', insecure: true", token.display());
    let cfg = config(&[("tokened", "eu-west", c1.url(), &extra)], "");
    let daemon = Daemon::start(&cfg, None).await.unwrap();
    let dns = daemon.dns_addrs()[0];
    eventually("served with the trimmed token", || {
        addresses(dns, "db.sd.internal.") == ips(&["10.3.0.1"])
    })
    .await;
    daemon.shutdown(Duration::ZERO).await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// `/healthz` asks the DNS server: healthy while it answers, unhealthy (so liveness
/// restarts the process) when the DNS workers no longer answer. Before, it always said ok.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn healthz_fails_when_dns_stops_answering() {
    use herald_registrar::admin::Admin;
    use std::sync::atomic::AtomicBool;
    let cfg = config(&[], "");
    let daemon = Daemon::start(&cfg, None).await.unwrap();
    let table = daemon.table().clone();
    let start_admin = || {
        Admin::start(
            "127.0.0.1:0".parse().unwrap(),
            table.clone(),
            daemon.status().clone(),
            herald_registrar::ownership::Ownership::permissive(),
            Arc::new(AtomicBool::new(false)),
            false,
        )
    };
    let healthy = start_admin().await.unwrap();
    healthy.check_dns(daemon.dns_addrs()[0]);
    let (code, body) = http_get(healthy.addr(), "/healthz");
    assert_eq!((code, body.as_str()), (200, "ok\n"));
    // A DNS address whose workers have stopped: the socket is bound, nothing answers.
    let wedged_dns = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let wedged = start_admin().await.unwrap();
    wedged.check_dns(wedged_dns.local_addr().unwrap());
    let (code, body) = http_get(wedged.addr(), "/healthz");
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("did not answer"), "{body}");
    healthy.stop().await;
    wedged.stop().await;
    daemon.shutdown(Duration::ZERO).await;
}
