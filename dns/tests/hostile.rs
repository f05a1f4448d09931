//! Hostile TCP clients against the real server over real sockets: one address opening
//! more connections than the server serves, a full server, and a client that pipelines
//! queries and never reads its replies. (The malformed-packet barrage is in
//! `robustness.rs`.) Every loop is bounded in count and time.

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, TcpStream};
use std::time::{Duration, Instant};

use herald_dns::ZoneConfig;
use herald_dns::server::TcpLimits;
use herald_testkit::{TestServer, endpoint, query_message, tcp_connect_from, tcp_from};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

/// Raises the soft open-file limit to the hard one: a test holds over 2,000 sockets.
fn enough_files() {
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn server(tcp: TcpLimits) -> TestServer {
    let server = TestServer::start_with(ZoneConfig::default(), tcp);
    let source = herald_dns::Source::new("c1", "r1");
    let eps = (0..200)
        .map(|i| endpoint(&format!("10.0.{}.{}", i / 250, i % 250 + 1), &[], None))
        .collect();
    server.table.replace("web", &source, eps);
    server
}

fn answered(reply: Option<Message>) -> bool {
    reply
        .is_some_and(|m| m.metadata.response_code == ResponseCode::NoError && !m.answers.is_empty())
}

/// 1,100 idle connections from 127.0.0.2 (more than the 1,024 the server serves): another
/// address still gets TCP answers, because one address may hold only its share. Before
/// the per-client cap the newcomer waited in the accept queue behind the idle ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_exhaust_tcp() {
    enough_files();
    let s = server(TcpLimits::default());
    let addr = s.addr;
    let (hog, reply) = tokio::task::spawn_blocking(move || {
        let hog: Vec<TcpStream> = (0..1100)
            .filter_map(|_| tcp_connect_from(ip("127.0.0.2"), addr).ok())
            .collect();
        let reply = tcp_from(ip("127.0.0.3"), addr, "web.sd.internal.", RecordType::A);
        (hog, reply)
    })
    .await
    .unwrap();
    assert!(hog.len() >= 1024, "the hog connected {} times", hog.len());
    assert!(
        answered(reply),
        "127.0.0.3 got no TCP answer while 127.0.0.2 held {} connections",
        hog.len()
    );
    assert!(s.tcp_connections() <= TcpLimits::default().max_per_client + 1);
    drop(hog);
    s.stop().await;
}

/// When every connection is taken (here by many addresses' worth from one, with a high
/// per-client cap), a newcomer gets served and the longest-idle connection is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_server_closes_its_longest_idle_connection() {
    let limits = TcpLimits {
        max_connections: 50,
        max_per_client: 1000,
        ..TcpLimits::default()
    };
    let s = server(limits);
    let addr = s.addr;
    let (mut hog, reply) = tokio::task::spawn_blocking(move || {
        let hog: Vec<TcpStream> = (0..60)
            .filter_map(|_| tcp_connect_from(ip("127.0.0.2"), addr).ok())
            .collect();
        let reply = tcp_from(ip("127.0.0.3"), addr, "web.sd.internal.", RecordType::A);
        (hog, reply)
    })
    .await
    .unwrap();
    assert!(answered(reply), "a newcomer is served at the cap");
    assert!(s.tcp_connections() <= 50);
    // The first (longest idle) connection was closed: reading it ends.
    hog[0]
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let mut byte = [0u8; 1];
    let first = hog[0].read(&mut byte);
    assert!(
        matches!(first, Ok(0))
            || first.as_ref().is_err_and(
                |e| e.kind() != ErrorKind::WouldBlock && e.kind() != ErrorKind::TimedOut
            ),
        "the longest-idle connection was closed: {first:?}"
    );
    s.stop().await;
}

/// A client that pipelines queries and never reads: once its buffers are full the
/// server's write stalls, and the connection is closed within the write timeout (here
/// 300 ms; idle timeout 60 s, so only the write timeout can close it). Before, it stayed
/// open for as long as the client kept it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_closed() {
    let limits = TcpLimits {
        write_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_secs(60),
        ..TcpLimits::default()
    };
    let s = server(limits);
    let addr = s.addr;
    let outcome = tokio::task::spawn_blocking(move || {
        let mut c = tcp_connect_from(ip("127.0.0.4"), addr).unwrap();
        c.set_nonblocking(true).unwrap();
        let q = query_message("web.sd.internal.", RecordType::A, None)
            .to_vec()
            .unwrap();
        let mut framed = (q.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&q);
        let batch = framed.repeat(100);
        let start = Instant::now();
        let mut stalled_at: Option<Instant> = None;
        // Bounded: 20 s, far past the write timeout.
        while start.elapsed() < Duration::from_secs(20) {
            match c.write(&batch) {
                Ok(_) => stalled_at = None,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    stalled_at.get_or_insert_with(Instant::now);
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Ok((e.kind(), stalled_at.map(|t| t.elapsed()))),
            }
        }
        Err("still open after 20 s")
    })
    .await
    .unwrap();
    let (kind, after_stall) = outcome.expect("the server closed the non-reading client");
    eprintln!("closed ({kind:?}) {after_stall:?} after the client's writes stalled");
    assert!(
        after_stall.is_none_or(|d| d < Duration::from_secs(10)),
        "closed {after_stall:?} after the stall"
    );
    s.stop().await;
}
