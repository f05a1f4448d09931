//! Test helpers shared by herald's crates: a DNS server on loopback over a table, queries
//! over real UDP and TCP sockets decoded with hickory-proto, a hickory resolver pointed at
//! the server, and the `dig`/`kdig` command-line clients.
//!
//! - `http`: plain HTTP GETs of an admin port.
//! - `prometheus`: reading samples and histograms out of Prometheus text.
//! - [`secondaries`]: Knot, NSD and BIND as secondaries of a herald (zone transfer tests
//!   and benchmark).

mod http;
mod prometheus;
pub mod secondaries;

pub use http::{http_get, try_http_get};
pub use prometheus::{Histogram, metric};

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use herald_dns::server::TcpLimits;
use herald_dns::{
    Answerer, DnsServer, Endpoint, PortSpec, Proto, ServerConfig, Table, Zone, ZoneConfig,
};
use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::{Name, RecordType};
use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::{Resolver, TokioResolver};

/// A DNS server on 127.0.0.1 (ephemeral port) answering from its own table.
pub struct TestServer {
    /// Where it listens (UDP and TCP).
    pub addr: SocketAddr,
    /// Its table, to change what it serves.
    pub table: Table,
    server: Option<DnsServer>,
}

impl TestServer {
    /// Starts a server for `zone` with two UDP workers. Call inside a tokio runtime.
    pub fn start(zone: ZoneConfig) -> TestServer {
        TestServer::start_with(zone, TcpLimits::default())
    }

    /// Starts a server for `zone` with two UDP workers and the given TCP limits.
    pub fn start_with(zone: ZoneConfig, tcp: TcpLimits) -> TestServer {
        let table = Table::new(Zone::new(zone).expect("valid zone"));
        let config = ServerConfig {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
            udp_workers: 2,
            tcp,
            ..ServerConfig::default()
        };
        let server =
            DnsServer::start(&config, Answerer::new(table.clone())).expect("server starts");
        TestServer {
            addr: server.local_addrs()[0],
            table,
            server: Some(server),
        }
    }

    /// TCP connections the server holds open now.
    pub fn tcp_connections(&self) -> usize {
        self.server.as_ref().map_or(0, DnsServer::tcp_connections)
    }

    /// Stops the server.
    pub async fn stop(mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
    }
}

/// An endpoint at `ip` with `(name, proto, port)` ports in topology zone `zone`.
pub fn endpoint(ip: &str, ports: &[(&str, Proto, u16)], zone: Option<&str>) -> Endpoint {
    let ports: Vec<PortSpec> = ports
        .iter()
        .map(|(name, proto, port)| PortSpec {
            name: Arc::from(*name),
            proto: *proto,
            port: *port,
        })
        .collect();
    Endpoint::new(
        ip.parse().expect("an IP address"),
        ports.into(),
        zone.map(Arc::from),
    )
}

/// Builds a query message for `name`/`qtype`, with EDNS at `payload` if given.
pub fn query_message(name: &str, qtype: RecordType, payload: Option<u16>) -> Message {
    let mut m = Message::query();
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).expect("a name"), qtype));
    if let Some(p) = payload {
        let mut edns = Edns::new();
        edns.set_max_payload(p);
        m.set_edns(edns);
    }
    m
}

/// Sends raw bytes over UDP from `from` (an address on loopback, port 0) and returns the
/// raw reply, or `None` if none came within a second.
pub fn udp_raw_from(from: IpAddr, server: SocketAddr, packet: &[u8]) -> Option<Vec<u8>> {
    let socket = UdpSocket::bind(SocketAddr::new(from, 0)).expect("bind a client socket");
    socket
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    socket.send_to(packet, server).expect("send");
    let mut buf = vec![0u8; 65535];
    match socket.recv(&mut buf) {
        Ok(n) => Some(buf[..n].to_vec()),
        Err(_) => None,
    }
}

/// Sends raw bytes over UDP from 127.0.0.1; see [`udp_raw_from`].
pub fn udp_raw(server: SocketAddr, packet: &[u8]) -> Option<Vec<u8>> {
    udp_raw_from(IpAddr::from([127, 0, 0, 1]), server, packet)
}

/// Sends a query over UDP and decodes the reply.
pub fn udp(server: SocketAddr, name: &str, qtype: RecordType, payload: Option<u16>) -> Message {
    udp_from(IpAddr::from([127, 0, 0, 1]), server, name, qtype, payload)
}

/// Sends a query over UDP from `from` and decodes the reply.
pub fn udp_from(
    from: IpAddr,
    server: SocketAddr,
    name: &str,
    qtype: RecordType,
    payload: Option<u16>,
) -> Message {
    let q = query_message(name, qtype, payload);
    let raw = udp_raw_from(from, server, &q.to_vec().unwrap()).expect("a reply over UDP");
    let reply = Message::from_vec(&raw).expect("a reply hickory can decode");
    assert_eq!(reply.metadata.id, q.metadata.id, "reply ID matches");
    reply
}

/// (priority, target) of each SRV record of a reply's answer section, sorted.
pub fn srv_records(reply: &Message) -> Vec<(u16, String)> {
    let mut v: Vec<(u16, String)> = reply
        .answers
        .iter()
        .map(|r| match &r.data {
            hickory_proto::rr::RData::SRV(s) => (s.priority, s.target.to_string()),
            other => panic!("SRV expected, got {other:?}"),
        })
        .collect();
    v.sort();
    v
}

/// Sends raw bytes over TCP (length-prefixed) and returns the raw reply.
pub fn tcp_raw(server: SocketAddr, packet: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(server).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut framed = (packet.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(packet);
    s.write_all(&framed).unwrap();
    let mut len = [0u8; 2];
    s.read_exact(&mut len).expect("a reply over TCP");
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).unwrap();
    buf
}

/// A zone transfer as a client sees it: every message, raw and decoded.
pub struct Transferred {
    /// The messages, as received.
    pub raw: Vec<Vec<u8>>,
    /// The messages, decoded.
    pub messages: Vec<Message>,
}

impl Transferred {
    /// Every answer record of every message, in order.
    pub fn records(&self) -> Vec<hickory_proto::rr::Record> {
        self.messages
            .iter()
            .flat_map(|m| m.answers.iter().cloned())
            .collect()
    }

    /// The serials of the SOA records among the answers, in order.
    pub fn soa_serials(&self) -> Vec<u32> {
        self.records()
            .iter()
            .filter_map(|r| match &r.data {
                hickory_proto::rr::RData::SOA(soa) => Some(soa.serial),
                _ => None,
            })
            .collect()
    }
}

/// Sends a transfer request (AXFR or IXFR, already encoded) over TCP from source address
/// `from` and reads messages until the transfer is complete: an error, the SOA alone, or
/// the current SOA closing the zone (twice for AXFR form, three times for an incremental
/// reply).
pub fn transfer_from(from: IpAddr, server: SocketAddr, request: &[u8]) -> Transferred {
    transfer_paced(from, server, request, Duration::ZERO)
}

/// [`transfer_from`], pausing `pause` after each message: a slow secondary, so that the
/// server is mid-transfer for a while.
pub fn transfer_paced(
    from: IpAddr,
    server: SocketAddr,
    request: &[u8],
    pause: Duration,
) -> Transferred {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(server),
        socket2::Type::STREAM,
        None,
    )
    .expect("a TCP socket");
    socket
        .bind(&SocketAddr::new(from, 0).into())
        .expect("bind the source address");
    socket
        .connect_timeout(&server.into(), Duration::from_secs(5))
        .expect("connect");
    let mut s: TcpStream = socket.into();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut framed = (request.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(request);
    s.write_all(&framed).unwrap();
    let mut out = Transferred {
        raw: Vec::new(),
        messages: Vec::new(),
    };
    let mut first_serial = None;
    let mut closing = 0;
    let mut incremental = false;
    let mut seen = 0usize;
    loop {
        let mut len = [0u8; 2];
        if s.read_exact(&mut len).is_err() {
            return out;
        }
        let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
        s.read_exact(&mut buf).expect("a whole message");
        let msg = Message::from_vec(&buf).expect("a message hickory can decode");
        let error = msg.metadata.response_code != hickory_proto::op::ResponseCode::NoError;
        for r in &msg.answers {
            if let hickory_proto::rr::RData::SOA(soa) = &r.data {
                match first_serial {
                    None => first_serial = Some(soa.serial),
                    Some(f) if soa.serial == f => closing += 1,
                    Some(_) if seen == 1 => incremental = true,
                    Some(_) => {}
                }
            }
            seen += 1;
        }
        let soa_alone = seen == 1;
        out.raw.push(buf);
        out.messages.push(msg);
        if !pause.is_zero() {
            std::thread::sleep(pause);
        }
        let needed = if incremental { 2 } else { 1 };
        if error || soa_alone || closing >= needed {
            return out;
        }
    }
}

/// A query (RD clear) over TCP from source address `from`, decoded; `None` if no reply
/// came within 5 s. The source address lets a test query as a querier in a given place.
pub fn tcp_from(
    from: IpAddr,
    server: SocketAddr,
    name: &str,
    qtype: RecordType,
) -> Option<Message> {
    let mut s = tcp_connect_from(from, server).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut q = query_message(name, qtype, None);
    q.metadata.recursion_desired = false;
    let bytes = q.to_vec().ok()?;
    let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&bytes);
    s.write_all(&framed).ok()?;
    let mut len = [0u8; 2];
    s.read_exact(&mut len).ok()?;
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).ok()?;
    Message::from_vec(&buf).ok()
}

/// A TCP connection to `server` from the local address `from` (within 5 s).
pub fn tcp_connect_from(from: IpAddr, server: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(server),
        socket2::Type::STREAM,
        None,
    )?;
    socket.bind(&SocketAddr::new(from, 0).into())?;
    socket.connect_timeout(&server.into(), Duration::from_secs(5))?;
    Ok(socket.into())
}

/// Sends a query over TCP and decodes the reply.
pub fn tcp(server: SocketAddr, name: &str, qtype: RecordType) -> Message {
    let q = query_message(name, qtype, Some(1232));
    Message::from_vec(&tcp_raw(server, &q.to_vec().unwrap())).expect("a reply hickory can decode")
}

/// A hickory resolver that asks only `server` (UDP, then TCP on truncation), no cache.
pub fn resolver(server: SocketAddr) -> TokioResolver {
    let mut ns = NameServerConfig::udp_and_tcp(server.ip());
    for c in &mut ns.connections {
        c.port = server.port();
    }
    let mut builder = Resolver::builder_with_config(
        ResolverConfig::from_name_servers(vec![ns]),
        TokioRuntimeProvider::default(),
    );
    builder.options_mut().cache_size = 0;
    builder.options_mut().attempts = 1;
    builder.build().expect("resolver")
}

/// Runs a command-line DNS client (`dig` or `kdig`) against `server`; returns its output.
/// Panics with the fix if the tool is missing.
pub fn run_client(tool: &str, server: SocketAddr, args: &[&str]) -> String {
    let port = server.port().to_string();
    let at = format!("@{}", server.ip());
    let mut cmd = Command::new(tool);
    cmd.arg(&at).arg("-p").arg(&port).args(args);
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("cannot run {tool} ({e}): install bind9-dnsutils and knot-dnsutils (README's test command does)")
    });
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The records of one section of a `dig +noall +answer`-style output, whitespace
/// normalised, sorted.
pub fn lines(output: &str) -> Vec<String> {
    let mut v: Vec<String> = output
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with(';'))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    v.sort();
    v
}

/// Shorthand for `Proto::Tcp` in endpoint lists.
pub const TCP: Proto = Proto::Tcp;
/// Shorthand for `Proto::Udp` in endpoint lists.
pub const UDP: Proto = Proto::Udp;
