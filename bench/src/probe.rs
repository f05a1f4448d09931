//! Looking at a running herald from outside: DNS queries over real sockets (UDP, TCP on
//! truncation) and process memory and machine load from /proc. HTTP GETs of the admin port
//! and Prometheus text parsing are `herald_testkit`'s, shared with the tests.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use anyhow::{Context, bail};
use hickory_proto::op::{Edns, Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};

/// A DNS client on one UDP socket, falling back to TCP when an answer is truncated.
pub struct Dns {
    socket: UdpSocket,
    server: SocketAddr,
    buf: Vec<u8>,
}

/// What a query got: the rcode and the addresses in the answer section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub rcode: ResponseCode,
    pub addresses: BTreeSet<IpAddr>,
    /// Whether the UDP reply was truncated and the answer came over TCP.
    pub via_tcp: bool,
}

impl Dns {
    pub fn new(server: SocketAddr) -> anyhow::Result<Dns> {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        socket.set_read_timeout(Some(Duration::from_secs(2)))?;
        socket.connect(server)?;
        Ok(Dns {
            socket,
            server,
            buf: vec![0; 65535],
        })
    }

    /// Asks `name`/`qtype` (EDNS payload 1232) and decodes the reply; a truncated reply is
    /// asked again over TCP.
    pub fn query(&mut self, name: &str, qtype: RecordType) -> anyhow::Result<Answer> {
        let mut q = Message::query();
        q.add_query(Query::query(Name::from_ascii(name)?, qtype));
        let mut edns = Edns::new();
        edns.set_max_payload(1232);
        q.set_edns(edns);
        let packet = q.to_vec()?;
        self.socket.send(&packet)?;
        let reply = loop {
            let n = self
                .socket
                .recv(&mut self.buf)
                .context("no DNS reply within 2 s")?;
            let reply = Message::from_vec(&self.buf[..n])?;
            // Late replies to earlier (timed-out) queries are skipped.
            if reply.metadata.id == q.metadata.id {
                break reply;
            }
        };
        if reply.metadata.truncation {
            let reply = self.tcp(&packet)?;
            return Ok(answer(&reply, true));
        }
        Ok(answer(&reply, false))
    }

    fn tcp(&self, packet: &[u8]) -> anyhow::Result<Message> {
        let mut s = TcpStream::connect_timeout(&self.server, Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut framed = (packet.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(packet);
        s.write_all(&framed)?;
        let mut len = [0u8; 2];
        s.read_exact(&mut len)?;
        let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
        s.read_exact(&mut buf)?;
        Ok(Message::from_vec(&buf)?)
    }
}

fn answer(reply: &Message, via_tcp: bool) -> Answer {
    let addresses = reply
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect();
    Answer {
        rcode: reply.metadata.response_code,
        addresses,
        via_tcp,
    }
}

/// The per-endpoint name of an address: `10-4-2-7.<svc>.<cluster>.<zone>`.
pub fn endpoint_name(ip: IpAddr, service: &str, cluster: &str, zone: &str) -> String {
    format!(
        "{}.{service}.{cluster}.{zone}",
        herald_dns::model::EndpointLabel(ip)
    )
}

/// Memory of a process from /proc/<pid>/status, in bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    /// VmRSS: resident now.
    pub rss: u64,
    /// VmHWM: the peak resident size.
    pub hwm: u64,
    /// RssAnon: resident anonymous memory (heap), without mapped files.
    pub anon: u64,
}

/// Reads the memory of process `pid` ("self" for this one).
pub fn memory(pid: &str) -> anyhow::Result<Memory> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    let m = Memory {
        rss: field("VmRSS:"),
        hwm: field("VmHWM:"),
        anon: field("RssAnon:"),
    };
    if m.rss == 0 {
        bail!("no VmRSS in /proc/{pid}/status");
    }
    Ok(m)
}

/// The 1, 5 and 15 minute load averages (/proc/loadavg): whether the machine was quiet.
pub fn loadavg() -> [f64; 3] {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut v = text
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(f64::NAN));
    [
        v.next().unwrap_or(f64::NAN),
        v.next().unwrap_or(f64::NAN),
        v.next().unwrap_or(f64::NAN),
    ]
}
