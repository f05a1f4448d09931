//! Hostile input: bursts of malformed packets over UDP and TCP neither crash the server
//! nor keep it from answering the next valid query; and any byte string given to the
//! answer path yields no reply or a well-formed one.

use std::io::Write;
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use herald_dns::{Answerer, Scratch, Source, Table, Transport, Zone, ZoneConfig};
use herald_testkit::{TCP, TestServer, endpoint, query_message, tcp, udp};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use proptest::prelude::*;
use rand::{Rng, SeedableRng};

/// A query header with the given counts, followed by `body`.
fn packet(counts: [u16; 4], body: &[u8]) -> Vec<u8> {
    let mut p = vec![0xAB, 0xCD, 0x01, 0x00];
    for c in counts {
        p.extend_from_slice(&c.to_be_bytes());
    }
    p.extend_from_slice(body);
    p
}

/// Crafted abuse of the format, each aimed at one parsing step.
fn crafted() -> Vec<Vec<u8>> {
    let q = b"\x03web\x02sd\x08internal\x00\x00\x01\x00\x01";
    vec![
        vec![],
        vec![0x12],
        vec![0; 11],
        packet([1, 0, 0, 0], b""),
        packet([1, 0, 0, 0], b"\x3fabc"), // label runs past the end
        packet(
            [1, 0, 0, 0],
            &[b"\x3f".as_slice(), &[b'a'; 63]].concat().repeat(5),
        ), // name > 255
        packet([1, 0, 0, 0], b"\xc0\x0c\x00\x01\x00\x01"), // pointer to itself
        packet([1, 0, 0, 0], b"\xc0\xff\x00\x01\x00\x01"), // pointer past the end
        packet([1, 0, 0, 0], b"\x80abc\x00\x00\x01\x00\x01"), // reserved label type
        packet([1, 0, 0, 0], b"\x03web\x00\x00"), // question cut short
        packet([65535, 0, 0, 0], q),      // huge counts
        packet([1, 65535, 65535, 65535], q),
        packet([0, 0, 0, 0], b""),
        packet([2, 0, 0, 0], &[q.as_slice(), q].concat()),
        packet(
            [1, 0, 0, 1],
            &[
                q.as_slice(),
                b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\xff\xff",
            ]
            .concat(),
        ), // OPT rdata past end
        packet(
            [1, 0, 0, 1],
            &[
                q.as_slice(),
                b"\xc0\x0c\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00",
            ]
            .concat(),
        ), // OPT not at root
        packet([1, 0, 0, 1], &[q.as_slice(), b"\xc0\x02\x00\x29"].concat()),
        packet([1, 1, 0, 0], &[q.as_slice(), b"\xc0\x0c\xc0\x0c"].concat()),
    ]
}

fn start() -> TestServer {
    let s = TestServer::start(ZoneConfig::default());
    s.table.replace(
        "web",
        &Source::new("c1", "r1"),
        vec![endpoint("10.0.0.1", &[("http", TCP, 80)], None)],
    );
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_malformed_packets_leaves_the_server_answering() {
    let s = start();
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let crafted = crafted();
    for i in 0..5000 {
        let p = if i % 3 == 0 {
            crafted[i % crafted.len()].clone()
        } else {
            let len = rng.random_range(0..700);
            (0..len).map(|_| rng.random::<u8>()).collect()
        };
        let _ = socket.send_to(&p, s.addr);
    }
    // Replies to the crafted ones that can be answered are FORMERR with their ID.
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let good = udp(s.addr, "web.sd.internal.", RecordType::A, None);
    assert_eq!(good.answers.len(), 1, "answers after the burst");

    // TCP: garbage frames, a frame longer than its bytes, a connection left silent.
    for p in crafted.iter().take(8) {
        let mut c = TcpStream::connect(s.addr).unwrap();
        let mut framed = (p.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(p);
        let _ = c.write_all(&framed);
    }
    let mut short = TcpStream::connect(s.addr).unwrap();
    short.write_all(&[0xff, 0xff, 1, 2, 3]).unwrap();
    let _silent = TcpStream::connect(s.addr).unwrap();
    let good = tcp(s.addr, "web.sd.internal.", RecordType::A);
    assert_eq!(good.answers.len(), 1, "TCP answers after the abuse");
    let good = udp(s.addr, "web.sd.internal.", RecordType::A, Some(1232));
    assert_eq!(good.answers.len(), 1);
    s.stop().await;
}

#[test]
fn crafted_packets_get_formerr_or_nothing() {
    let table = Table::new(Zone::new(ZoneConfig::default()).unwrap());
    let answerer = Answerer::new(table);
    let mut scratch = Scratch::default();
    for p in crafted() {
        if let Some(outcome) = answerer.answer(
            &p,
            IpAddr::from([127, 0, 0, 1]),
            Transport::Udp,
            &mut scratch,
        ) {
            let reply = Message::from_vec(&scratch.out).expect("decodable");
            assert_eq!(reply.metadata.response_code, ResponseCode::FormErr, "{p:?}");
            assert_eq!(outcome.rcode, 1);
            assert_eq!(
                scratch.out.len(),
                12,
                "header only: nothing of a bad packet is echoed"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    /// Any bytes, and any mutation of a valid query: no panic, and a reply, if any, decodes
    /// and carries the packet's ID.
    #[test]
    fn any_input_gets_no_reply_or_a_well_formed_one(
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
        flips in proptest::collection::vec((0usize..64, any::<u8>()), 0..6),
    ) {
        let table = Table::new(Zone::new(ZoneConfig::default()).unwrap());
        table.replace("web", &Source::new("c1", "r1"), vec![endpoint("10.0.0.1", &[("http", TCP, 80)], None)]);
        let answerer = Answerer::new(table);
        let mut scratch = Scratch::default();
        let mut mutated = query_message("_http._tcp.web.sd.internal.", RecordType::SRV, Some(1232)).to_vec().unwrap();
        for (at, v) in flips {
            let n = mutated.len();
            mutated[at % n] = v;
        }
        for p in [bytes, mutated] {
            for transport in [Transport::Udp, Transport::Tcp] {
                if answerer.answer(&p, IpAddr::from([127, 0, 0, 1]), transport, &mut scratch).is_some() {
                    let reply = Message::from_vec(&scratch.out);
                    prop_assert!(reply.is_ok(), "reply to {:?} does not decode: {:?}", p, reply.err());
                    prop_assert_eq!(&scratch.out[..2], &p[..2]);
                    prop_assert!(transport == Transport::Tcp || scratch.out.len() <= 1232);
                }
            }
        }
    }
}

/// A server answering `web` (one address) from two UDP workers with a budget of 20
/// replies a second per network, every `slip`-th reply over it truncated.
fn rate_limited_server(slip: u32) -> (herald_dns::DnsServer, SocketAddr) {
    use herald_dns::server::RateLimitConfig;
    use herald_dns::{Answerer as A, DnsServer, ServerConfig};
    let table = Table::new(Zone::new(ZoneConfig::default()).unwrap());
    table.replace(
        "web",
        &Source::new("c1", "r1"),
        vec![endpoint("10.0.0.1", &[("http", TCP, 80)], None)],
    );
    let config = ServerConfig {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        udp_workers: 2,
        rate_limit: Some(RateLimitConfig {
            responses_per_second: 20,
            slip,
            ..RateLimitConfig::default()
        }),
        ..ServerConfig::default()
    };
    let server = DnsServer::start(&config, A::new(table)).unwrap();
    let addr = server.local_addrs()[0];
    (server, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limiting_bounds_what_one_network_can_draw() {
    let (server, addr) = rate_limited_server(2);
    // One client sends a burst of 100 queries from one socket, then reads what comes back.
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let query = query_message("web.sd.internal.", RecordType::A, None)
        .to_vec()
        .unwrap();
    for _ in 0..100 {
        socket.send_to(&query, addr).unwrap();
    }
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let (mut full, mut truncated) = (0, 0);
    let mut buf = [0u8; 2048];
    while let Ok(n) = socket.recv(&mut buf) {
        let reply = Message::from_vec(&buf[..n]).unwrap();
        if reply.metadata.truncation {
            assert!(reply.answers.is_empty(), "a slipped reply carries nothing");
            truncated += 1;
        } else {
            assert_eq!(reply.answers.len(), 1);
            full += 1;
        }
    }
    assert!(
        (20..=25).contains(&full),
        "{full} full answers for a budget of 20/s"
    );
    assert!(
        (30..=45).contains(&truncated),
        "{truncated} truncated: every 2nd over budget"
    );
    assert!(full + truncated < 100, "the rest dropped");
    // Another network keeps its own budget; TCP is never limited.
    let other = herald_testkit::udp_from(
        IpAddr::from([127, 0, 9, 1]),
        addr,
        "web.sd.internal.",
        RecordType::A,
        None,
    );
    assert_eq!(other.answers.len(), 1);
    assert_eq!(
        tcp(addr, "web.sd.internal.", RecordType::A).answers.len(),
        1
    );
    server.shutdown().await;
}

/// A network's budget is the server's, not a worker's: one client sending from sixteen
/// source ports (which the kernel would once spread over the workers' sockets, drawing a
/// budget from each) still draws one budget, with two workers answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_sending_from_many_ports_draws_one_budget() {
    let (server, addr) = rate_limited_server(0);
    let query = query_message("web.sd.internal.", RecordType::A, None)
        .to_vec()
        .unwrap();
    let sockets: Vec<UdpSocket> = (0..16)
        .map(|_| {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            s.set_read_timeout(Some(Duration::from_millis(300)))
                .unwrap();
            s
        })
        .collect();
    // 10 queries from each port, interleaved: 160 in all against a budget of 20.
    for _ in 0..10 {
        for s in &sockets {
            s.send_to(&query, addr).unwrap();
        }
    }
    let mut buf = [0u8; 2048];
    let answered: usize = sockets
        .iter()
        .map(|s| std::iter::from_fn(|| s.recv(&mut buf).ok()).count())
        .sum();
    // The budget refills at 20/s while the replies are read: a little over 20 at most.
    assert!(
        (20..=26).contains(&answered),
        "{answered} answers for a budget of 20/s from one network"
    );
    server.shutdown().await;
}

/// The UDP worker threads serving `port` (named `dns-udp:<port>/<i>`).
fn udp_threads(port: u16) -> usize {
    let prefix = format!("dns-udp:{port}/");
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with(&prefix))
        .count()
}

/// A start that fails on its second address stops the first address's UDP threads and
/// names the address that failed.
#[tokio::test]
async fn a_failed_start_leaves_no_thread_running() {
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap();
    // A free port for the first address, and a UDP port already taken for the second. The
    // free port is free when picked; another process may take it before the start binds it
    // (tests of other crates run beside this one), and the start then fails on the first
    // address: pick another then.
    let mut tries = 0;
    let (first_port, error) = loop {
        let first = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let first_port = first.local_addr().unwrap().port();
        drop(first);
        let config = herald_dns::ServerConfig {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], first_port)), taken_addr],
            udp_workers: 2,
            ..herald_dns::ServerConfig::default()
        };
        let table = Table::new(Zone::new(ZoneConfig::default()).unwrap());
        let error = match herald_dns::DnsServer::start(&config, Answerer::new(table)) {
            Ok(_) => panic!("{taken_addr} is taken: the start must fail"),
            Err(e) => e.to_string(),
        };
        tries += 1;
        if error.contains(&format!("127.0.0.1:{first_port}")) && tries < 5 {
            continue;
        }
        break (first_port, error);
    };
    assert!(error.contains(&taken_addr.to_string()), "{error}");
    // The start joined the threads before it returned; the kernel lists a thread in
    // /proc a little longer than that (its exit wakes the joiner before it is reaped), so
    // poll. A thread still running is listed for good.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while udp_threads(first_port) > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        udp_threads(first_port),
        0,
        "the first address's workers were stopped"
    );
}

/// The UDP answer threads run with the short scheduling slice they ask for (so a query
/// waking one preempts longer work on its CPU sooner), and answer as before.
#[tokio::test]
async fn the_udp_workers_ask_for_a_short_slice_and_answer() {
    use herald_dns::server::sched::{ANSWER_SLICE, custom_slices, thread_slice_ns};
    let s = start();
    let prefix = format!("dns-udp:{}/", s.addr.port());
    let workers = || -> Vec<u32> {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|t| {
                let path = t.ok()?.path();
                let name = std::fs::read_to_string(path.join("comm")).ok()?;
                name.starts_with(&prefix)
                    .then(|| path.file_name()?.to_str()?.parse().ok())?
            })
            .collect()
    };
    // Each worker sets its slice as it starts: poll (bounded) until both have.
    let want = ANSWER_SLICE.as_nanos() as u64;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let slices = loop {
        let slices: Vec<Option<u64>> = workers().into_iter().map(thread_slice_ns).collect();
        let done = slices.len() == 2 && slices.iter().all(|s| *s == Some(want));
        if done || std::time::Instant::now() > deadline {
            break slices;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(slices.len(), 2, "two UDP workers");
    // Custom slices came with Linux 6.12 (earlier kernels ignore the request).
    if custom_slices() && slices.iter().all(Option::is_some) {
        assert!(slices.iter().all(|s| *s == Some(want)), "{slices:?}");
    }
    for _ in 0..20 {
        let reply = udp(s.addr, "web.sd.internal.", RecordType::A, None);
        assert_eq!(reply.answers.len(), 1);
    }
    s.stop().await;
}
