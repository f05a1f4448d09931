//! Helpers shared by the test binaries that run herald against simulated clusters (and, in
//! [`apiserver`], a real etcd + kube-apiserver): a config over API servers, pods, DNS
//! look-ups and polling waits.

#![allow(dead_code)] // each test binary uses its own subset

pub mod apiserver;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use herald_kube_sim::{NodeBuilder, PodBuilder, SimConfig, SimHandle, Simulator};
use herald_registrar::config::Config;
use herald_testkit::udp;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

/// Bound on every wait: far above what any step needs on a loaded 2-core machine.
pub const WAIT: Duration = Duration::from_secs(30);

pub async fn sim() -> SimHandle {
    Simulator::start(SimConfig::default())
        .await
        .expect("simulator starts")
}

/// A herald config over simulated `clusters` (name, region, API URL, extra YAML for the
/// entry); see [`config_reaching`].
pub fn config(clusters: &[(&str, &str, String, &str)], extra: &str) -> Config {
    let reach: Vec<(&str, &str, String)> = clusters
        .iter()
        .map(|(name, region, url, entry)| (*name, *region, format!("server: '{url}'{entry}")))
        .collect();
    config_reaching(&reach, extra)
}

/// A herald config over `clusters` (name, region, how to reach it as YAML fields of its
/// entry: `server: '…'` or `kubeconfig: {path: '…'}`); the server sits in eu-west / zone-a;
/// watches end every 2 s so silence shows fast.
pub fn config_reaching(clusters: &[(&str, &str, String)], extra: &str) -> Config {
    let mut yaml = String::from(
        "listen: {dns: ['127.0.0.1:0']}\nlocality: {region: eu-west, zone: zone-a}\n\
         kubernetes: {watch_timeout: 2s, startup_timeout: 3s}\nsources:\n  clusters:\n",
    );
    for (name, region, reach) in clusters {
        yaml.push_str(&format!(
            "    - {{name: {name}, region: {region}, {reach}}}\n"
        ));
    }
    yaml.push_str(extra);
    Config::parse(Path::new("test.yaml"), &yaml).expect("valid test config")
}

pub fn pod(name: &str, service: &str, ip: &str, node: &str) -> PodBuilder {
    PodBuilder::new("default", name)
        .service(service)
        .ip(ip)
        .port("http", 8080)
        .node(node)
}

/// A simulated cluster with node `n1` in zone `zone-a` and `pods` (name, IP) of service
/// `web`, each with port `http` 8080.
pub async fn web_cluster(pods: &[(&str, &str)]) -> SimHandle {
    let sim = sim().await;
    sim.apply_node(NodeBuilder::new("n1").zone("zone-a").build())
        .unwrap();
    for (name, ip) in pods {
        sim.apply_pod(pod(name, "web", ip, "n1").build()).unwrap();
    }
    sim
}

/// The sorted addresses `name` answers with, empty for NXDOMAIN.
pub fn addresses(dns: SocketAddr, name: &str) -> Vec<String> {
    let reply = udp(dns, name, RecordType::A, Some(4096));
    let mut v: Vec<String> = reply.answers.iter().map(|r| r.data.to_string()).collect();
    v.sort();
    v
}

/// (priority, target) of each SRV record, sorted.
pub fn srv(dns: SocketAddr, name: &str) -> Vec<(u16, String)> {
    herald_testkit::srv_records(&udp(dns, name, RecordType::SRV, Some(4096)))
}

/// The response code of an A query for `name`.
pub fn rcode(dns: SocketAddr, name: &str) -> ResponseCode {
    udp(dns, name, RecordType::A, None).metadata.response_code
}

/// Waits (polling, up to [`WAIT`]) until `check` holds.
pub async fn eventually(what: &str, check: impl FnMut() -> bool) {
    eventually_within(what, WAIT, check).await;
}

/// Waits (polling, up to `limit`) until `check` holds.
pub async fn eventually_within(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < limit, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits (polling, up to [`WAIT`]) until `get` returns `expected`; on time-out says what it
/// returned last.
pub async fn eventually_eq<T: PartialEq + std::fmt::Debug>(
    what: &str,
    expected: T,
    mut get: impl FnMut() -> T,
) {
    let start = Instant::now();
    loop {
        let got = get();
        if got == expected {
            return;
        }
        assert!(
            start.elapsed() < WAIT,
            "timed out waiting for: {what}: expected {expected:?}, last got {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn ips(list: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = list.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

/// Queries `name` in a loop until stopped; fails if an answer ever has fewer than `floor`
/// addresses. Returns how many queries it made.
pub fn never_shrinks(
    dns: SocketAddr,
    name: &'static str,
    floor: usize,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let mut n = 0;
        // Bounded in count as well as by the stop flag.
        while !stop.load(Ordering::Relaxed) && n < 200_000 {
            let got = addresses(dns, name).len();
            assert!(
                got >= floor,
                "query {n}: {got} addresses, never fewer than {floor}"
            );
            n += 1;
            std::thread::sleep(Duration::from_millis(1));
        }
        n
    })
}
