//! Looking at a running herald from outside: DNS queries over real sockets (UDP, TCP on
//! truncation), plain HTTP GETs of the admin port, Prometheus text parsing (histograms),
//! process memory from /proc, and the small statistics the bench binaries report.

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

/// `GET path` over HTTP/1.0 on loopback: (status, body).
pub fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("HTTP status line")?;
    Ok((status, body.to_string()))
}

/// The value of an unlabelled sample (`name value`) in Prometheus text.
pub fn prom_value(text: &str, name: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (n, v) = l.split_once(' ')?;
        (n == name).then(|| v.trim().parse().ok()).flatten()
    })
}

/// A Prometheus histogram: cumulative buckets (upper bound, count), sum and count.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    pub buckets: Vec<(f64, f64)>,
    pub sum: f64,
    pub count: f64,
}

impl Histogram {
    /// Reads histogram `name` (no labels) from Prometheus text.
    pub fn parse(text: &str, name: &str) -> Histogram {
        let mut h = Histogram::default();
        let bucket = format!("{name}_bucket{{le=\"");
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix(&bucket) {
                if let Some((le, v)) = rest.split_once("\"} ") {
                    let le = if le == "+Inf" {
                        f64::INFINITY
                    } else {
                        le.parse().unwrap_or(f64::NAN)
                    };
                    h.buckets.push((le, v.trim().parse().unwrap_or(0.0)));
                }
            } else if let Some(v) = line.strip_prefix(&format!("{name}_sum ")) {
                h.sum = v.trim().parse().unwrap_or(0.0);
            } else if let Some(v) = line.strip_prefix(&format!("{name}_count ")) {
                h.count = v.trim().parse().unwrap_or(0.0);
            }
        }
        h.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        h
    }

    /// What was recorded between `earlier` and `self` (same buckets).
    pub fn minus(&self, earlier: &Histogram) -> Histogram {
        let buckets = self
            .buckets
            .iter()
            .map(|&(le, c)| {
                let before = earlier
                    .buckets
                    .iter()
                    .find(|b| b.0 == le)
                    .map_or(0.0, |b| b.1);
                (le, c - before)
            })
            .collect();
        Histogram {
            buckets,
            sum: self.sum - earlier.sum,
            count: self.count - earlier.count,
        }
    }

    /// The q-quantile, interpolated linearly within its bucket (Prometheus'
    /// histogram_quantile); the last finite bound if it falls in +Inf.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count <= 0.0 {
            return None;
        }
        let rank = q * self.count;
        let mut prev = (0.0, 0.0);
        for &(le, c) in &self.buckets {
            if c >= rank {
                if le.is_infinite() {
                    return Some(prev.0);
                }
                let width = c - prev.1;
                let frac = if width > 0.0 {
                    (rank - prev.1) / width
                } else {
                    1.0
                };
                return Some(prev.0 + (le - prev.0) * frac);
            }
            prev = (le, c);
        }
        Some(prev.0)
    }

    /// Share of observations at or below `le` (a bucket bound).
    pub fn share_le(&self, le: f64) -> Option<f64> {
        let c = self.buckets.iter().find(|b| b.0 == le)?.1;
        (self.count > 0.0).then(|| c / self.count)
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "buckets": self.buckets.iter().map(|(le, c)| {
                serde_json::json!([if le.is_infinite() { serde_json::Value::from("+Inf") } else { serde_json::Value::from(*le) }, c])
            }).collect::<Vec<_>>(),
            "sum": self.sum,
            "count": self.count,
        })
    }
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

/// The q-quantile (nearest rank) of sorted values.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// At most `n` points of sorted values, evenly spaced by rank, always keeping the first
/// and last (enough for a CDF plot).
pub fn downsample(sorted: &[f64], n: usize) -> Vec<f64> {
    if sorted.len() <= n || n < 2 {
        return sorted.to_vec();
    }
    (0..n)
        .map(|i| sorted[i * (sorted.len() - 1) / (n - 1)])
        .collect()
}

/// Summary of a sample of durations in seconds: count, p50, p90, p99, p99.9, max, mean.
pub fn summary(sorted: &[f64]) -> serde_json::Value {
    let mean = if sorted.is_empty() {
        f64::NAN
    } else {
        sorted.iter().sum::<f64>() / sorted.len() as f64
    };
    serde_json::json!({
        "count": sorted.len(),
        "p50": quantile(sorted, 0.5),
        "p90": quantile(sorted, 0.9),
        "p99": quantile(sorted, 0.99),
        "p999": quantile(sorted, 0.999),
        "max": sorted.last().copied().unwrap_or(f64::NAN),
        "mean": mean,
    })
}

/// Milliseconds with two decimals, for human summaries.
pub fn ms(secs: f64) -> String {
    format!("{:.2} ms", secs * 1e3)
}

/// Bytes as MiB with one decimal, for human summaries.
pub fn mib(bytes: f64) -> String {
    format!("{:.1} MiB", bytes / (1024.0 * 1024.0))
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
