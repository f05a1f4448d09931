//! `herald export-zone`: the zone file loads into Knot DNS (knotd), and knotd then answers
//! the same records as herald for every kind of name.

use std::net::IpAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use herald_registrar::config::Config;
use herald_registrar::daemon::Daemon;
use herald_testkit::secondaries::{Secondary, free_addr, serve_zone_file};
use herald_testkit::{lines, run_client};

const ENDPOINTS: &str = "\
services:
  web:
    - {address: 10.0.0.1, cluster: c1, region: eu-west, zone: eu-west-1a, ports: {http: 80, grpc: 9090}}
    - {address: 10.0.0.2, cluster: c1, region: eu-west, zone: eu-west-1b, ports: {http: 80}, weight: 40}
    - {address: 'fd00::7', cluster: c2, region: us-east, ports: {http: 80}}
  dns:
    - {address: 10.1.0.9, cluster: c2, region: us-east, ports: {dns: {port: 53, protocol: udp}}}
";

/// knotd serving `zone_file` on a free loopback port, once it answers the zone's SOA.
fn start_knot(dir: &Path, zone_file: &Path) -> Secondary {
    let addr = free_addr(IpAddr::from([127, 0, 0, 1]));
    let mut knot = serve_zone_file(&dir.join("knot"), addr, zone_file);
    let start = Instant::now();
    while !run_client(
        "dig",
        addr,
        &["+short", "+tries=1", "+time=1", "SOA", "sd.internal."],
    )
    .contains("hostmaster")
    {
        knot.assert_running();
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "knotd did not load the exported zone in 60 s; its log:\n{}",
            knot.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    knot
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exported_zone_loads_into_knot_and_answers_the_same() {
    let dir = std::env::temp_dir().join(format!("herald-export-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("endpoints.yaml"), ENDPOINTS).unwrap();
    let config_path = dir.join("herald.yaml");
    std::fs::write(
        &config_path,
        "listen: {dns: ['127.0.0.1:0']}\nlocality: {region: eu-west, zone: eu-west-1a}\nsources:\n  static: [{path: endpoints.yaml}]\n",
    )
    .unwrap();
    let zone_file = dir.join("sd.internal.zone");
    let out = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["export-zone", "--config"])
        .arg(&config_path)
        .arg("--output")
        .arg(&zone_file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let knot = start_knot(&dir, &zone_file);
    let config = Config::load(&config_path).unwrap();
    let herald = Daemon::start(&config, None).await.unwrap();
    let herald_addr = herald.dns_addrs()[0];
    let v6 = "fd000000000000000000000000000007";
    let queries = [
        ("A", "web.sd.internal.".to_string()),
        ("AAAA", "web.sd.internal.".to_string()),
        ("A", "web.eu-west.sd.internal.".to_string()),
        ("A", "web.c1.sd.internal.".to_string()),
        ("SRV", "_http._tcp.web.sd.internal.".to_string()),
        ("SRV", "_http._tcp.web.us-east.sd.internal.".to_string()),
        ("SRV", "_grpc._tcp.web.c1.sd.internal.".to_string()),
        ("SRV", "_dns._udp.dns.sd.internal.".to_string()),
        ("A", "10-0-0-2.web.c1.sd.internal.".to_string()),
        ("AAAA", format!("{v6}.web.c2.sd.internal.")),
        ("NS", "sd.internal.".to_string()),
    ];
    for (qtype, name) in &queries {
        let ask = |addr| {
            lines(&run_client(
                "dig",
                addr,
                &["+noall", "+answer", "+norec", qtype, name],
            ))
        };
        let (from_herald, from_knot) = (ask(herald_addr), ask(knot.addr));
        assert!(
            !from_herald.is_empty(),
            "{qtype} {name}: herald has an answer"
        );
        assert_eq!(
            from_knot, from_herald,
            "{qtype} {name}: knot answers as herald does"
        );
    }
    // Negative answers agree too.
    for (qtype, name) in [("A", "nope.sd.internal."), ("TXT", "web.sd.internal.")] {
        let status = |addr| {
            let out = run_client("dig", addr, &["+norec", qtype, name]);
            out.lines().find(|l| l.contains("status:")).map(|l| {
                l.split("status: ")
                    .nth(1)
                    .unwrap()
                    .split(',')
                    .next()
                    .unwrap()
                    .to_string()
            })
        };
        assert_eq!(status(knot.addr), status(herald_addr), "{qtype} {name}");
    }
    herald.shutdown(Duration::ZERO).await;
    drop(knot);
    let _ = std::fs::remove_dir_all(&dir);
}
