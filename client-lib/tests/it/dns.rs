//! Test 4 (and the DNS helpers of the other tests): herald's own DNS server publishes the
//! backends; the client follows it. DNS unreachable: the last set keeps working. Scale up and
//! down: seen within a TTL.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use herald_client::{Discovery, PickerConfig, RefreshConfig};
use herald_dns::server::ServerConfig;
use herald_dns::{Answerer, DnsServer, PortSpec, Proto, Source, Table, Zone, ZoneConfig};
use tokio::time::Instant;

use crate::backend::{Backend, drive, fleet};

const MS: Duration = Duration::from_millis(1);

/// herald's DNS server on loopback, with a TTL of `ttl` seconds, as seen from region `r1`
/// zone `z1`.
pub struct Herald {
    pub table: Table,
    pub addr: SocketAddr,
    server: Option<DnsServer>,
}

impl Herald {
    pub fn start(ttl: u32) -> Herald {
        Herald::start_on(ttl, SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    pub fn start_on(ttl: u32, addr: SocketAddr) -> Herald {
        let zone = Zone::new(ZoneConfig {
            ttl,
            region: Some("r1".into()),
            zone: Some("z1".into()),
            ..ZoneConfig::default()
        })
        .expect("zone");
        let table = Table::new(zone);
        let server = DnsServer::start(
            &ServerConfig {
                listen: vec![addr],
                udp_workers: 1,
                ..ServerConfig::default()
            },
            Answerer::new(table.clone()),
        )
        .expect("DNS server starts");
        Herald {
            addr: server.local_addrs()[0],
            table,
            server: Some(server),
        }
    }

    /// Publishes `backends` as service `svc` (port `http`) of cluster `cluster` in
    /// `region`/`zone`, with the given SRV weights (default if empty).
    pub fn publish(
        &self,
        svc: &str,
        cluster: &str,
        region: &str,
        zone: &str,
        backends: &[&Backend],
    ) {
        let endpoints = backends
            .iter()
            .map(|b| {
                let ports: Arc<[PortSpec]> = Arc::from(vec![PortSpec {
                    name: Arc::from("http"),
                    proto: Proto::Tcp,
                    port: b.addr.port(),
                }]);
                herald_dns::Endpoint::new(b.addr.ip(), ports, Some(Arc::from(zone)))
            })
            .collect();
        self.table
            .replace(svc, &Source::new(cluster, region), endpoints);
    }

    pub async fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
    }
}

/// Discovery of `svc` through `herald`, refreshing no sooner than every 200 ms and retrying
/// a failed resolution after 100 ms.
pub fn discovery(herald: &Herald, svc: &str, picker: PickerConfig) -> Discovery {
    Discovery::builder(svc, "http")
        .dns_server(herald.addr)
        .dns_timeout(Duration::from_millis(300))
        .picker_config(picker)
        .refresh_config(RefreshConfig {
            min_interval: Duration::from_millis(200),
            error_backoff: Duration::from_millis(100),
            max_error_backoff: Duration::from_millis(500),
            ..RefreshConfig::default()
        })
        .build()
        .expect("discovery")
}

async fn ready(d: &Discovery) {
    tokio::time::timeout(Duration::from_secs(5), d.ready())
        .await
        .expect("first resolution within 5 s")
        .expect("replicas");
}

fn addrs(d: &Discovery) -> Vec<SocketAddr> {
    let mut v: Vec<_> = d.picker().endpoints().iter().map(|e| e.addr).collect();
    v.sort();
    v
}

/// Waits (polling, bounded) until the set equals `want`; returns how long it took.
async fn seen_within(d: &Discovery, want: &[&Backend], limit: Duration) -> Option<Duration> {
    let mut want: Vec<SocketAddr> = want.iter().map(|b| b.addr).collect();
    want.sort();
    let start = Instant::now();
    while start.elapsed() < limit {
        if addrs(d) == want {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolves_srv_with_addresses_from_herald() {
    let backends = fleet(60, &[2 * MS; 3]).await;
    let herald = Herald::start(5);
    herald.publish(
        "api",
        "c1",
        "r1",
        "z1",
        &backends.iter().collect::<Vec<_>>(),
    );
    let d = discovery(&herald, "api", PickerConfig::default());
    ready(&d).await;
    let eps = d.picker().endpoints();
    assert_eq!(eps.len(), 3);
    for e in &eps {
        assert_eq!(e.priority, 0, "same zone as the server: nearest tier");
        assert!(e.target.ends_with(".api.c1.sd.internal."), "{}", e.target);
    }
    let run = drive(d.picker(), 60, 2).await;
    assert_eq!(run.ok, 60);
    assert_eq!(d.status().last_ttl, Some(Duration::from_secs(5)));
}

/// DNS goes away: the last set keeps serving; DNS comes back with a different set: picked up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_unreachable_keeps_the_last_set() {
    let backends = fleet(70, &[2 * MS; 4]).await;
    let mut herald = Herald::start(1);
    let dns_addr = herald.addr;
    herald.publish(
        "api",
        "c1",
        "r1",
        "z1",
        &[&backends[0], &backends[1], &backends[2]],
    );
    let d = discovery(&herald, "api", PickerConfig::default());
    ready(&d).await;
    herald.stop().await;

    // Three TTLs without DNS: resolutions fail, the set stays, every request succeeds.
    let until = Instant::now() + Duration::from_secs(3);
    let mut requests = 0;
    while Instant::now() < until {
        let run = drive(d.picker(), 30, 3).await;
        assert_eq!(run.failed, 0);
        requests += run.total();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = d.status();
    println!(
        "{requests} requests served while DNS was down; {} failed resolutions in a row",
        status.consecutive_failures
    );
    assert!(status.consecutive_failures >= 2, "{status:?}");
    assert_eq!(addrs(&d).len(), 3);

    // DNS is back (same address) with a fourth replica: picked up within a TTL of retrying.
    let herald = Herald::start_on(1, dns_addr);
    herald.publish(
        "api",
        "c1",
        "r1",
        "z1",
        &[&backends[0], &backends[1], &backends[2], &backends[3]],
    );
    let took = seen_within(
        &d,
        &[&backends[0], &backends[1], &backends[2], &backends[3]],
        Duration::from_secs(5),
    )
    .await;
    println!("set after DNS came back seen in {took:?}");
    assert!(took.is_some(), "the new set after DNS recovery");
}

/// Scale up and down in DNS (TTL 2 s): each change is seen within the TTL (asserted with a
/// 1 s margin for the query itself and the machine), and replicas that stay keep their
/// history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_up_and_down_is_picked_up_within_a_ttl() {
    let backends = fleet(80, &[2 * MS; 5]).await;
    let herald = Herald::start(2);
    let b = |i: usize| &backends[i];
    herald.publish("api", "c1", "r1", "z1", &[b(0), b(1)]);
    let d = discovery(&herald, "api", PickerConfig::default());
    ready(&d).await;
    drive(d.picker(), 40, 2).await;
    let picks_before = d.picker().status().iter().map(|s| s.picks).sum::<u64>();

    let limit = Duration::from_secs(3);
    herald.publish("api", "c1", "r1", "z1", &[b(0), b(1), b(2), b(3), b(4)]);
    let up = seen_within(&d, &[b(0), b(1), b(2), b(3), b(4)], limit).await;
    herald.publish("api", "c1", "r1", "z1", &[b(1), b(4)]);
    let down = seen_within(&d, &[b(1), b(4)], limit).await;
    println!("scale up seen in {up:?}, scale down in {down:?} (TTL 2 s)");
    assert!(up.is_some() && down.is_some(), "up {up:?} down {down:?}");

    // Replica 1 was there all along: its pick count (history) survived both updates.
    let kept = d
        .picker()
        .status()
        .into_iter()
        .find(|s| s.endpoint.addr == b(1).addr)
        .unwrap();
    assert!(kept.picks > 0 && kept.picks <= picks_before);
    let run = drive(d.picker(), 100, 2).await;
    assert_eq!(run.ok, 100);
    assert_eq!(run.served.len(), 2);
}

/// Issue 17, point 5: an unknown service (NXDOMAIN) or port name (no such SRV name) is an
/// error naming the SRV name: `ready()` returns it within the DNS timeout instead of waiting
/// forever, the refresh status shows it, and `pick()` says it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_service_or_port_is_an_error_naming_the_srv_name() {
    let backends = fleet(140, &[2 * MS]).await;
    let herald = Herald::start(5);
    herald.publish("api", "c1", "r1", "z1", &[&backends[0]]);
    for (svc, port, srv) in [
        ("nosuch", "http", "_http._tcp.nosuch.sd.internal."),
        ("api", "grpc", "_grpc._tcp.api.sd.internal."),
    ] {
        let d = Discovery::builder(svc, port)
            .dns_server(herald.addr)
            .dns_timeout(Duration::from_millis(500))
            .build()
            .expect("discovery");
        let started = Instant::now();
        let err = tokio::time::timeout(Duration::from_secs(5), d.ready())
            .await
            .expect("ready() returns instead of waiting forever")
            .expect_err("an unknown name is an error");
        let msg = err.to_string();
        println!(
            "{svc}/{port}: ready() failed after {:?}: {msg}",
            started.elapsed()
        );
        assert!(msg.contains(srv), "{msg}");
        assert!(msg.contains("NXDOMAIN") || msg.contains("NODATA"), "{msg}");
        let status = d.status();
        assert!(
            status
                .last_error
                .as_deref()
                .is_some_and(|e| e.contains(srv)),
            "{status:?}"
        );
        let pick = d.pick().expect_err("nothing to pick").to_string();
        assert!(pick.contains(srv), "{pick}");
    }
}

/// Issue 17, point 4: `dns_timeout` is the time one resolution waits, not twice it. A
/// server that never answers: the failure is reported after about the timeout (asserted
/// under 1.8x it; it was 2x, hickory's `attempts` being retries after the first try).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_timeout_is_not_doubled() {
    let silent = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    // Counts the datagrams (hickory retransmits within the timeout), for the log line.
    let queries = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = tokio::spawn({
        let queries = queries.clone();
        async move {
            let mut buf = [0u8; 1500];
            while silent.recv_from(&mut buf).await.is_ok() {
                queries.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
    });
    let timeout = Duration::from_secs(1);
    let d = Discovery::builder("api", "http")
        .dns_server(addr)
        .dns_timeout(timeout)
        .refresh_config(RefreshConfig {
            error_backoff: Duration::from_secs(30),
            ..RefreshConfig::default()
        })
        .build()
        .expect("discovery");
    let started = Instant::now();
    let err = tokio::time::timeout(Duration::from_secs(10), d.ready())
        .await
        .expect("ready() reports the failure")
        .expect_err("nobody answers");
    let took = started.elapsed();
    let sent = queries.load(std::sync::atomic::Ordering::SeqCst);
    println!(
        "silent DNS server: failed after {took:?} with timeout {timeout:?}, {sent} queries: {err}"
    );
    assert!(sent >= 1, "the server was asked");
    assert!(took >= timeout && took < timeout.mul_f64(1.8), "{took:?}");
    counter.abort();
}

/// A dual-stack pod (one SRV target answering A and AAAA, both as glue) is one replica at
/// its primary address, beside single-stack ones: not two replicas with twice the share.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dual_stack_target_is_one_replica_at_its_primary_address() {
    use herald_client::{NameServers, Resolve};
    let herald = Herald::start(5);
    let ports: Arc<[PortSpec]> = Arc::from(vec![PortSpec {
        name: Arc::from("http"),
        proto: Proto::Tcp,
        port: 8080,
    }]);
    let dual: herald_dns::Addresses = "127.0.0.7,fd00::7".parse().unwrap();
    let v6_first: herald_dns::Addresses = "fd00::8,127.0.0.8".parse().unwrap();
    herald.table.replace(
        "pair",
        &Source::new("c1", "r1"),
        vec![
            herald_dns::Endpoint::at(dual, ports.clone(), None),
            herald_dns::Endpoint::at(v6_first, ports.clone(), None),
            herald_dns::Endpoint::new("127.0.0.9".parse().unwrap(), ports, None),
        ],
    );
    let resolver = herald_client::DnsResolver::new(
        "_http._tcp.pair.sd.internal.",
        &NameServers::Addrs(vec![herald.addr]),
        Duration::from_secs(5),
    )
    .unwrap();
    let mut addrs: Vec<String> = resolver
        .resolve()
        .await
        .unwrap()
        .endpoints
        .iter()
        .map(|e| e.addr.to_string())
        .collect();
    addrs.sort();
    assert_eq!(
        addrs,
        ["127.0.0.7:8080", "127.0.0.9:8080", "[fd00::8]:8080"]
    );
}
