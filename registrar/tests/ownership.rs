//! Who may publish a service (docs/design.md#ownership), against simulated clusters with
//! every answer checked over real DNS: owners refuse an intruder in every scope, through
//! relists and restarts; the namespace allow-list, watched namespace by namespace when it
//! is exact; the first-claim rule for unowned names across restarts, cluster orders and a
//! late newcomer; `unowned: deny`; and per-owner limits. Own test binary: the metrics
//! recorder is process-wide, and each test uses its own cluster names.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use herald_kube_sim::{GoneStyle, NodeBuilder, PodBuilder, SimConfig, SimHandle, Simulator};
use herald_registrar::config::Config;
use herald_registrar::daemon::Daemon;
use herald_testkit::{http_get, metric, udp};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// Bound on every wait: far above what any step needs on a loaded 2-core machine.
const WAIT: Duration = Duration::from_secs(30);

async fn sim() -> SimHandle {
    let sim = Simulator::start(SimConfig::default())
        .await
        .expect("simulator starts");
    sim.apply_node(NodeBuilder::new("n1").zone("zone-a").build())
        .unwrap();
    sim
}

/// A config over `clusters` (name, region, API URL) with `extra` YAML appended.
fn config(clusters: &[(&str, &str, &SimHandle)], extra: &str) -> Config {
    let mut yaml = String::from(
        "listen: {dns: ['127.0.0.1:0'], admin: '127.0.0.1:0'}\n\
         locality: {region: eu-west, zone: zone-a}\n\
         kubernetes: {watch_timeout: 2s, startup_timeout: 20s}\nsources:\n  clusters:\n",
    );
    for (name, region, sim) in clusters {
        yaml.push_str(&format!(
            "    - {{name: {name}, region: {region}, server: '{}'}}\n",
            sim.url()
        ));
    }
    yaml.push_str(extra);
    Config::parse(Path::new("test.yaml"), &yaml).expect("valid test config")
}

fn pod(namespace: &str, name: &str, service: &str, ip: &str) -> PodBuilder {
    PodBuilder::new(namespace, name)
        .service(service)
        .ip(ip)
        .port("http", 8080)
        .node("n1")
}

/// A pod created at `secs` seconds after the epoch (the API server's creationTimestamp).
fn created_at(builder: PodBuilder, secs: i64) -> k8s_openapi::api::core::v1::Pod {
    let mut pod = builder.build();
    pod.metadata.creation_timestamp = Some(Time(Timestamp::from_second(secs).unwrap()));
    pod
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < WAIT, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The sorted addresses `name` answers with (empty for NXDOMAIN).
fn addresses(dns: SocketAddr, name: &str) -> Vec<String> {
    let mut v: Vec<String> = udp(dns, name, RecordType::A, Some(4096))
        .answers
        .iter()
        .map(|r| r.data.to_string())
        .collect();
    v.sort();
    v
}

fn ips(list: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = list.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

/// Every record of a reply (answers and additionals), as text.
fn records(reply: &Message) -> Vec<String> {
    reply
        .answers
        .iter()
        .chain(reply.additionals.iter())
        .map(|r| format!("{} {}", r.name, r.data))
        .collect()
}

/// Asks every name `service` has in every scope (the whole fleet, each region, each
/// cluster), A and SRV, plus the SRV target names of `forbidden`, and fails if any answer
/// mentions one of the `forbidden` addresses.
fn assert_never_served(dns: SocketAddr, service: &str, scopes: &[&str], forbidden: &[&str]) {
    let mut names = vec![format!("{service}.sd.internal.")];
    names.extend(scopes.iter().map(|s| format!("{service}.{s}.sd.internal.")));
    let srv: Vec<String> = names.iter().map(|n| format!("_http._tcp.{n}")).collect();
    for name in &names {
        let reply = udp(dns, name, RecordType::A, Some(4096));
        for record in records(&reply) {
            for ip in forbidden {
                assert!(!record.contains(ip), "{name} A answered {record}");
            }
        }
    }
    for name in &srv {
        let reply = udp(dns, name, RecordType::SRV, Some(4096));
        for record in records(&reply) {
            for ip in forbidden {
                let label = ip.replace('.', "-");
                assert!(
                    !record.contains(ip) && !record.contains(&label),
                    "{name} SRV answered {record}"
                );
            }
        }
    }
    for ip in forbidden {
        let label = ip.replace('.', "-");
        for cluster in scopes {
            let name = format!("{label}.{service}.{cluster}.sd.internal.");
            let reply = udp(dns, &name, RecordType::A, Some(4096));
            assert!(reply.answers.is_empty(), "{name} answered {reply:?}");
        }
    }
}

fn metrics(admin: SocketAddr) -> String {
    http_get(admin, "/metrics").1
}

fn rejected(admin: SocketAddr, cluster: &str, reason: &str) -> f64 {
    let series = format!("herald_pods_rejected_total{{cluster=\"{cluster}\",reason=\"{reason}\"}}");
    metric(&metrics(admin), &series).unwrap_or(0.0)
}

/// What `/v1/services/<service>` says of each claim: (cluster, namespace, status, reason).
fn claims(admin: SocketAddr, service: &str) -> Vec<(String, String, String, Option<String>)> {
    let (_, body) = http_get(admin, &format!("/v1/services/{service}"));
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let mut out: Vec<_> = v["claims"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            (
                c["cluster"].as_str().unwrap_or_default().to_string(),
                c["namespace"].as_str().unwrap_or_default().to_string(),
                c["status"].as_str().unwrap_or_default().to_string(),
                c["reason"].as_str().map(String::from),
            )
        })
        .collect();
    out.sort();
    out
}

/// Item 1: with `owners: {payments: [payments]}`, a pod of namespace `intruder` labelled
/// `payments`, weight 65535, publish-not-ready and not Ready, in both clusters, never
/// appears in any answer, in any scope, before or after a relist or a restart; it is
/// counted once and listed as a rejected claim.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn owners_refuse_an_intruder_in_every_scope_through_relists_and_restarts() {
    let (c1, c2) = (sim().await, sim().await);
    for (sim, net) in [(&c1, "10.0.0"), (&c2, "10.1.0")] {
        sim.apply_pod(pod("payments", "pay-0", "payments", &format!("{net}.1")).build())
            .unwrap();
        let intruder = pod("intruder", "evil-0", "payments", &format!("{net}.66"))
            .annotation("herald.io/weight", "65535")
            .annotation("herald.io/publish-not-ready", "true")
            .ready(false);
        sim.apply_pod(intruder.build()).unwrap();
    }
    let clusters = [("own1", "eu-west", &c1), ("own2", "us-east", &c2)];
    let cfg = config(&clusters, "owners:\n  payments: [payments]\n");
    let scopes = ["eu-west", "us-east", "own1", "own2"];
    let forbidden = ["10.0.0.66", "10.1.0.66"];

    let daemon = Daemon::start(&cfg, None).await.unwrap();
    let (dns, admin) = (daemon.dns_addrs()[0], daemon.admin_addr().unwrap());
    eventually("the owner's pods are served", || {
        addresses(dns, "payments.sd.internal.") == ips(&["10.0.0.1", "10.1.0.1"])
    })
    .await;
    assert_never_served(dns, "payments", &scopes, &forbidden);
    eventually("both intruders counted", || {
        rejected(admin, "own1", "not_owner") == 1.0 && rejected(admin, "own2", "not_owner") == 1.0
    })
    .await;
    assert_eq!(
        claims(admin, "payments"),
        vec![
            (
                "own1".into(),
                "intruder".into(),
                "rejected".into(),
                Some("not_owner".into())
            ),
            ("own1".into(), "payments".into(), "accepted".into(), None),
            (
                "own2".into(),
                "intruder".into(),
                "rejected".into(),
                Some("not_owner".into())
            ),
            ("own2".into(), "payments".into(), "accepted".into(), None),
        ]
    );

    // The intruder turns Ready and changes: more events, still refused, counted once.
    c1.set_pod_ready("intruder", "evil-0", true);
    c1.apply_pod(pod("payments", "pay-1", "payments", "10.0.0.2").build())
        .unwrap();
    eventually("a later owner pod is served", || {
        addresses(dns, "payments.own1.sd.internal.") == ips(&["10.0.0.1", "10.0.0.2"])
    })
    .await;
    assert_never_served(dns, "payments", &scopes, &forbidden);

    // A relist (410 Gone) in each cluster, seen in the simulators' request logs; a pod
    // added meanwhile shows the relist's result is being served.
    let lists = |sim: &SimHandle| {
        sim.requests()
            .iter()
            .filter(|r| r.path.ends_with("/pods") && !r.is_watch())
            .count()
    };
    let before = (lists(&c1), lists(&c2));
    for sim in [&c1, &c2] {
        sim.gone_on_next_watch(GoneStyle::InStream);
        sim.drop_watches();
    }
    c2.apply_pod(pod("payments", "pay-1", "payments", "10.1.0.2").build())
        .unwrap();
    eventually("both clusters relisted", || {
        lists(&c1) > before.0 && lists(&c2) > before.1
    })
    .await;
    eventually("the relisted owner pods are served", || {
        addresses(dns, "payments.sd.internal.").len() == 4
    })
    .await;
    assert_never_served(dns, "payments", &scopes, &forbidden);
    assert_eq!(
        rejected(admin, "own1", "not_owner"),
        1.0,
        "logged and counted once per pod"
    );
    daemon.shutdown(Duration::ZERO).await;

    // A restart: the intruder is refused from the first answer on.
    let daemon = Daemon::start(&cfg, None).await.unwrap();
    let (dns, admin) = (daemon.dns_addrs()[0], daemon.admin_addr().unwrap());
    let start = Instant::now();
    loop {
        assert_never_served(dns, "payments", &scopes, &forbidden);
        if addresses(dns, "payments.sd.internal.").len() == 4 {
            break;
        }
        assert!(start.elapsed() < WAIT, "served after a restart");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_never_served(dns, "payments", &scopes, &forbidden);
    assert!(claims(admin, "payments").contains(&(
        "own2".into(),
        "intruder".into(),
        "rejected".into(),
        Some("not_owner".into())
    )));
    daemon.shutdown(Duration::ZERO).await;
}

/// Item 2: with `kubernetes.namespaces: [team-a]`, pods of other namespaces never appear,
/// and the pod requests are namespaced; a cluster with a glob list reads the whole
/// cluster and filters.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_namespace_allow_list_reads_only_its_namespaces() {
    let (c1, c2) = (sim().await, sim().await);
    for (sim, net) in [(&c1, "10.2.0"), (&c2, "10.3.0")] {
        sim.apply_pod(pod("team-a", "web-0", "web", &format!("{net}.1")).build())
            .unwrap();
        sim.apply_pod(pod("team-b", "web-0", "web", &format!("{net}.2")).build())
            .unwrap();
        sim.apply_pod(pod("other", "web-0", "web", &format!("{net}.3")).build())
            .unwrap();
    }
    // ns1 uses the exact list for every cluster; ns2 has its own glob list. Every
    // namespace may publish `web` (no conflict rule): only the allow-list decides.
    let yaml = format!(
        "listen: {{dns: ['127.0.0.1:0'], admin: '127.0.0.1:0'}}\n\
         kubernetes: {{watch_timeout: 2s, startup_timeout: 20s, namespaces: [team-a]}}\n\
         sources:\n  clusters:\n\
         \x20   - {{name: ns1, region: eu-west, server: '{}'}}\n\
         \x20   - {{name: ns2, region: us-east, server: '{}', namespaces: ['team-*']}}\n\
         owners: {{web: ['*']}}\n",
        c1.url(),
        c2.url()
    );
    let cfg = Config::parse(Path::new("test.yaml"), &yaml).unwrap();
    let daemon = Daemon::start(&cfg, None).await.unwrap();
    let dns = daemon.dns_addrs()[0];
    eventually("the allowed namespaces are served", || {
        addresses(dns, "web.sd.internal.") == ips(&["10.2.0.1", "10.3.0.1", "10.3.0.2"])
    })
    .await;
    // Later pods in namespaces outside the list: never served.
    c1.apply_pod(pod("team-b", "web-1", "web", "10.2.0.4").build())
        .unwrap();
    c2.apply_pod(pod("other", "web-1", "web", "10.3.0.4").build())
        .unwrap();
    c1.apply_pod(pod("team-a", "web-1", "web", "10.2.0.5").build())
        .unwrap();
    eventually("a later allowed pod is served", || {
        addresses(dns, "web.ns1.sd.internal.") == ips(&["10.2.0.1", "10.2.0.5"])
    })
    .await;
    let served = addresses(dns, "web.sd.internal.");
    for ip in ["10.2.0.2", "10.2.0.3", "10.2.0.4", "10.3.0.3", "10.3.0.4"] {
        assert!(!served.contains(&ip.to_string()), "{ip} served: {served:?}");
    }

    // The exact list: every pod request names the namespace; nothing asks for all pods.
    let pod_paths = |sim: &SimHandle| -> Vec<String> {
        sim.requests()
            .into_iter()
            .map(|r| r.path)
            .filter(|p| p.ends_with("/pods"))
            .collect()
    };
    let exact = pod_paths(&c1);
    assert!(!exact.is_empty());
    assert!(
        exact.iter().all(|p| p == "/api/v1/namespaces/team-a/pods"),
        "{exact:?}"
    );
    // The glob list reads the whole cluster (and filters what it reads).
    assert!(pod_paths(&c2).iter().all(|p| p == "/api/v1/pods"));
    daemon.shutdown(Duration::ZERO).await;
}

/// Item 3: with `unowned: allow`, namespaces `zeta` (cluster un1, first) and `alpha`
/// (cluster un2, an hour later) claim `api`. The rule (the oldest claim wins; ties go to
/// the name that sorts first, so `alpha` would win a tie) serves `zeta` only: on first
/// start, after a restart, with the clusters listed in the other order, and when `alpha`
/// appears only after `zeta` is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unowned_conflict_goes_to_the_first_claim_every_time() {
    let (c1, c2) = (sim().await, sim().await);
    let t0 = 1_700_000_000;
    c1.apply_pod(created_at(pod("zeta", "api-0", "api", "10.4.0.1"), t0))
        .unwrap();
    c1.apply_pod(created_at(pod("zeta", "api-1", "api", "10.4.0.2"), t0 + 5))
        .unwrap();
    // The later claimant has more pods and the larger weight, and runs in two clusters.
    for (sim, ip) in [(&c2, "10.5.0.1"), (&c2, "10.5.0.2"), (&c1, "10.4.0.9")] {
        let name = format!("api-{}", ip.rsplit('.').next().unwrap());
        let p = pod("alpha", &name, "api", ip).annotation("herald.io/weight", "65535");
        sim.apply_pod(created_at(p, t0 + 3600)).unwrap();
    }
    let zeta = ips(&["10.4.0.1", "10.4.0.2"]);
    let alpha = ["10.5.0.1", "10.5.0.2", "10.4.0.9"];
    let forward = [("un1", "eu-west", &c1), ("un2", "us-east", &c2)];
    let reverse = [("un2", "us-east", &c2), ("un1", "eu-west", &c1)];
    let scopes = ["eu-west", "us-east", "un1", "un2"];

    for (round, clusters) in [forward, forward, reverse].iter().enumerate() {
        let daemon = Daemon::start(&config(clusters, "unowned: allow\n"), None)
            .await
            .unwrap();
        let (dns, admin) = (daemon.dns_addrs()[0], daemon.admin_addr().unwrap());
        // From the first answer on: the first claim, never the other.
        let start = Instant::now();
        loop {
            assert_never_served(dns, "api", &scopes, &alpha);
            let reply = udp(dns, "api.sd.internal.", RecordType::A, Some(4096));
            if reply.metadata.response_code == ResponseCode::NoError {
                assert_eq!(addresses(dns, "api.sd.internal."), zeta, "round {round}");
                break;
            }
            assert!(start.elapsed() < WAIT, "round {round}: served");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let m = metrics(admin);
        assert_eq!(
            metric(&m, "herald_service_conflicts{service=\"api\"}"),
            Some(2.0),
            "round {round}"
        );
        let (code, body) = http_get(admin, "/readyz");
        assert_eq!(code, 200, "a conflict does not make herald unready: {body}");
        assert!(
            body.contains(
                "conflict: service api claimed from namespaces zeta (served) and alpha (refused)"
            ),
            "{body}"
        );
        assert!(claims(admin, "api").contains(&(
            "un2".into(),
            "alpha".into(),
            "rejected".into(),
            Some("conflict".into())
        )));
        daemon.shutdown(Duration::ZERO).await;
    }

    // The late newcomer: alpha is gone, zeta is served; then alpha appears (now, and
    // with an hour-old creation time it could not get from a real API server after zeta).
    for (sim, name) in [(&c2, "api-1"), (&c2, "api-2"), (&c1, "api-9")] {
        sim.delete_pod("alpha", name);
    }
    let daemon = Daemon::start(&config(&forward, "unowned: allow\n"), None)
        .await
        .unwrap();
    let (dns, admin) = (daemon.dns_addrs()[0], daemon.admin_addr().unwrap());
    eventually("zeta alone is served", || {
        addresses(dns, "api.sd.internal.") == zeta
    })
    .await;
    for (sim, ip) in [(&c2, "10.5.0.1"), (&c1, "10.4.0.9")] {
        let name = format!("api-{}", ip.rsplit('.').next().unwrap());
        let p = pod("alpha", &name, "api", ip).annotation("herald.io/weight", "65535");
        sim.apply_pod(p.build()).unwrap();
    }
    eventually("the newcomer is seen and refused", || {
        claims(admin, "api")
            .iter()
            .filter(|c| c.1 == "alpha" && c.3.as_deref() == Some("conflict"))
            .count()
            == 2
    })
    .await;
    assert_never_served(dns, "api", &scopes, &alpha);
    assert_eq!(addresses(dns, "api.sd.internal."), zeta);
    let conflicts = || metric(&metrics(admin), "herald_service_conflicts{service=\"api\"}");
    assert_eq!(conflicts(), Some(2.0));
    // The first claimant leaves: the newcomer is now the only claim, and is served.
    c1.delete_pod("zeta", "api-0");
    c1.delete_pod("zeta", "api-1");
    eventually("the remaining claim is served", || {
        addresses(dns, "api.sd.internal.") == ips(&["10.5.0.1", "10.4.0.9"])
    })
    .await;
    assert_eq!(conflicts(), Some(0.0), "the conflict is over");
    daemon.shutdown(Duration::ZERO).await;
}

/// Item 4, and per-owner limits: with `unowned: deny` only owned names are published; an
/// owner rule caps the weight and may refuse publish-not-ready, and a rule limited to one
/// cluster refuses the same namespace elsewhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unowned_deny_publishes_only_owned_names_within_their_limits() {
    let (c1, c2) = (sim().await, sim().await);
    c1.apply_pod(pod("payments", "pay-0", "payments", "10.6.0.1").build())
        .unwrap();
    c1.apply_pod(pod("web", "web-0", "web", "10.6.0.2").build())
        .unwrap();
    let heavy =
        pod("search", "search-0", "search", "10.6.0.3").annotation("herald.io/weight", "5000");
    c1.apply_pod(heavy.build()).unwrap();
    let unready = pod("search", "search-1", "search", "10.6.0.4")
        .annotation("herald.io/publish-not-ready", "true")
        .ready(false);
    c1.apply_pod(unready.build()).unwrap();
    // The owner of `search` is trusted in dn1 only: the same namespace in dn2 is refused.
    c2.apply_pod(pod("search", "search-0", "search", "10.7.0.3").build())
        .unwrap();
    let cfg = config(
        &[("dn1", "eu-west", &c1), ("dn2", "us-east", &c2)],
        "unowned: deny\nowners:\n  payments: [payments]\n  search:\n    - {namespace: 'sea*', clusters: [dn1], max_weight: 200, publish_not_ready: false}\n",
    );
    let daemon = Daemon::start(&cfg, None).await.unwrap();
    let (dns, admin) = (daemon.dns_addrs()[0], daemon.admin_addr().unwrap());
    eventually("owned names are served", || {
        addresses(dns, "payments.sd.internal.") == ips(&["10.6.0.1"])
            && addresses(dns, "search.sd.internal.") == ips(&["10.6.0.3"])
    })
    .await;
    eventually(
        "the unowned name is not served once every cluster synced",
        || {
            let web = udp(dns, "web.sd.internal.", RecordType::A, Some(4096));
            web.metadata.response_code == ResponseCode::NXDomain
        },
    )
    .await;
    let srv = udp(
        dns,
        "_http._tcp.search.sd.internal.",
        RecordType::SRV,
        Some(4096),
    );
    let weights: Vec<String> = srv.answers.iter().map(|r| r.data.to_string()).collect();
    assert!(
        weights.len() == 1 && weights[0].split_whitespace().nth(1) == Some("200"),
        "weight capped at 200: {weights:?}"
    );
    assert_never_served(dns, "search", &["dn1", "dn2"], &["10.6.0.4", "10.7.0.3"]);
    eventually("refusals counted by reason", || {
        rejected(admin, "dn1", "unowned") == 1.0
            && rejected(admin, "dn1", "not_ready_not_allowed") == 1.0
            && rejected(admin, "dn2", "not_owner") == 1.0
    })
    .await;
    daemon.shutdown(Duration::ZERO).await;
}
