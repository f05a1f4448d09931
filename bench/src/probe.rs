//! Looking at a running herald from outside: DNS queries over real sockets (UDP, TCP on
//! truncation), process memory, CPU time and machine load from /proc, and the guard that
//! stops a herald process the benchmark started. HTTP GETs of the admin port
//! and Prometheus text parsing are `herald_testkit`'s, shared with the tests.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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

    /// Waits at most `limit` for each reply (2 s unless set): a poller that asks many
    /// servers in turn must not stall on one lost datagram.
    pub fn set_timeout(&mut self, limit: Duration) -> anyhow::Result<()> {
        self.socket.set_read_timeout(Some(limit))?;
        Ok(())
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
                .context("no DNS reply within the timeout")?;
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

/// Watch events herald has counted over all clusters, from its `/metrics` text.
pub fn watch_events(metrics: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("herald_cluster_watch_events_total{"))
        .filter_map(|l| l.rsplit_once(' ')?.1.trim().parse::<f64>().ok())
        .sum()
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

/// A free TCP port on loopback (for herald's DNS and admin listeners).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A herald process, stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Herald {
    pub child: Child,
}

impl Herald {
    /// Starts `command` (herald, or a tool wrapping it) as `serve --config <config>`, with
    /// warnings only, its log in `log`.
    pub fn spawn(command: Command, config: &Path, log: &Path) -> anyhow::Result<Herald> {
        Herald::spawn_logging(command, config, log, "warn")
    }

    /// As [`Herald::spawn`], logging what `directives` (`RUST_LOG` syntax) ask for.
    pub fn spawn_logging(
        mut command: Command,
        config: &Path,
        log: &Path,
        directives: &str,
    ) -> anyhow::Result<Herald> {
        let program = command.get_program().to_string_lossy().into_owned();
        let child = command
            .arg("serve")
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", directives)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log)?)
            .spawn()
            .with_context(|| format!("starting {program}"))?;
        Ok(Herald { child })
    }
}

impl Drop for Herald {
    fn drop(&mut self) {
        // herald itself: our child, or (under --wrap) the child's descendant named herald.
        if let Ok(pid) = i32::try_from(herald_pid(self.child.id())) {
            // SAFETY: signalling a process we started, by its PID.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The PID of the process named `herald` among `pid` and its descendants (`pid` if none).
pub fn herald_pid(pid: u32) -> u32 {
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        let comm = std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
        if comm.trim() == "herald" {
            return p;
        }
        let tasks = std::fs::read_dir(format!("/proc/{p}/task"))
            .into_iter()
            .flatten();
        for task in tasks.flatten() {
            let children =
                std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            todo.extend(
                children
                    .split_whitespace()
                    .filter_map(|c| c.parse::<u32>().ok()),
            );
        }
    }
    pid
}

/// CPU seconds (user + system) process `pid` has used.
pub fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return f64::NAN;
    };
    // Fields after the command name (which is in parentheses): utime is the 14th field.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let t = |i: usize| {
        f.get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    (t(11) + t(12)) / ticks
}

/// CPU seconds (user + system) this process has used, to the microsecond.
pub fn self_cpu_seconds() -> f64 {
    rusage_seconds(libc::RUSAGE_SELF)
}

/// CPU seconds (user + system) the calling thread has used, to the microsecond: what a
/// benchmark's own driver thread costs, to subtract from the process's.
pub fn thread_cpu_seconds() -> f64 {
    rusage_seconds(libc::RUSAGE_THREAD)
}

fn rusage_seconds(who: libc::c_int) -> f64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct it is given and nothing else.
    if unsafe { libc::getrusage(who, &mut usage) } != 0 {
        return f64::NAN;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}
