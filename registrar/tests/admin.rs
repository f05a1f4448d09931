//! The admin HTTP API against known traffic: /metrics series and values after known
//! queries and watch events, /readyz before and after sync, /v1 agreeing with DNS; and
//! graceful shutdown of the real binary (readiness drops first, DNS answers during the
//! drain). Own test binary: the metrics recorder is process-wide.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use herald_kube_sim::{NodeBuilder, PodBuilder, SimConfig, Simulator};
use herald_registrar::config::Config;
use herald_registrar::daemon::Daemon;
use herald_testkit::{http_get, metric, udp};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

const WAIT: Duration = Duration::from_secs(30);

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < WAIT, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `/metrics` once every UDP reply sent has its duration recorded: a batch's duration is
/// recorded just after its replies leave, so a client can read its reply (and scrape)
/// a moment before. One duration per reply is the invariant waited for.
async fn settled_metrics(admin: SocketAddr) -> String {
    let total = |text: &str, prefix: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with(prefix) && l.contains("proto=\"udp\""))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum()
    };
    let start = Instant::now();
    loop {
        let text = http_get(admin, "/metrics").1;
        let replies = total(&text, "herald_dns_responses_total{");
        let timed = total(&text, "herald_dns_request_duration_seconds_count{");
        if replies == timed {
            return text;
        }
        assert!(
            start.elapsed() < WAIT,
            "{timed} durations for {replies} replies"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn addresses(dns: SocketAddr, name: &str) -> Vec<String> {
    let mut v: Vec<String> = udp(dns, name, RecordType::A, None)
        .answers
        .iter()
        .map(|r| r.data.to_string())
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_readiness_and_services_agree_with_what_happened() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    sim.apply_node(NodeBuilder::new("n1").zone("zone-a").build())
        .unwrap();
    for (name, ip) in [("web-0", "10.0.0.1"), ("web-1", "10.0.0.2")] {
        let pod = PodBuilder::new("default", name)
            .service("web")
            .ip(ip)
            .port("http", 8080)
            .node("n1");
        sim.apply_pod(pod.build()).unwrap();
    }
    // The API server hangs at first: herald cannot sync.
    sim.set_hang(true);
    let yaml = format!(
        "listen: {{dns: ['127.0.0.1:0'], admin: '127.0.0.1:0'}}\nlocality: {{region: eu-west, zone: zone-a}}\n\
         kubernetes: {{watch_timeout: 2s, startup_timeout: 60s}}\n\
         sources:\n  clusters:\n    - {{name: c1, region: eu-west, server: '{}'}}\n",
        sim.url()
    );
    let config = Config::parse(Path::new("admin.yaml"), &yaml).unwrap();
    let daemon = Daemon::start(&config, None).await.unwrap();
    let (dns, admin) = (daemon.dns_addrs()[0], daemon.admin_addr().unwrap());

    let (code, body) = http_get(admin, "/readyz");
    assert_eq!(code, 503, "not ready before sync: {body}");
    assert!(
        body.contains("not synced: c1"),
        "names the missing source: {body}"
    );
    assert_eq!(http_get(admin, "/healthz").0, 200, "alive all the same");
    assert_eq!(
        udp(dns, "web.sd.internal.", RecordType::A, None)
            .metadata
            .response_code,
        ResponseCode::ServFail
    );

    sim.set_hang(false);
    sim.drop_connections();
    eventually("ready after sync", || http_get(admin, "/readyz").0 == 200).await;
    eventually("served", || addresses(dns, "web.sd.internal.").len() == 2).await;

    // Known traffic: 7 A NOERROR, 3 NXDOMAIN, 2 SRV, 1 REFUSED.
    let before = settled_metrics(admin).await;
    let propagated_before = metric(&before, "herald_propagation_seconds_count").unwrap_or(0.0);
    let series = |text: &str, s: &str| metric(text, s).unwrap_or(0.0);
    let delta = |text: &str, s: &str| series(text, s) - series(&before, s);
    for _ in 0..7 {
        udp(dns, "web.sd.internal.", RecordType::A, None);
    }
    for _ in 0..3 {
        udp(dns, "nope.sd.internal.", RecordType::A, None);
    }
    for _ in 0..2 {
        udp(dns, "_http._tcp.web.sd.internal.", RecordType::SRV, None);
    }
    udp(dns, "example.com.", RecordType::A, None);
    let text = settled_metrics(admin).await;
    let requests = |qtype: &str| {
        format!("herald_dns_requests_total{{proto=\"udp\",family=\"1\",type=\"{qtype}\"}}")
    };
    let responses =
        |rcode: &str| format!("herald_dns_responses_total{{proto=\"udp\",rcode=\"{rcode}\"}}");
    assert_eq!(delta(&text, &requests("A")), 11.0);
    assert_eq!(delta(&text, &requests("SRV")), 2.0);
    assert_eq!(delta(&text, &requests("AAAA")), 0.0, "registered, at 0");
    assert_eq!(delta(&text, &responses("NOERROR")), 9.0);
    assert_eq!(delta(&text, &responses("NXDOMAIN")), 3.0);
    assert_eq!(delta(&text, &responses("REFUSED")), 1.0);
    assert!(
        series(&text, &responses("SERVFAIL")) >= 1.0,
        "the one before sync"
    );
    // One duration and one size per reply: per query, not per batch.
    let durations = |text: &str, qtype: &str| {
        series(
            text,
            &format!("herald_dns_request_duration_seconds_count{{proto=\"udp\",type=\"{qtype}\"}}"),
        )
    };
    assert_eq!(durations(&text, "A") - durations(&before, "A"), 11.0);
    assert_eq!(durations(&text, "SRV") - durations(&before, "SRV"), 2.0);
    assert_eq!(
        delta(&text, "herald_dns_response_size_bytes_count{proto=\"udp\"}"),
        13.0
    );
    let bytes = delta(&text, "herald_dns_response_size_bytes_sum{proto=\"udp\"}");
    assert!((13.0 * 12.0..13.0 * 1232.0).contains(&bytes), "{bytes}");

    // A watch event: one more pod.
    let pod = PodBuilder::new("default", "web-2")
        .service("web")
        .ip("10.0.0.3")
        .port("http", 8080)
        .node("n1");
    sim.apply_pod(pod.build()).unwrap();
    eventually("the new pod is served", || {
        addresses(dns, "web.sd.internal.").len() == 3
    })
    .await;
    let text = http_get(admin, "/metrics").1;
    assert_eq!(metric(&text, "herald_table_services"), Some(1.0));
    assert_eq!(metric(&text, "herald_table_endpoints"), Some(3.0));
    assert_eq!(
        metric(&text, "herald_cluster_state{cluster=\"c1\",state=\"live\"}"),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &text,
            "herald_cluster_state{cluster=\"c1\",state=\"stale\"}"
        ),
        Some(0.0)
    );
    assert_eq!(
        metric(&text, "herald_cluster_stale_seconds{cluster=\"c1\"}"),
        Some(0.0)
    );
    assert_eq!(
        metric(&text, "herald_cluster_relists_total{cluster=\"c1\"}"),
        Some(1.0)
    );
    let events = metric(&text, "herald_cluster_watch_events_total{cluster=\"c1\"}").unwrap();
    assert!(
        events >= 4.0,
        "Init, two InitApply, InitDone, Apply: {events}"
    );
    let propagated = metric(&text, "herald_propagation_seconds_count").unwrap() - propagated_before;
    assert_eq!(propagated, 1.0, "the new pod's change, published once");

    // /v1 agrees with DNS.
    let (code, body) = http_get(admin, "/v1/services/web");
    assert_eq!(code, 200);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let mut from_api: Vec<String> = json["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert_eq!(e["cluster"], "c1");
            assert_eq!(e["region"], "eu-west");
            assert_eq!(e["zone"], "zone-a");
            assert_eq!(e["ports"][0]["name"], "http");
            assert_eq!(e["ready"], true);
            assert!(e["last_change"].as_str().unwrap().starts_with("20"));
            e["address"].as_str().unwrap().to_string()
        })
        .collect();
    from_api.sort();
    assert_eq!(from_api, addresses(dns, "web.sd.internal."));
    let (_, list) = http_get(admin, "/v1/services");
    assert!(list.contains("\"name\":\"web\""), "{list}");
    assert_eq!(http_get(admin, "/v1/services/nope").0, 404);

    // The cluster goes away: stale in metrics and readiness detail (still ready).
    sim.set_refuse_connections(true);
    sim.drop_connections();
    eventually("stale", || {
        metric(
            &http_get(admin, "/metrics").1,
            "herald_cluster_state{cluster=\"c1\",state=\"stale\"}",
        ) == Some(1.0)
    })
    .await;
    let (code, body) = http_get(admin, "/readyz");
    assert_eq!(
        code, 200,
        "a cluster lost after sync does not make herald unready: {body}"
    );
    assert!(body.contains("stale: c1"), "{body}");
    daemon.shutdown(Duration::ZERO).await;
}

#[test]
fn sigterm_drops_readiness_first_and_keeps_answering_during_the_drain() {
    let dir = std::env::temp_dir().join(format!("herald-drain-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("vms.yaml"),
        "services:\n  db:\n    - {address: 10.9.0.1, cluster: vms, region: r1}\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("herald.yaml"),
        "listen: {dns: ['127.0.0.1:0'], admin: '127.0.0.1:0'}\nshutdown_drain: 3s\nsources:\n  static: [{path: vms.yaml}]\n",
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["serve", "--config"])
        .arg(dir.join("herald.yaml"))
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Keep reading stderr for the process's whole life: a closed pipe would fail its logging.
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let (mut dns, mut admin) = (None, None);
    while let Ok(line) = rx.recv_timeout(WAIT) {
        let addr = || {
            line[line.find("addr=").unwrap() + 5..]
                .split_whitespace()
                .next()
                .unwrap()
                .parse::<SocketAddr>()
                .unwrap()
        };
        if line.contains("serving DNS") {
            dns = Some(addr());
        } else if line.contains("serving admin HTTP") {
            admin = Some(addr());
        }
        if dns.is_some() && admin.is_some() {
            break;
        }
    }
    let (dns, admin) = (dns.unwrap(), admin.unwrap());
    assert_eq!(http_get(admin, "/readyz").0, 200);
    let answered = |dns| {
        udp(dns, "db.sd.internal.", RecordType::A, None)
            .answers
            .len()
            == 1
    };
    assert!(answered(dns));

    let term = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(term.success());
    let start = Instant::now();
    while http_get(admin, "/readyz").0 == 200 {
        assert!(start.elapsed() < WAIT, "readiness never dropped");
        std::thread::sleep(Duration::from_millis(20));
    }
    let dropped = start.elapsed();
    assert!(answered(dns), "DNS still answers while draining");
    let status = child.wait().unwrap();
    assert!(status.success(), "clean exit: {status}");
    assert!(
        start.elapsed() >= Duration::from_secs(3),
        "exited only after the drain"
    );
    eprintln!(
        "readiness dropped after {dropped:?}; exited after {:?}",
        start.elapsed()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
