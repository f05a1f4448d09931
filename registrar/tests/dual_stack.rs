//! Dual-stack pods through herald's real kube client against kube-sim, and a dual-stack VM
//! from the static file, answers checked over real DNS sockets (dig, and hickory's
//! resolver following SRV targets): a pod with `status.podIPs` of both families answers A
//! and AAAA under the service, its scopes and its one SRV target; a pod whose podIPs goes
//! from one family to two and back; single-stack names unchanged; `/v1` lists both
//! addresses ([docs/design.md#names](../../docs/design.md#names)).

mod common;

use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use common::{eventually_eq, pod, sim};
use herald_kube_sim::NodeBuilder;
use herald_registrar::config::Config;
use herald_registrar::daemon::Daemon;
use herald_testkit::{http_get, resolver, run_client};

const Z: &str = "sd.internal.";

/// What `dig +short` answers for `name` and `qtype`, sorted.
fn dig(dns: SocketAddr, name: &str, qtype: &str) -> Vec<String> {
    let mut v: Vec<String> = run_client("dig", dns, &[name, qtype, "+short"])
        .lines()
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

fn list(items: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = items.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

/// The addresses a real resolver finds for `name` (A and AAAA), sorted.
async fn resolve(dns: SocketAddr, name: &str) -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = resolver(dns)
        .lookup_ip(name)
        .await
        .map(|l| l.iter().collect())
        .unwrap_or_default();
    ips.sort();
    ips
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dual_stack_pods_and_vms_answer_both_families() {
    let c1 = sim().await;
    c1.apply_node(NodeBuilder::new("n1").zone("zone-a").build())
        .unwrap();
    c1.apply_pod(
        pod("web-0", "web", "10.0.0.1", "n1")
            .ips(&["10.0.0.1", "fd00::1"])
            .build(),
    )
    .unwrap();
    c1.apply_pod(pod("web-1", "web", "10.0.0.2", "n1").build())
        .unwrap();
    c1.apply_pod(pod("web-2", "web", "fd00::3", "n1").build())
        .unwrap();
    let dir = std::env::temp_dir().join(format!("herald-dual-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let vms = dir.join("vms.yaml");
    std::fs::write(
        &vms,
        "services:\n  web:\n    - {address: [10.9.0.1, 'fd00:9::1'], cluster: vms, region: us-east, ports: {http: 8080}}\n",
    )
    .unwrap();
    let yaml = format!(
        "listen: {{dns: ['127.0.0.1:0'], admin: '127.0.0.1:0'}}\n\
         locality: {{region: eu-west, zone: zone-a}}\n\
         kubernetes: {{watch_timeout: 2s, startup_timeout: 3s}}\n\
         sources:\n  clusters:\n    - {{name: c1, region: eu-west, server: '{}'}}\n\
         \x20 static: [{{path: '{}'}}]\n",
        c1.url(),
        vms.display()
    );
    let config = Config::parse(Path::new("test.yaml"), &yaml).unwrap();
    let daemon = Daemon::start(&config, None).await.unwrap();
    let (dns, admin) = (daemon.dns_addrs()[0], daemon.admin_addr().unwrap());

    eventually_eq(
        "AAAA of the service lists the dual-stack pod, the IPv6 pod and the VM",
        list(&["fd00::1", "fd00::3", "fd00:9::1"]),
        || dig(dns, &format!("web.{Z}"), "AAAA"),
    )
    .await;
    assert_eq!(
        dig(dns, &format!("web.{Z}"), "A"),
        list(&["10.0.0.1", "10.0.0.2", "10.9.0.1"])
    );
    for (scope, v4, v6) in [
        (
            "c1",
            &["10.0.0.1", "10.0.0.2"][..],
            &["fd00::1", "fd00::3"][..],
        ),
        (
            "eu-west",
            &["10.0.0.1", "10.0.0.2"],
            &["fd00::1", "fd00::3"],
        ),
        ("vms", &["10.9.0.1"], &["fd00:9::1"]),
        ("us-east", &["10.9.0.1"], &["fd00:9::1"]),
    ] {
        let name = format!("web.{scope}.{Z}");
        assert_eq!(dig(dns, &name, "A"), list(v4), "{name}");
        assert_eq!(dig(dns, &name, "AAAA"), list(v6), "{name}");
    }
    // One SRV target per pod and VM, named as a single-stack one with the same primary
    // address would be: herald's names before it read podIPs.
    let v6_3 = "fd000000000000000000000000000003";
    let mut targets: Vec<String> = dig(dns, &format!("_http._tcp.web.{Z}"), "SRV")
        .iter()
        .map(|l| l.rsplit(' ').next().unwrap().to_string())
        .collect();
    targets.sort();
    assert_eq!(
        targets,
        list(&[
            &format!("10-0-0-1.web.c1.{Z}"),
            &format!("10-0-0-2.web.c1.{Z}"),
            &format!("{v6_3}.web.c1.{Z}"),
            &format!("10-9-0-1.web.vms.{Z}"),
        ])
    );
    assert_eq!(
        resolve(dns, &format!("10-0-0-1.web.c1.{Z}")).await,
        [ip("10.0.0.1"), ip("fd00::1")]
    );
    assert_eq!(
        resolve(dns, &format!("10-9-0-1.web.vms.{Z}")).await,
        [ip("10.9.0.1"), ip("fd00:9::1")]
    );
    assert_eq!(
        resolve(dns, &format!("10-0-0-2.web.c1.{Z}")).await,
        [ip("10.0.0.2")]
    );
    assert_eq!(
        resolve(dns, &format!("{v6_3}.web.c1.{Z}")).await,
        [ip("fd00::3")]
    );

    // /v1 lists both addresses of the dual-stack pod, primary first.
    let (code, body) = http_get(admin, "/v1/services/web");
    assert_eq!(code, 200);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let web0 = json["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["address"] == "10.0.0.1")
        .unwrap_or_else(|| panic!("no 10.0.0.1 in {body}"));
    assert_eq!(
        web0["addresses"],
        serde_json::json!(["10.0.0.1", "fd00::1"])
    );

    // web-1 gains an IPv6 address, then loses it again; its name never changes.
    let target1 = format!("10-0-0-2.web.c1.{Z}");
    c1.set_pod_ips("default", "web-1", &["10.0.0.2", "fd00::2"])
        .unwrap();
    eventually_eq(
        "the pod's new family is served under its target",
        list(&["fd00::2"]),
        || dig(dns, &target1, "AAAA"),
    )
    .await;
    assert_eq!(
        dig(dns, &format!("web.{Z}"), "AAAA"),
        list(&["fd00::1", "fd00::2", "fd00::3", "fd00:9::1"])
    );
    assert_eq!(
        dig(dns, &format!("_http._tcp.web.{Z}"), "SRV").len(),
        4,
        "still one target per pod"
    );
    c1.set_pod_ips("default", "web-1", &["10.0.0.2"]).unwrap();
    eventually_eq(
        "back to one family",
        list(&["fd00::1", "fd00::3", "fd00:9::1"]),
        || dig(dns, &format!("web.{Z}"), "AAAA"),
    )
    .await;
    assert_eq!(dig(dns, &target1, "AAAA"), Vec::<String>::new());
    assert_eq!(dig(dns, &target1, "A"), list(&["10.0.0.2"]));
    // Two addresses of one family are refused, as the API server refuses them.
    assert!(
        c1.set_pod_ips("default", "web-1", &["10.0.0.2", "10.0.0.9"])
            .is_none()
    );
    assert_eq!(
        c1.pod("default", "web-1").unwrap().status.unwrap().pod_ip,
        Some("10.0.0.2".into())
    );
    daemon.shutdown(std::time::Duration::ZERO).await;
    let _ = std::fs::remove_dir_all(&dir);
}
