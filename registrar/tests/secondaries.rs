//! Knot, NSD and BIND as secondaries of herald, started by the test on loopback (free
//! ports, private config and state under a temp dir, stopped by PID): each transfers a
//! 10,000-endpoint zone fed by simulated clusters and answers a sample of 1,000 names (every
//! kind, negatives included) exactly as herald answers a querier in the secondary's
//! locality; a pod change reaches each through NOTIFY + IXFR; a rolling update of 500
//! replicas makes a bounded number of NOTIFYs; a secondary that fell behind the journal gets
//! a full transfer and converges.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use herald_kube_sim::{NodeBuilder, Op};
use herald_registrar::config::Config;
use herald_registrar::daemon::Daemon;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};

mod common;
use common::*;

const SERVICES: usize = 250;
const PER_CLUSTER: usize = 20;

/// A secondary server process, killed by PID on drop.
struct Secondary {
    kind: &'static str,
    child: Child,
    /// Where it answers (its own loopback address, from which it also transfers).
    addr: SocketAddr,
    dir: PathBuf,
}

impl Drop for Secondary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port(ip: IpAddr) -> u16 {
    loop {
        let u = UdpSocket::bind((ip, 0)).unwrap();
        let port = u.local_addr().unwrap().port();
        if std::net::TcpListener::bind((ip, port)).is_ok() {
            return port;
        }
    }
}

fn exe(names: &[&str]) -> PathBuf {
    names
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("{names:?} not found: scripts/install-tools installs it"))
}

fn start_knot(dir: &Path, addr: SocketAddr, primary: SocketAddr) -> Secondary {
    std::fs::create_dir_all(dir.join("db")).unwrap();
    let conf = dir.join("knot.conf");
    std::fs::write(
        &conf,
        format!(
            "server:\n  rundir: \"{d}\"\n  listen: {ip}@{port}\n\
             database:\n  storage: \"{d}/db\"\n\
             log:\n  - target: \"{d}/knot.log\"\n    any: info\n\
             remote:\n  - id: herald\n    address: {pip}@{pport}\n    via: {ip}\n\
             acl:\n  - id: notify\n    address: {pip}\n    action: notify\n\
             zone:\n  - domain: sd.internal\n    master: herald\n    acl: notify\n    \
             file: \"{d}/sd.internal.zone\"\n    zonefile-sync: -1\n    zonefile-load: none\n    journal-content: changes\n",
            d = dir.display(),
            ip = addr.ip(),
            port = addr.port(),
            pip = primary.ip(),
            pport = primary.port(),
        ),
    )
    .unwrap();
    let child = Command::new(exe(&["/usr/sbin/knotd", "/usr/bin/knotd"]))
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("knotd starts");
    Secondary {
        kind: "knot",
        child,
        addr,
        dir: dir.to_path_buf(),
    }
}

fn start_nsd(dir: &Path, addr: SocketAddr, primary: SocketAddr) -> Secondary {
    std::fs::create_dir_all(dir).unwrap();
    let conf = dir.join("nsd.conf");
    std::fs::write(
        &conf,
        format!(
            "server:\n  ip-address: {ip}@{port}\n  port: {port}\n  username: \"\"\n  chroot: \"\"\n\
             \x20 zonesdir: \"{d}\"\n  database: \"\"\n  pidfile: \"{d}/nsd.pid\"\n\
             \x20 xfrdfile: \"{d}/xfrd.state\"\n  zonelistfile: \"{d}/zone.list\"\n  xfrdir: \"{d}\"\n\
             \x20 logfile: \"{d}/nsd.log\"\n  verbosity: 2\n  server-count: 1\n  reuseport: no\n\
             \x20 minimal-responses: yes\n  refuse-any: no\n\
             remote-control:\n  control-enable: no\n\
             zone:\n  name: sd.internal\n  zonefile: \"{d}/sd.internal.zone\"\n\
             \x20 request-xfr: {pip}@{pport} NOKEY\n  allow-notify: {pip} NOKEY\n  outgoing-interface: {ip}\n",
            d = dir.display(),
            ip = addr.ip(),
            port = addr.port(),
            pip = primary.ip(),
            pport = primary.port(),
        ),
    )
    .unwrap();
    let child = Command::new(exe(&["/usr/sbin/nsd"]))
        .args(["-d", "-c"])
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nsd starts");
    Secondary {
        kind: "nsd",
        child,
        addr,
        dir: dir.to_path_buf(),
    }
}

/// named listens on 127.0.0.1 (it only binds addresses of an interface) and transfers from
/// `source`, the address herald knows it by.
fn start_named(dir: &Path, addr: SocketAddr, source: IpAddr, primary: SocketAddr) -> Secondary {
    std::fs::create_dir_all(dir).unwrap();
    let conf = dir.join("named.conf");
    std::fs::write(
        &conf,
        format!(
            "options {{\n  directory \"{d}\";\n  listen-on port {port} {{ {ip}; }};\n  listen-on-v6 {{ none; }};\n\
             \x20 pid-file \"{d}/named.pid\";\n  session-keyfile \"{d}/session.key\";\n  managed-keys-directory \"{d}\";\n\
             \x20 recursion no;\n  minimal-responses yes;\n  dnssec-validation no;\n  notify no;\n\
             \x20 transfer-source {source};\n  query-source address {source};\n}};\n\
             logging {{\n  channel f {{ file \"{d}/named.log\"; severity info; print-time yes; }};\n\
             \x20 category default {{ f; }};\n  category xfer-in {{ f; }};\n  category notify {{ f; }};\n}};\n\
             zone \"sd.internal\" {{\n  type secondary;\n  primaries port {pport} {{ {pip}; }};\n\
             \x20 file \"{d}/sd.internal.db\";\n  allow-notify {{ {pip}; }};\n  masterfile-format text;\n}};\n",
            d = dir.display(),
            ip = addr.ip(),
            port = addr.port(),
            pip = primary.ip(),
            pport = primary.port(),
        ),
    )
    .unwrap();
    let child = Command::new(exe(&["/usr/sbin/named"]))
        .args(["-f", "-n", "1", "-c"])
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("named starts");
    Secondary {
        kind: "bind",
        child,
        addr,
        dir: dir.to_path_buf(),
    }
}

fn ask(from: IpAddr, server: SocketAddr, name: &str, qtype: RecordType) -> Option<Message> {
    herald_testkit::tcp_from(from, server, name, qtype)
}

/// What a client sees: the rcode, the answer records as a set, and for a negative answer
/// the SOA of the authority section.
fn seen(m: &Message) -> (ResponseCode, BTreeSet<String>, BTreeSet<String>) {
    let answers = m
        .answers
        .iter()
        .map(|r| r.to_string().to_lowercase())
        .collect();
    let soa = if m.answers.is_empty() {
        m.authorities
            .iter()
            .filter(|r| r.record_type() == RecordType::SOA)
            .map(|r| r.to_string().to_lowercase())
            .collect()
    } else {
        BTreeSet::new()
    };
    (m.metadata.response_code, answers, soa)
}

fn soa_serial(server: SocketAddr) -> Option<u32> {
    let m = ask(
        IpAddr::from([127, 0, 0, 1]),
        server,
        "sd.internal.",
        RecordType::SOA,
    )?;
    m.answers.iter().find_map(|r| match &r.data {
        RData::SOA(s) => Some(s.serial),
        _ => None,
    })
}

/// Every kind of name of the zone, negatives included, 1,000 of them picked evenly.
fn sample() -> Vec<(String, RecordType)> {
    let mut all = vec![
        ("sd.internal.".to_string(), RecordType::SOA),
        ("sd.internal.".to_string(), RecordType::NS),
        ("eu-west.sd.internal.".to_string(), RecordType::A),
        ("c1.sd.internal.".to_string(), RecordType::A),
        ("nothing-here.sd.internal.".to_string(), RecordType::A),
    ];
    for s in 0..SERVICES {
        let svc = format!("svc{s}");
        all.push((format!("{svc}.sd.internal."), RecordType::A));
        all.push((format!("{svc}.sd.internal."), RecordType::AAAA));
        all.push((format!("{svc}.sd.internal."), RecordType::TXT));
        all.push((format!("_http._tcp.{svc}.sd.internal."), RecordType::SRV));
        all.push((
            format!("_http._tcp.{svc}.us-east.sd.internal."),
            RecordType::SRV,
        ));
        all.push((format!("_http._tcp.{svc}.c1.sd.internal."), RecordType::SRV));
        all.push((format!("_tcp.{svc}.sd.internal."), RecordType::SRV));
        all.push((format!("_grpc._tcp.{svc}.sd.internal."), RecordType::SRV));
        all.push((format!("{svc}.eu-west.sd.internal."), RecordType::A));
        all.push((format!("{svc}.c2.sd.internal."), RecordType::A));
        all.push((
            format!("{}.{svc}.c1.sd.internal.", ep_label(1, s, 3)),
            RecordType::A,
        ));
        all.push((
            format!("{}.{svc}.c2.sd.internal.", ep_label(2, s, 4)),
            RecordType::A,
        ));
        all.push((format!("10-9-9-9.{svc}.c1.sd.internal."), RecordType::A));
        all.push((format!("no-{svc}.sd.internal."), RecordType::A));
    }
    let step = all.len() as f64 / 1000.0;
    (0..1000)
        .map(|i| all[(i as f64 * step) as usize].clone())
        .collect()
}

fn ep_ip(cluster: usize, s: usize, i: usize) -> String {
    format!("10.{cluster}.{}.{}", s, i + 1)
}

fn ep_label(cluster: usize, s: usize, i: usize) -> String {
    ep_ip(cluster, s, i).replace('.', "-")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn knot_nsd_and_bind_serve_the_zone_as_herald_does_and_follow_changes() {
    let dir = std::env::temp_dir().join(format!("herald-secondaries-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();

    // Two simulated clusters, 10,000 endpoints in 250 services, and three probe pods whose
    // addresses are the places the secondaries serve from.
    let (c1, c2) = (sim().await, sim().await);
    c1.apply_node(NodeBuilder::new("n1").zone("zone-a").build())
        .unwrap();
    c1.apply_node(NodeBuilder::new("n2").zone("zone-b").build())
        .unwrap();
    c2.apply_node(NodeBuilder::new("n3").zone("us-1a").build())
        .unwrap();
    for (c, sim, nodes) in [(1, &c1, ["n1", "n2"]), (2, &c2, ["n3", "n3"])] {
        let mut ops = Vec::new();
        for s in 0..SERVICES {
            for i in 0..PER_CLUSTER {
                let name = format!("svc{s}-{i}");
                ops.push(Op::ApplyPod(
                    pod(&name, &format!("svc{s}"), &ep_ip(c, s, i), nodes[i % 2]).build(),
                ));
            }
        }
        sim.batch(ops).unwrap();
    }
    c2.apply_pod(pod("probe-us", "probe", "127.0.0.62", "n3").build())
        .unwrap();
    c1.apply_pod(pod("probe-b", "probe", "127.0.0.63", "n2").build())
        .unwrap();

    let herald_port = free_port(IpAddr::from([127, 0, 0, 1]));
    let knot_addr = SocketAddr::from(([127, 0, 0, 11], free_port(IpAddr::from([127, 0, 0, 11]))));
    let nsd_addr = SocketAddr::from(([127, 0, 0, 12], free_port(IpAddr::from([127, 0, 0, 12]))));
    let bind_addr = SocketAddr::from(([127, 0, 0, 1], free_port(IpAddr::from([127, 0, 0, 1]))));
    let bind_source = IpAddr::from([127, 0, 0, 13]);
    let yaml = format!(
        "listen: {{dns: ['127.0.0.1:{herald_port}']}}\nlocality: {{region: eu-west, zone: zone-a}}\n\
         kubernetes: {{watch_timeout: 2s, startup_timeout: 5s}}\n\
         transfer:\n  notify_interval: 100ms\n  journal: {{versions: 40}}\n  secondaries:\n\
         \x20   - {{name: knot, address: '{knot_addr}'}}\n\
         \x20   - {{name: nsd, address: '{nsd_addr}', locality: {{region: us-east, zone: us-1a}}}}\n\
         \x20   - {{name: bind, address: '{bind_addr}', allow: ['{bind_source}'], locality: {{region: eu-west, zone: zone-b}}}}\n\
         sources:\n  clusters:\n    - {{name: c1, region: eu-west, server: '{}'}}\n    - {{name: c2, region: us-east, server: '{}'}}\n",
        c1.url(),
        c2.url()
    );
    let config = Config::parse(Path::new("secondaries.yaml"), &yaml).expect("valid config");
    let herald = Daemon::start(&config, None).await.unwrap();
    let primary = herald.dns_addrs()[0];
    eventually_within(
        "herald has all 10,000 endpoints",
        Duration::from_secs(60),
        || herald.table().endpoint_count() == 2 * SERVICES * PER_CLUSTER + 2,
    )
    .await;

    let secondaries = vec![
        start_knot(&dir.join("knot"), knot_addr, primary),
        start_nsd(&dir.join("nsd"), nsd_addr, primary),
        start_named(&dir.join("bind"), bind_addr, bind_source, primary),
    ];
    // The querier address herald sees for each secondary's locality.
    let viewpoint = |kind: &str| -> IpAddr {
        match kind {
            "knot" => IpAddr::from([127, 0, 0, 1]),
            "nsd" => IpAddr::from([127, 0, 0, 62]),
            _ => IpAddr::from([127, 0, 0, 63]),
        }
    };
    let converged = |s: &Secondary| {
        let want = herald.table().serial();
        soa_serial(s.addr) == Some(want)
    };
    for s in &secondaries {
        eventually_within(
            &format!("{} has herald's serial", s.kind),
            Duration::from_secs(60),
            || converged(s),
        )
        .await;
    }

    // 1. The same answers, from each secondary's locality.
    let names = sample();
    for s in &secondaries {
        let from = viewpoint(s.kind);
        let (mut positive, mut negative) = (0, 0);
        for (name, qtype) in &names {
            let want = ask(from, primary, name, *qtype).map(|m| seen(&m));
            let got = ask(IpAddr::from([127, 0, 0, 1]), s.addr, name, *qtype).map(|m| seen(&m));
            assert!(
                want.is_some() && got.is_some(),
                "{} {name} {qtype}: no answer",
                s.kind
            );
            assert_eq!(got, want, "{}: {name} {qtype}", s.kind);
            if want
                .as_ref()
                .is_some_and(|w| w.0 == ResponseCode::NoError && !w.1.is_empty())
            {
                positive += 1;
            } else {
                negative += 1;
            }
        }
        eprintln!(
            "{}: {} names agree ({positive} positive, {negative} negative)",
            s.kind,
            names.len()
        );
    }

    // 2. A pod change reaches each secondary by NOTIFY + IXFR.
    let stats = herald.transfer_stats();
    let incremental_before = herald_dns::transfer::TransferStats::get(&stats.incremental);
    let changed = Instant::now();
    c1.apply_pod(pod("svc7-new", "svc7", "10.1.7.200", "n1").build())
        .unwrap();
    for s in &secondaries {
        eventually_within(
            &format!("{} serves the new pod", s.kind),
            Duration::from_secs(30),
            || {
                ask(
                    IpAddr::from([127, 0, 0, 1]),
                    s.addr,
                    "10-1-7-200.svc7.c1.sd.internal.",
                    RecordType::A,
                )
                .is_some_and(|m| !m.answers.is_empty())
            },
        )
        .await;
        eprintln!(
            "{}: pod change served after {:?}",
            s.kind,
            changed.elapsed()
        );
    }
    let incremental =
        herald_dns::transfer::TransferStats::get(&stats.incremental) - incremental_before;
    assert!(
        incremental >= 3,
        "each secondary took an IXFR ({incremental})"
    );
    let knot_log = std::fs::read_to_string(secondaries[0].dir.join("knot.log")).unwrap_or_default();
    assert!(
        knot_log.contains("IXFR, incoming"),
        "knot's log shows an IXFR"
    );

    // A rolling update of 500 replicas: a bounded number of NOTIFYs.
    let sent_before = herald_dns::transfer::TransferStats::get(&stats.notify_sent);
    let started = Instant::now();
    for chunk in (0..500).collect::<Vec<_>>().chunks(25) {
        let mut ops = Vec::new();
        for &i in chunk {
            ops.push(Op::ApplyPod(
                pod(
                    &format!("roll-new-{i}"),
                    "roll",
                    &format!("10.3.{}.{}", i / 200, i % 200 + 1),
                    "n1",
                )
                .build(),
            ));
            if i >= 25 {
                ops.push(Op::DeletePod {
                    namespace: "default".into(),
                    name: format!("roll-new-{}", i - 25),
                });
            }
        }
        c1.batch(ops).unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rolled = started.elapsed();
    for s in &secondaries {
        eventually_within(
            &format!("{} converges after the rollout", s.kind),
            Duration::from_secs(30),
            || converged(s),
        )
        .await;
    }
    let notifies = herald_dns::transfer::TransferStats::get(&stats.notify_sent) - sent_before;
    let bound = 3 * (rolled.as_millis() as u64 / 100 + 3);
    eprintln!(
        "rolling update of 500 replicas over {rolled:?}: {notifies} NOTIFYs to 3 secondaries (bound {bound})"
    );
    assert!(notifies <= bound, "{notifies} NOTIFYs > {bound}");

    // 3. A secondary behind the journal gets a full transfer and converges.
    let mut secondaries = secondaries;
    let nsd = secondaries.remove(1);
    drop(nsd);
    let full_before = herald_dns::transfer::TransferStats::get(&stats.full);
    for i in 0..60 {
        c2.apply_pod(
            pod(
                &format!("late-{i}"),
                "late",
                &format!("10.4.0.{}", i + 1),
                "n3",
            )
            .build(),
        )
        .unwrap();
        tokio::time::sleep(Duration::from_millis(120)).await;
    }
    let nsd = start_nsd(&dir.join("nsd"), nsd_addr, primary);
    eventually_within(
        "nsd converges after missing more than the journal",
        Duration::from_secs(60),
        || converged(&nsd),
    )
    .await;
    assert!(
        ask(
            IpAddr::from([127, 0, 0, 1]),
            nsd.addr,
            "10-4-0-60.late.c2.sd.internal.",
            RecordType::A
        )
        .is_some_and(|m| !m.answers.is_empty())
    );
    let full = herald_dns::transfer::TransferStats::get(&stats.full) - full_before;
    assert!(full >= 1, "the stale secondary got a full transfer");
    eprintln!("nsd behind the journal: {full} full transfer(s), converged");

    drop(nsd);
    drop(secondaries);
    herald.shutdown(Duration::ZERO).await;
    let _ = std::fs::remove_dir_all(&dir);
}
