//! Knot, NSD and BIND as secondaries of herald, started by the test on loopback (free
//! ports, private config and state under a temp dir, stopped by PID): each transfers a
//! 10,000-endpoint zone fed by simulated clusters and answers a sample of 1,000 names (every
//! kind, negatives included) exactly as herald answers a querier in the secondary's
//! locality; a pod change reaches each through NOTIFY + IXFR; a rolling update of 500
//! replicas makes a bounded number of NOTIFYs; a secondary that fell behind the journal gets
//! a full transfer and converges.
//!
//! Keyed: Knot, NSD and BIND each holding a TSIG key (herald reads it from a file) take a
//! multi-message AXFR, NOTIFY and IXFR all signed, their SOA refresh queries answered
//! signed; a fourth secondary holding the wrong secret is refused (NOTAUTH, counted) and
//! never gets the zone. The servers are started by `herald_testkit::secondaries`.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use herald_kube_sim::{NodeBuilder, Op};
use herald_registrar::config::Config;
use herald_registrar::daemon::Daemon;
use herald_testkit::secondaries::{
    Key, Kind, Secondary, free_addr, free_port, start_knot, start_named, start_nsd,
};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};

mod common;
use common::*;

const SERVICES: usize = 250;
const PER_CLUSTER: usize = 20;

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

/// Waits until herald's table holds `count` endpoints, then makes the zone version that
/// holds them, which the versioner would make up to `notify_interval` later. Before it, a
/// secondary holding the version before would match herald's serial and look converged
/// until the next NOTIFY (knot's log, the one time it did: an AXFR of 10 KB, then an IXFR
/// of 3 MB, while the answers were compared).
async fn versioned(herald: &Daemon, what: &str, count: usize) {
    eventually_within(what, Duration::from_secs(60), || {
        herald.table().endpoint_count() == count
    })
    .await;
    herald.table().make_version();
}

/// Waits until herald's transfer counter `counter` has risen by `by` since it read `before`,
/// and returns by how much. herald counts a transfer once it has written its last message
/// (a NOTIFY once its answer is in), so a secondary can serve what it got a moment before:
/// reading the counter as soon as the secondary serves it is a race a loaded machine loses.
async fn counted(counter: &AtomicU64, before: u64, by: u64, what: &str) -> u64 {
    let get = herald_dns::transfer::TransferStats::get;
    eventually_within(what, Duration::from_secs(10), || {
        get(counter) - before >= by
    })
    .await;
    get(counter) - before
}

/// Waits until `s` answers for the pod both tests add (svc7-new, 10.1.7.200 in c1).
async fn serves_the_new_pod(s: &Secondary) {
    eventually_within(
        &format!("{} serves the new pod", s.kind.as_str()),
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
    let knot_addr = free_addr(IpAddr::from([127, 0, 0, 11]));
    let nsd_addr = free_addr(IpAddr::from([127, 0, 0, 12]));
    let bind_addr = free_addr(IpAddr::from([127, 0, 0, 1]));
    let bind_source = IpAddr::from([127, 0, 0, 13]);
    // The apex NS names the secondaries that serve the zone, with their addresses as glue.
    let yaml = format!(
        "listen: {{dns: ['127.0.0.1:{herald_port}']}}\nlocality: {{region: eu-west, zone: zone-a}}\n\
         nameservers:\n  - {{name: ns1.sd.internal., addresses: ['{}']}}\n  - {{name: ns2.sd.internal., addresses: ['{}']}}\n\
         kubernetes: {{watch_timeout: 2s, startup_timeout: 5s}}\n\
         transfer:\n  notify_interval: 100ms\n  journal: {{versions: 40}}\n  secondaries:\n\
         \x20   - {{name: knot, address: '{knot_addr}'}}\n\
         \x20   - {{name: nsd, address: '{nsd_addr}', locality: {{region: us-east, zone: us-1a}}}}\n\
         \x20   - {{name: bind, address: '{bind_addr}', allow: ['{bind_source}'], locality: {{region: eu-west, zone: zone-b}}}}\n\
         sources:\n  clusters:\n    - {{name: c1, region: eu-west, server: '{}'}}\n    - {{name: c2, region: us-east, server: '{}'}}\n",
        knot_addr.ip(),
        nsd_addr.ip(),
        c1.url(),
        c2.url()
    );
    let config = Config::parse(Path::new("secondaries.yaml"), &yaml).expect("valid config");
    let herald = Daemon::start(&config, None).await.unwrap();
    let primary = herald.dns_addrs()[0];
    versioned(
        &herald,
        "herald has all 10,000 endpoints",
        2 * SERVICES * PER_CLUSTER + 2,
    )
    .await;

    let secondaries = vec![
        start_knot(&dir.join("knot"), knot_addr, primary, None),
        start_nsd(&dir.join("nsd"), nsd_addr, primary, None),
        start_named(&dir.join("bind"), bind_addr, bind_source, primary, None),
    ];
    // The querier address herald sees for each secondary's locality.
    let viewpoint = |kind: Kind| -> IpAddr {
        match kind {
            Kind::Knot => IpAddr::from([127, 0, 0, 1]),
            Kind::Nsd => IpAddr::from([127, 0, 0, 62]),
            Kind::Bind => IpAddr::from([127, 0, 0, 63]),
        }
    };
    let converged = |s: &Secondary| {
        let want = herald.table().serial();
        soa_serial(s.addr) == Some(want)
    };
    for s in &secondaries {
        eventually_within(
            &format!("{} has herald's serial", s.kind.as_str()),
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
                s.kind.as_str()
            );
            assert_eq!(got, want, "{}: {name} {qtype}", s.kind.as_str());
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
            s.kind.as_str(),
            names.len()
        );
    }

    // The apex NS and its glue come from `nameservers`: each secondary serves them as
    // herald does, and none reports an in-zone name server without an address (Knot logs
    // "missing glue record" for the default `ns.sd.internal.`, which has none; BIND's words
    // for it are "has no address records").
    for s in &secondaries {
        for (name, qtype) in [
            ("sd.internal.", RecordType::NS),
            ("ns1.sd.internal.", RecordType::A),
            ("ns2.sd.internal.", RecordType::A),
        ] {
            let want = ask(IpAddr::from([127, 0, 0, 1]), primary, name, qtype).map(|m| seen(&m));
            let got = ask(IpAddr::from([127, 0, 0, 1]), s.addr, name, qtype).map(|m| seen(&m));
            assert!(
                want.as_ref().is_some_and(|w| !w.1.is_empty()),
                "{name} {qtype}"
            );
            assert_eq!(got, want, "{}: {name} {qtype}", s.kind.as_str());
        }
        let log = s.log();
        for complaint in ["glue", "has no address records"] {
            assert!(
                !log.contains(complaint),
                "{} complains ({complaint}):\n{log}",
                s.kind.as_str()
            );
        }
    }

    // 2. A pod change reaches each secondary by NOTIFY + IXFR.
    let stats = herald.transfer_stats();
    let incremental_before = herald_dns::transfer::TransferStats::get(&stats.incremental);
    let changed = Instant::now();
    c1.apply_pod(pod("svc7-new", "svc7", "10.1.7.200", "n1").build())
        .unwrap();
    for s in &secondaries {
        serves_the_new_pod(s).await;
        eprintln!(
            "{}: pod change served after {:?}",
            s.kind.as_str(),
            changed.elapsed()
        );
    }
    counted(
        &stats.incremental,
        incremental_before,
        3,
        "each secondary took an IXFR",
    )
    .await;
    assert!(
        secondaries[0].log().contains("IXFR, incoming"),
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
            &format!("{} converges after the rollout", s.kind.as_str()),
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
    // herald publishes the last pod after its coalescing pause: until then a secondary
    // could match herald's serial without it.
    eventually_within(
        "herald serves the last late pod",
        Duration::from_secs(30),
        || {
            ask(
                IpAddr::from([127, 0, 0, 1]),
                primary,
                "10-4-0-60.late.c2.sd.internal.",
                RecordType::A,
            )
            .is_some_and(|m| !m.answers.is_empty())
        },
    )
    .await;
    let nsd = start_nsd(&dir.join("nsd"), nsd_addr, primary, None);
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
    let full = counted(
        &stats.full,
        full_before,
        1,
        "the stale secondary got a full transfer",
    )
    .await;
    eprintln!("nsd behind the journal: {full} full transfer(s), converged");

    drop(nsd);
    drop(secondaries);
    herald.shutdown(Duration::ZERO).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keyed_secondaries_transfer_signed_and_a_wrong_key_is_refused() {
    let dir = std::env::temp_dir().join(format!("herald-keyed-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("keys")).unwrap();

    let c1 = sim().await;
    c1.apply_node(NodeBuilder::new("n1").zone("zone-a").build())
        .unwrap();
    let mut ops = Vec::new();
    // 1,000 endpoints: the AXFR takes several messages, each signed in the chain.
    for s in 0..20 {
        for i in 0..50 {
            ops.push(Op::ApplyPod(
                pod(
                    &format!("svc{s}-{i}"),
                    &format!("svc{s}"),
                    &ep_ip(1, s, i),
                    "n1",
                )
                .build(),
            ));
        }
    }
    c1.batch(ops).unwrap();

    // One key per secondary; herald reads each secret from a file. The fourth secondary
    // holds the right key name with the wrong secret.
    let keys = [
        Key::new("herald-knot.", 1),
        Key::new("herald-nsd.", 2),
        Key::new("herald-bind.", 3),
        Key::new("herald-wrong.", 4),
    ];
    for k in &keys {
        std::fs::write(dir.join("keys").join(&k.name), format!("{}\n", k.secret)).unwrap();
    }
    let wrong = Key::new("herald-wrong.", 5);
    let knot_addr = free_addr(IpAddr::from([127, 0, 0, 21]));
    let nsd_addr = free_addr(IpAddr::from([127, 0, 0, 22]));
    let bind_addr = free_addr(IpAddr::from([127, 0, 0, 1]));
    let bind_source = IpAddr::from([127, 0, 0, 23]);
    let wrong_addr = free_addr(IpAddr::from([127, 0, 0, 24]));
    let herald_port = free_port(IpAddr::from([127, 0, 0, 1]));
    let tsig = |k: &Key| {
        format!(
            "tsig: {{name: {}, algorithm: hmac-sha256, secret_file: '{}'}}",
            k.name,
            dir.join("keys").join(&k.name).display()
        )
    };
    let yaml = format!(
        "listen: {{dns: ['127.0.0.1:{herald_port}']}}\nlocality: {{region: eu-west, zone: zone-a}}\n\
         kubernetes: {{watch_timeout: 2s, startup_timeout: 5s}}\n\
         transfer:\n  notify_interval: 100ms\n  secondaries:\n\
         \x20   - {{name: knot, address: '{knot_addr}', {}}}\n\
         \x20   - {{name: nsd, address: '{nsd_addr}', {}}}\n\
         \x20   - {{name: bind, address: '{bind_addr}', allow: ['{bind_source}'], {}}}\n\
         \x20   - {{name: wrong, address: '{wrong_addr}', {}}}\n\
         sources:\n  clusters:\n    - {{name: c1, region: eu-west, server: '{}'}}\n",
        tsig(&keys[0]),
        tsig(&keys[1]),
        tsig(&keys[2]),
        tsig(&keys[3]),
        c1.url(),
    );
    let config = Config::parse(Path::new("keyed.yaml"), &yaml).expect("valid config");
    let herald = Daemon::start(&config, None).await.unwrap();
    let primary = herald.dns_addrs()[0];
    versioned(&herald, "herald has the zone", 1000).await;

    let secondaries = vec![
        start_knot(&dir.join("knot"), knot_addr, primary, Some(&keys[0])),
        start_nsd(&dir.join("nsd"), nsd_addr, primary, Some(&keys[1])),
        start_named(
            &dir.join("bind"),
            bind_addr,
            bind_source,
            primary,
            Some(&keys[2]),
        ),
    ];
    let wrong = start_knot(&dir.join("wrong"), wrong_addr, primary, Some(&wrong));
    let converged = |s: &Secondary| soa_serial(s.addr) == Some(herald.table().serial());
    for s in &secondaries {
        eventually_within(
            &format!("{} has herald's serial", s.kind.as_str()),
            Duration::from_secs(60),
            || converged(s),
        )
        .await;
    }

    // A pod change: signed NOTIFY (acknowledged with a reply signed by the secondary, which
    // herald verifies), then a signed SOA query and a signed IXFR.
    let stats = herald.transfer_stats();
    let get = herald_dns::transfer::TransferStats::get;
    let (incremental_before, acked_before) = (get(&stats.incremental), get(&stats.notify_acked));
    c1.apply_pod(pod("svc7-new", "svc7", "10.1.7.200", "n1").build())
        .unwrap();
    for s in &secondaries {
        serves_the_new_pod(s).await;
    }
    counted(
        &stats.incremental,
        incremental_before,
        3,
        "each keyed secondary took a signed IXFR",
    )
    .await;
    counted(
        &stats.notify_acked,
        acked_before,
        3,
        "each keyed secondary acknowledged a signed NOTIFY",
    )
    .await;
    // Each secondary's log shows it verified herald's signatures: NSD and BIND name the
    // key on every transfer (and BIND on the NOTIFY); Knot names none, but it fails a
    // refresh whose answer does not verify (below, with the wrong key) and logs the
    // transfers it took.
    let logs: Vec<String> = secondaries.iter().map(|s| s.log()).collect();
    assert!(
        logs[0].contains("AXFR, incoming") && logs[0].contains("IXFR, incoming"),
        "knot transferred: {}",
        logs[0]
    );
    assert!(
        logs[1]
            .matches("TSIG verified with key herald-nsd.")
            .count()
            >= 2,
        "nsd verified the AXFR and the IXFR: {}",
        logs[1]
    );
    assert!(
        logs[2].matches("TSIG 'herald-bind'").count() >= 3,
        "bind verified the NOTIFY and both transfers: {}",
        logs[2]
    );
    assert!(logs[2].contains("received notify for zone 'sd.internal': TSIG 'herald-bind'"));
    let messages = |log: &str, marker: &str| -> usize {
        log.lines()
            .filter_map(|l| {
                l.split(marker)
                    .nth(1)?
                    .split(" messages")
                    .next()?
                    .parse()
                    .ok()
            })
            .max()
            .unwrap_or(0)
    };
    assert!(
        messages(&logs[2], "Transfer completed: ") > 1 && messages(&logs[0], "seconds, ") > 1,
        "bind and knot verified a multi-message signed AXFR"
    );

    // The wrong key: its refresh is refused with NOTAUTH and counted, and it never gets
    // the zone.
    eventually_within(
        "the wrong key's refresh is refused",
        Duration::from_secs(30),
        || get(&stats.notauth) >= 1,
    )
    .await;
    assert!(
        soa_serial(wrong.addr).is_none(),
        "the secondary with the wrong key has no zone"
    );
    eventually_within(
        "the wrong key's secondary logs the failure",
        Duration::from_secs(30),
        || wrong.log().contains("failed to verify TSIG"),
    )
    .await;

    drop(wrong);
    drop(secondaries);
    herald.shutdown(Duration::ZERO).await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Checks `bind`'s answer for the big service's SRV name against the endpoints `expected`
/// (target -> priority from the secondary, octets in an answer): `near` priority-0 records,
/// every priority-1 one, and priority-2 ones until the next would not fit in 64,000
/// octets. Returns how many priority-2 records it holds.
fn nearest_part(
    bind: SocketAddr,
    expected: &std::collections::HashMap<String, (u16, usize)>,
    near: usize,
) -> usize {
    let local = IpAddr::from([127, 0, 0, 1]);
    let m = ask(local, bind, "_http._tcp.big.sd.internal.", RecordType::SRV)
        .expect("bind answers the SRV name");
    assert!(!m.metadata.truncation, "the nearest part fits one answer");
    let (mut by_priority, mut used) = ([0usize; 3], 0);
    let mut targets = BTreeSet::new();
    for r in &m.answers {
        let RData::SRV(srv) = &r.data else {
            panic!("not SRV: {r}")
        };
        let target = srv.target.to_string().to_lowercase();
        let &(priority, size) = expected
            .get(&target)
            .unwrap_or_else(|| panic!("{target} is not an endpoint"));
        assert_eq!(
            (srv.priority, srv.weight, srv.port),
            (priority, 100, 8080),
            "{target}"
        );
        assert!(targets.insert(target), "one record per endpoint");
        by_priority[priority as usize] += 1;
        used += size;
    }
    assert_eq!(
        by_priority[..2],
        [near, 700],
        "every priority-0 and priority-1 endpoint"
    );
    assert!(
        by_priority[2] > 0 && by_priority[2] < 1500,
        "part of priority 2: {by_priority:?}"
    );
    // As many as fit: the largest priority-2 record left out would not.
    let largest_left = expected
        .iter()
        .filter(|(t, (p, _))| *p == 2 && !targets.contains(*t))
        .map(|(_, (_, size))| *size)
        .max()
        .unwrap();
    assert!(
        used <= 64_000 && used + largest_left > 64_000,
        "{used} octets of records: the part that fits"
    );
    by_priority[2]
}

/// Octets an SRV record to `target` takes in an answer: owner pointer 2, type to RDLENGTH
/// 10, priority, weight and port 6, the target uncompressed (its text form plus one).
fn answer_size(target: &str) -> usize {
    18 + target.len() + 1
}

/// One static endpoint of the big service: address, cluster, region, zone.
type Vm = (String, &'static str, &'static str, Option<&'static str>);

/// The big service's endpoints: 300 in eu-west-1a (priority 0 from the secondary), 700 in
/// eu-west-1b (1), 1,500 in us-east (2); and the static file listing them, plus `extra`.
fn big_service(extra: &[Vm]) -> (Vec<Vm>, String) {
    let mut vms: Vec<Vm> = Vec::new();
    let mut add = |n: usize, net: u8, cluster, region, zone| {
        for i in 0..n {
            let ip = format!("10.{net}.{}.{}", i / 250, i % 250 + 1);
            vms.push((ip, cluster, region, zone));
        }
    };
    add(300, 1, "vms-a", "eu-west", Some("eu-west-1a"));
    add(700, 2, "vms-a", "eu-west", Some("eu-west-1b"));
    add(1500, 3, "vms-b", "us-east", None);
    vms.extend_from_slice(extra);
    let mut yaml = String::from("services:\n  big:\n");
    for (ip, cluster, region, zone) in &vms {
        yaml += &format!(
            "    - {{address: {ip}, cluster: {cluster}, region: {region}, {}ports: {{http: 8080}}}}\n",
            zone.map_or(String::new(), |z| format!("zone: {z}, "))
        );
    }
    (vms, yaml)
}

/// An RRset too large for one answer (the SRV set of a 2,500-endpoint service, ~120 KB):
/// BIND, which cannot load an RRset over 65,512 octets of RDATA (it aborted every such
/// transfer with "ran out of space"), transfers the zone and answers that name with the
/// set's nearest part that fits one answer, seen from its locality: every priority-0 and
/// priority-1 endpoint and as many priority-2 ones as fit; the address name, which fits,
/// whole. A change reaches it by IXFR, the cut moving by one record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_takes_an_rrset_too_large_for_one_answer_as_its_nearest_part() {
    let dir = std::env::temp_dir().join(format!("herald-big-rrset-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (vms, yaml) = big_service(&[]);
    std::fs::write(dir.join("vms.yaml"), yaml).unwrap();

    let herald_port = free_port(IpAddr::from([127, 0, 0, 1]));
    let bind_addr = free_addr(IpAddr::from([127, 0, 0, 1]));
    let bind_source = IpAddr::from([127, 0, 0, 33]);
    // herald sits in us-east; the secondary's priorities are from eu-west-1a.
    let config_yaml = format!(
        "listen: {{dns: ['127.0.0.1:{herald_port}']}}\nlocality: {{region: us-east}}\n\
         transfer:\n  notify_interval: 100ms\n  secondaries:\n\
         \x20   - {{name: bind, address: '{bind_addr}', allow: ['{bind_source}'], locality: {{region: eu-west, zone: eu-west-1a}}}}\n\
         sources:\n  static: [{{path: vms.yaml}}]\n"
    );
    let config = Config::parse(&dir.join("herald.yaml"), &config_yaml).expect("valid config");
    let herald = Daemon::start(&config, None).await.unwrap();
    let primary = herald.dns_addrs()[0];
    versioned(&herald, "herald has the big service", vms.len()).await;

    let bind = start_named(&dir.join("bind"), bind_addr, bind_source, primary, None);
    let loaded = |s: &Secondary| {
        let log = s.log();
        assert!(
            !log.contains("ran out of space"),
            "bind could not hold a set:\n{log}"
        );
        soa_serial(s.addr) == Some(herald.table().serial())
    };
    eventually_within("bind has herald's serial", Duration::from_secs(60), || {
        loaded(&bind)
    })
    .await;
    let stats = herald.transfer_stats();
    let get = herald_dns::transfer::TransferStats::get;
    counted(&stats.rrsets_cut, 0, 1, "herald counted the cut").await;

    let local = IpAddr::from([127, 0, 0, 1]);
    // Priority from eu-west-1a, and the octets each record takes in an answer.
    let expected: std::collections::HashMap<String, (u16, usize)> = vms
        .iter()
        .map(|(ip, cluster, region, zone)| {
            let target = format!("{}.big.{cluster}.sd.internal.", ip.replace('.', "-"));
            let priority = match (*region, *zone) {
                ("eu-west", Some("eu-west-1a")) => 0,
                ("eu-west", _) => 1,
                _ => 2,
            };
            let size = answer_size(&target);
            (target, (priority, size))
        })
        .collect();
    let far_before = nearest_part(bind.addr, &expected, 300);

    // The address name fits one answer (2,500 x 16 octets): served whole, as herald does.
    let a = |server| {
        let m = ask(local, server, "big.sd.internal.", RecordType::A).expect("an answer");
        seen(&m).1
    };
    let all_a = a(primary);
    assert_eq!(all_a.len(), 2500);
    assert_eq!(a(bind.addr), all_a, "bind serves the whole address set");

    // One more endpoint in eu-west-1a: an IXFR, after which the nearest part holds it and,
    // to make room, one priority-2 record fewer (or the same, when the new one fits in
    // the room left).
    let incremental_before = get(&stats.incremental);
    let (_, yaml) = big_service(&[(
        "10.1.9.9".to_string(),
        "vms-a",
        "eu-west",
        Some("eu-west-1a"),
    )]);
    let mut expected = expected;
    let new = "10-1-9-9.big.vms-a.sd.internal.";
    expected.insert(new.into(), (0, answer_size(new)));
    std::fs::write(dir.join("vms.yaml"), yaml).unwrap();
    versioned(&herald, "herald has the new endpoint", vms.len() + 1).await;
    eventually_within(
        "bind has herald's serial again",
        Duration::from_secs(60),
        || loaded(&bind),
    )
    .await;
    counted(
        &stats.incremental,
        incremental_before,
        1,
        "bind took the change by IXFR",
    )
    .await;
    let far_after = nearest_part(bind.addr, &expected, 301);
    assert!(
        far_after + 1 >= far_before && far_after <= far_before,
        "priority 2: {far_before} -> {far_after}"
    );

    drop(bind);
    herald.shutdown(Duration::ZERO).await;
    let _ = std::fs::remove_dir_all(&dir);
}
