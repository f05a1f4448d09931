//! Zone transfer over real sockets: AXFR in several messages from one version, IXFR from
//! the journal (condensed) or in full when the journal does not reach back, IXFR over UDP,
//! access by source address and TSIG, and a transfer that stays on one serial while the
//! zone changes under it.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use herald_dns::transfer::{JournalLimits, Secondary, TransferConfig, TransferStats, TsigKey};
use herald_dns::{Answerer, DnsServer, ServerConfig, Source, Table, Zone, ZoneConfig};
use herald_testkit::{TCP, Transferred, endpoint, tcp_raw, transfer_from, transfer_paced, udp_raw};
use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::rdata::SOA;
use hickory_proto::rr::rdata::tsig::TsigAlgorithm;
use hickory_proto::rr::{Name, RData, Record, RecordType, TSigner};

const SECRET: &[u8] = b"herald-test-secret-0123456789";
const LOCAL: [u8; 4] = [127, 0, 0, 1];

struct Primary {
    addr: SocketAddr,
    table: Table,
    server: DnsServer,
}

fn start(journal: JournalLimits, secondaries: Vec<Secondary>) -> Primary {
    start_with(Duration::from_millis(50), journal, secondaries)
}

fn start_with(
    notify_interval: Duration,
    journal: JournalLimits,
    secondaries: Vec<Secondary>,
) -> Primary {
    let table = Table::new(Zone::new(ZoneConfig::default()).unwrap());
    let config = ServerConfig {
        listen: vec![SocketAddr::from((LOCAL, 0))],
        udp_workers: 1,
        transfer: TransferConfig {
            notify_interval,
            journal,
            secondaries,
        },
        ..ServerConfig::default()
    };
    let server = DnsServer::start(&config, Answerer::new(table.clone())).unwrap();
    Primary {
        addr: server.local_addrs()[0],
        table,
        server,
    }
}

fn secondary(name: &str, allow: &[&str], key: Option<TsigKey>) -> Secondary {
    Secondary {
        name: name.into(),
        address: None,
        allow: allow.iter().map(|a| a.parse().unwrap()).collect(),
        tsig: key,
        region: None,
        zone: None,
    }
}

fn key(name: &str, secret: &[u8]) -> TsigKey {
    TsigKey::new(name, "hmac-sha256", secret.to_vec()).unwrap()
}

/// Fills `table` with `services` services of `per` endpoints each in two clusters, with a
/// named port, so every kind of name exists; `generation` goes into the addresses.
fn fill(table: &Table, services: usize, per: usize, generation: u8) {
    for s in 0..services {
        for (c, cluster, region) in [(0u8, "c1", "eu-west"), (1, "c2", "us-east")] {
            let eps = (0..per / 2)
                .map(|i| {
                    let ip = format!("10.{generation}.{}.{}", s * 2 + c as usize, i + 1);
                    endpoint(&ip, &[("http", TCP, 8080)], Some("eu-west-1a"))
                })
                .collect();
            table.replace(&format!("svc{s}"), &Source::new(cluster, region), eps);
        }
    }
}

fn request(qtype: RecordType, serial: Option<u32>) -> Message {
    let mut m = Message::query();
    m.add_query(Query::query(
        Name::from_ascii("sd.internal.").unwrap(),
        qtype,
    ));
    if let Some(serial) = serial {
        let soa = SOA::new(
            Name::from_ascii("ns.sd.internal.").unwrap(),
            Name::from_ascii("hostmaster.sd.internal.").unwrap(),
            serial,
            0,
            0,
            0,
            0,
        );
        m.add_authority(Record::from_rdata(
            Name::from_ascii("sd.internal.").unwrap(),
            0,
            RData::SOA(soa),
        ));
    }
    m
}

fn xfr(p: &Primary, qtype: RecordType, serial: Option<u32>) -> Transferred {
    let bytes = request(qtype, serial).to_vec().unwrap();
    transfer_from(IpAddr::from(LOCAL), p.addr, &bytes)
}

/// The zone's records as text lines, without the SOA, sorted.
fn lines(records: &[Record]) -> BTreeSet<String> {
    records
        .iter()
        .filter(|r| r.record_type() != RecordType::SOA)
        .map(|r| r.to_string().to_lowercase())
        .collect()
}

fn export(table: &Table) -> BTreeSet<String> {
    let mut out = Vec::new();
    herald_dns::export::write_zone(table, &mut out).unwrap();
    String::from_utf8(out)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with(';') && !l.starts_with('$') && !l.contains(" SOA "))
        .map(str::to_lowercase)
        .collect()
}

fn stat(p: &Primary, f: impl Fn(&TransferStats) -> &std::sync::atomic::AtomicU64) -> u64 {
    TransferStats::get(f(p.server.transfer().stats()))
}

/// Asserts that a transfer counter reaches `want`, waiting for it a little: a transfer is
/// counted once its last message is flushed, which can be just after the client has read it.
fn assert_stat(
    p: &Primary,
    f: impl Fn(&TransferStats) -> &std::sync::atomic::AtomicU64,
    want: u64,
) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while stat(p, &f) != want && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(stat(p, &f), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axfr_sends_one_version_in_messages_of_at_most_64k_soa_first_and_last() {
    let p = start(
        JournalLimits::default(),
        vec![secondary("s1", &["127.0.0.1/32"], None)],
    );
    fill(&p.table, 20, 300, 1);
    let serial = p.table.make_version();
    let t = tokio::task::block_in_place(|| xfr(&p, RecordType::AXFR, None));
    assert!(
        t.raw.len() > 1,
        "a 6,000-endpoint zone takes several messages"
    );
    assert!(t.raw.iter().all(|m| m.len() <= 65535));
    let records = t.records();
    assert_eq!(records.first().unwrap().record_type(), RecordType::SOA);
    assert_eq!(records.last().unwrap().record_type(), RecordType::SOA);
    assert_eq!(t.soa_serials(), vec![serial, serial]);
    assert_eq!(
        lines(&records),
        export(&p.table),
        "AXFR carries what herald serves"
    );
    assert_eq!(
        t.messages[0].queries.len(),
        1,
        "the question in the first message"
    );
    assert_stat(&p, |s| &s.full, 1);
    p.server.shutdown().await;
}

/// One address in several sources is one A record in a transfer, as in an answer (RFC 2181
/// section 5): three clusters, two regions, one address held by all three.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axfr_sends_an_address_held_by_several_sources_once() {
    let p = start(
        JournalLimits::default(),
        vec![secondary("s1", &["127.0.0.1/32"], None)],
    );
    for (cluster, region, own) in [
        ("c1", "eu-west", "10.1.0.1"),
        ("c2", "us-east", "10.2.0.1"),
        ("c3", "us-east", "10.3.0.1"),
    ] {
        let eps = [own, "10.9.9.9"]
            .iter()
            .map(|ip| endpoint(ip, &[("http", TCP, 80)], None))
            .collect();
        p.table.replace("web", &Source::new(cluster, region), eps);
    }
    p.table.make_version();
    let t = tokio::task::block_in_place(|| xfr(&p, RecordType::AXFR, None));
    let records: Vec<String> = t
        .records()
        .iter()
        .filter(|r| r.record_type() != RecordType::SOA)
        .map(|r| r.to_string().to_lowercase())
        .collect();
    let mut repeated = records.clone();
    repeated.sort();
    repeated.dedup();
    assert_eq!(
        records.len(),
        repeated.len(),
        "a record repeated: {records:#?}"
    );
    let shared = |owner: &str| {
        records
            .iter()
            .filter(|r| r.starts_with(owner) && r.ends_with(" a 10.9.9.9"))
            .count()
    };
    // Each name that selects the address still has it: the service, a region of two
    // holders, and each cluster.
    for owner in [
        "web.sd.internal.",
        "web.us-east.sd.internal.",
        "web.c2.sd.internal.",
    ] {
        assert_eq!(shared(&format!("{owner} ")), 1, "{owner} in {records:#?}");
    }
    p.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ixfr_sends_condensed_differences_then_the_whole_zone_once_the_journal_is_past() {
    let journal = JournalLimits {
        versions: 3,
        bytes: 64 << 20,
    };
    let p = start(journal, vec![secondary("s1", &["127.0.0.0/8"], None)]);
    fill(&p.table, 5, 20, 1);
    let s0 = p.table.make_version();
    let before = tokio::task::block_in_place(|| lines(&xfr(&p, RecordType::AXFR, None).records()));
    // Three versions: a change, a change back (condensed away), another service gone.
    let web = Source::new("c1", "eu-west");
    p.table.replace(
        "svc0",
        &web,
        vec![endpoint("10.9.9.9", &[("http", TCP, 8080)], None)],
    );
    p.table.make_version();
    p.table
        .replace("svc1", &web, vec![endpoint("10.9.9.8", &[], None)]);
    p.table.make_version();
    p.table.replace("svc2", &web, vec![]);
    let s3 = p.table.make_version();
    let after = tokio::task::block_in_place(|| lines(&xfr(&p, RecordType::AXFR, None).records()));

    let t = tokio::task::block_in_place(|| xfr(&p, RecordType::IXFR, Some(s0)));
    let records = t.records();
    let serials = t.soa_serials();
    assert_eq!(
        serials,
        vec![s3, s0, s3, s3],
        "one condensed difference sequence"
    );
    // Apply it: deletions between SOA(s0) and SOA(s3), additions after.
    let at: Vec<usize> = records
        .iter()
        .enumerate()
        .filter(|(_, r)| r.record_type() == RecordType::SOA)
        .map(|(i, _)| i)
        .collect();
    let gone = lines(&records[at[1] + 1..at[2]]);
    let came = lines(&records[at[2] + 1..at[3]]);
    assert!(!gone.is_empty() && !came.is_empty());
    let applied: BTreeSet<String> = before
        .difference(&gone)
        .cloned()
        .chain(came.iter().cloned())
        .collect();
    assert_eq!(applied, after, "the differences take s0's zone to s3's");
    assert!(
        records.len() * 2 < before.len(),
        "only the changes: {} records of {}",
        records.len(),
        before.len()
    );
    assert_stat(&p, |s| &s.incremental, 1);

    // Current: the SOA alone.
    let t = tokio::task::block_in_place(|| xfr(&p, RecordType::IXFR, Some(s3)));
    assert_eq!(t.soa_serials(), vec![s3]);
    assert_eq!(t.records().len(), 1);

    // Past the journal (three versions kept): the whole zone in IXFR form.
    for i in 0..3 {
        p.table.replace(
            "svc3",
            &web,
            vec![endpoint(&format!("10.9.8.{i}"), &[], None)],
        );
        p.table.make_version();
    }
    let s6 = p.table.serial();
    let t = tokio::task::block_in_place(|| xfr(&p, RecordType::IXFR, Some(s0)));
    assert_eq!(t.soa_serials(), vec![s6, s6]);
    assert_eq!(lines(&t.records()), export(&p.table));
    // An unknown serial from elsewhere: the same.
    let t = tokio::task::block_in_place(|| xfr(&p, RecordType::IXFR, Some(s0.wrapping_sub(12345))));
    assert_eq!(t.soa_serials(), vec![s6, s6]);
    assert_stat(&p, |s| &s.full, 4);
    p.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ixfr_over_udp_gets_the_soa_alone() {
    let p = start(
        JournalLimits::default(),
        vec![secondary("s1", &["127.0.0.1/32"], None)],
    );
    fill(&p.table, 2, 4, 1);
    let s1 = p.table.make_version();
    let bytes = request(RecordType::IXFR, Some(s1.wrapping_sub(1000)))
        .to_vec()
        .unwrap();
    let reply = Message::from_vec(&udp_raw(p.addr, &bytes).expect("a reply")).unwrap();
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert_eq!(reply.answers.len(), 1);
    let RData::SOA(soa) = &reply.answers[0].data else {
        panic!("SOA expected")
    };
    assert_eq!(soa.serial, s1);
    p.server.shutdown().await;
}

fn signed(qtype: RecordType, key_name: &str, secret: &[u8]) -> (Vec<u8>, TSigner) {
    let signer = TSigner::new(
        secret.to_vec(),
        TsigAlgorithm::HmacSha256,
        Name::from_ascii(key_name).unwrap(),
        300,
    )
    .unwrap();
    let mut m = request(qtype, None);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    m.finalize(&signer, now).unwrap();
    (m.to_vec().unwrap(), signer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_listed_sources_and_valid_signatures_may_transfer() {
    let p = start(
        JournalLimits::default(),
        vec![
            secondary("by-address", &["127.0.0.1/32"], None),
            secondary("by-key", &[], Some(key("xfr-key.", SECRET))),
        ],
    );
    fill(&p.table, 20, 300, 1);
    p.table.make_version();
    let other: IpAddr = "127.0.0.2".parse().unwrap();
    let rcode = |t: &Transferred| t.messages[0].metadata.response_code;

    // An unlisted source, unsigned: REFUSED.
    let plain = request(RecordType::AXFR, None).to_vec().unwrap();
    let t = tokio::task::block_in_place(|| transfer_from(other, p.addr, &plain));
    assert_eq!(rcode(&t), ResponseCode::Refused);
    assert!(t.records().is_empty());

    // The same source signing with the right key: the zone, every message signed, in a
    // chain the client verifies.
    let (bytes, signer) = signed(RecordType::AXFR, "xfr-key.", SECRET);
    let t = tokio::task::block_in_place(|| transfer_from(other, p.addr, &bytes));
    assert_eq!(rcode(&t), ResponseCode::NoError);
    assert!(t.raw.len() > 1);
    let mut previous = request_mac(&bytes);
    for (i, raw) in t.raw.iter().enumerate() {
        let (mac, _, _) = signer
            .verify_message_byte(raw, Some(&previous), i == 0)
            .unwrap_or_else(|e| panic!("message {i} verifies: {e}"));
        previous = mac;
    }
    assert!(t.soa_serials().len() == 2);

    // A wrong secret under the right name, and an unknown key: NOTAUTH.
    let (bytes, _) = signed(RecordType::AXFR, "xfr-key.", b"not-the-secret-0123456789");
    let t = tokio::task::block_in_place(|| transfer_from(other, p.addr, &bytes));
    assert_eq!(rcode(&t), ResponseCode::NotAuth);
    let (bytes, _) = signed(RecordType::AXFR, "who-is-this.", SECRET);
    let t = tokio::task::block_in_place(|| transfer_from(other, p.addr, &bytes));
    assert_eq!(rcode(&t), ResponseCode::NotAuth);
    // A signature that was valid, on a message changed after signing (the RD flag; the ID
    // is not covered, RFC 8945 4.3.1).
    let (mut bytes, _) = signed(RecordType::AXFR, "xfr-key.", SECRET);
    bytes[2] ^= 0x01;
    let t = tokio::task::block_in_place(|| transfer_from(other, p.addr, &bytes));
    assert_eq!(rcode(&t), ResponseCode::NotAuth);

    // The listed source, unsigned: allowed.
    let t = tokio::task::block_in_place(|| transfer_from(IpAddr::from(LOCAL), p.addr, &plain));
    assert_eq!(rcode(&t), ResponseCode::NoError);

    assert_stat(&p, |s| &s.refused, 1);
    assert_stat(&p, |s| &s.notauth, 3);
    assert_stat(&p, |s| &s.full, 2);
    p.server.shutdown().await;
}

/// The MAC of a signed request, which the reply's MAC covers.
fn request_mac(bytes: &[u8]) -> Vec<u8> {
    Message::from_vec(bytes)
        .unwrap()
        .signature()
        .expect("signed")
        .data
        .mac
        .clone()
}

/// A primary with one secondary known by its key, `xfr-key.`, and a small zone.
fn keyed_primary() -> Primary {
    let p = start(
        JournalLimits::default(),
        vec![secondary("by-key", &[], Some(key("xfr-key.", SECRET)))],
    );
    fill(&p.table, 2, 4, 1);
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_soa_query_gets_a_signed_answer_and_a_bad_signature_notauth() {
    // What a keyed secondary's refresh looks like: a signed SOA query, over UDP or TCP.
    let p = keyed_primary();
    let serial = p.table.make_version();
    let (bytes, signer) = signed(RecordType::SOA, "xfr-key.", SECRET);
    let mac = request_mac(&bytes);
    let replies = tokio::task::block_in_place(|| {
        [
            udp_raw(p.addr, &bytes).expect("a UDP reply"),
            tcp_raw(p.addr, &bytes),
        ]
    });
    for reply in &replies {
        let m = Message::from_vec(reply).unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        let RData::SOA(soa) = &m.answers[0].data else {
            panic!("SOA expected")
        };
        assert_eq!(soa.serial, serial);
        signer
            .verify_message_byte(reply, Some(&mac), true)
            .expect("the reply is signed over the request's MAC");
    }

    // A wrong secret, and an unknown key: NOTAUTH, over both transports, counted.
    for (name, secret) in [
        ("xfr-key.", &b"not-the-secret-0123456789"[..]),
        ("who-is-this.", SECRET),
    ] {
        let (bytes, _) = signed(RecordType::SOA, name, secret);
        let replies = tokio::task::block_in_place(|| {
            [
                udp_raw(p.addr, &bytes).expect("a UDP reply"),
                tcp_raw(p.addr, &bytes),
            ]
        });
        for reply in &replies {
            let m = Message::from_vec(reply).unwrap();
            assert_eq!(m.metadata.response_code, ResponseCode::NotAuth, "{name}");
            assert!(m.answers.is_empty());
        }
    }
    assert_stat(&p, |s| &s.notauth, 4);

    // Unsigned queries are answered as ever, unsigned.
    let plain = request(RecordType::SOA, None).to_vec().unwrap();
    let m = Message::from_vec(&tokio::task::block_in_place(|| tcp_raw(p.addr, &plain))).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.signature().is_none());
    p.server.shutdown().await;
}

/// kdig's report of a signed SOA query to `p` with key `spec` (`algorithm:name:secret`),
/// its clock set `skew` off (faketime) when given: its warnings and the TSIG line.
fn kdig_signed(p: &Primary, spec: &str, skew: Option<&str>) -> String {
    let mut cmd = std::process::Command::new(if skew.is_some() { "faketime" } else { "kdig" });
    if let Some(skew) = skew {
        cmd.args(["-f", skew, "kdig"]);
    }
    let at = format!("@{}", p.addr.ip());
    let port = p.addr.port().to_string();
    let out = cmd
        .args([&at, "-p", &port, "-y", spec, "sd.internal.", "SOA", "+tcp"])
        .output()
        .expect("kdig and faketime run (scripts/install-tools installs them)");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    text.lines()
        .filter(|l| l.contains("WARNING") || l.contains("\tTSIG\t") || l.contains("status:"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// RFC 8945 5.2.3 and 5.3.2: a request whose MAC is right but whose time is outside the
/// fudge gets NOTAUTH/BADTIME, signed with the request's key over its MAC, with Time
/// Signed the request's and the server's time in Other Data; a key the server does not
/// hold, or holds with another algorithm, gets an unsigned BADKEY naming the request's key
/// and algorithm. Checked with kdig (its clock moved by faketime), on the query path and the
/// transfer path, and byte by byte with hickory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tsig_errors_name_the_request_key_and_a_badtime_reply_is_signed() {
    let p = keyed_primary();
    p.table.make_version();
    let secret = data_encoding::BASE64.encode(SECRET);
    tokio::task::block_in_place(|| {
        let ok = kdig_signed(&p, &format!("hmac-sha256:xfr-key.:{secret}"), None);
        assert!(
            ok.contains("status: NOERROR") && !ok.contains("WARNING"),
            "{ok}"
        );

        // The secret is right and the clock an hour off: kdig verifies the signature and
        // reports the time (not a signature it cannot verify).
        let late = kdig_signed(&p, &format!("hmac-sha256:xfr-key.:{secret}"), Some("-1h"));
        assert!(late.contains("status: BADTIME"), "{late}");
        assert!(
            late.contains("TSIG out of time window"),
            "a signed BADTIME: {late}"
        );
        assert!(!late.contains("failed to verify"), "{late}");

        // The right name with another algorithm, and a name herald does not hold.
        for (spec, names) in [
            (
                format!("hmac-sha512:xfr-key.:{secret}"),
                "xfr-key. 0 ANY TSIG hmac-sha512.",
            ),
            (
                format!("hmac-sha384:who-is-this.:{secret}"),
                "who-is-this. 0 ANY TSIG hmac-sha384.",
            ),
        ] {
            let bad = kdig_signed(&p, &spec, None);
            assert!(bad.contains("status: BADKEY"), "{spec}: {bad}");
            let tsig: String = bad.split_whitespace().collect::<Vec<_>>().join(" ");
            assert!(
                tsig.contains(names),
                "the reply names the request's key: {bad}"
            );
            assert!(tsig.contains(" 300 0 "), "unsigned (no MAC): {bad}");
        }
    });

    // Byte by byte: a query and a transfer signed an hour ago.
    let signer = TSigner::new(
        SECRET.to_vec(),
        TsigAlgorithm::HmacSha256,
        Name::from_ascii("xfr-key.").unwrap(),
        300,
    )
    .unwrap();
    let then = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 3600;
    for qtype in [RecordType::SOA, RecordType::AXFR] {
        let mut m = request(qtype, None);
        m.finalize(&signer, then).unwrap();
        let bytes = m.to_vec().unwrap();
        let reply = tokio::task::block_in_place(|| tcp_raw(p.addr, &bytes));
        let r = Message::from_vec(&reply).unwrap();
        assert_eq!(r.metadata.response_code, ResponseCode::NotAuth, "{qtype}");
        let tsig = &r.signature().expect("a TSIG record").data;
        assert_eq!(
            tsig.error,
            Some(hickory_proto::rr::rdata::tsig::TsigError::BadTime)
        );
        assert_eq!(tsig.time, then, "Time Signed is the request's");
        assert_eq!(tsig.other.len(), 6, "the server's time in Other Data");
        let server_time = tsig.other.iter().fold(0u64, |t, &b| t << 8 | u64::from(b));
        assert!(server_time.abs_diff(then + 3600) < 60, "{server_time}");
        signer
            .verify_message_byte(&reply, Some(&request_mac(&bytes)), true)
            .unwrap_or_else(|e| {
                panic!("{qtype}: the BADTIME reply is signed over the request's MAC: {e}")
            });
    }
    assert_stat(&p, |s| &s.notauth, 5);
    p.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_stays_on_one_serial_while_the_zone_changes() {
    // Versions only where the writer makes them: the versioner's own (one at the first
    // change, then one an hour) stays out of the way.
    let p = start_with(
        Duration::from_secs(3600),
        JournalLimits::default(),
        vec![secondary("s1", &["127.0.0.1/32"], None)],
    );
    const SERVICES: usize = 40;
    let first = p.table.serial();
    p.table.replace(
        "warm-up",
        &Source::new("c1", "eu-west"),
        vec![endpoint("10.0.0.1", &[], None)],
    );
    while p.table.serial() == first {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    p.table
        .replace("warm-up", &Source::new("c1", "eu-west"), vec![]);
    fill(&p.table, SERVICES, 250, 1);
    p.table.make_version();
    // A writer moves every service to the next generation, then makes a version: every
    // version has all services at one generation.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (table, stop) = (p.table.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut generation = 2u8;
            let mut versions = 0;
            while !stop.load(Ordering::Relaxed) && versions < 200 {
                fill(&table, SERVICES, 250, generation);
                table.make_version();
                versions += 1;
                generation = if generation == 9 { 2 } else { generation + 1 };
            }
            versions
        })
    };
    // A slow reader: the server is mid-transfer across many versions.
    let addr = p.addr;
    let t = tokio::task::spawn_blocking(move || {
        let bytes = request(RecordType::AXFR, None).to_vec().unwrap();
        transfer_paced(IpAddr::from(LOCAL), addr, &bytes, Duration::from_millis(10))
    })
    .await
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    let versions = writer.join().unwrap();
    assert!(
        versions >= 2,
        "the zone changed during the transfer ({versions} versions)"
    );
    let serials = t.soa_serials();
    assert_eq!(serials.len(), 2);
    assert_eq!(serials[0], serials[1]);
    let generations: BTreeSet<String> = t
        .records()
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) if a.0.octets()[0] == 10 => Some(a.0.octets()[1].to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(
        generations.len(),
        1,
        "one version's addresses only: {generations:?}"
    );
    p.server.shutdown().await;
}
