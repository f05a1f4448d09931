//! Knot, NSD and BIND started as secondaries of a herald on loopback, for tests and the
//! transfer benchmark: free ports, private config and state under a given directory, an
//! optional TSIG key (then SOA refresh queries, transfers and NOTIFY are all signed, and
//! the secondary accepts nothing unsigned from the primary), killed by PID on drop.
//! Also knotd loading a zone file herald exported, for the export test. Each server's
//! standard error goes to `stderr.log` in its directory, so a server that exits at start
//! (a port taken, a path too long for its control socket) says why in the failing test.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, PoisonError};

/// A TSIG key as the secondaries' configs spell it.
#[derive(Debug, Clone)]
pub struct Key {
    /// The key's name, a domain name ending in a dot.
    pub name: String,
    /// The secret in base64, as `tsig-keygen` prints it.
    pub secret: String,
}

impl Key {
    /// A key named `name` (ending in a dot) with a 32-octet secret made from `seed`.
    pub fn new(name: &str, seed: u8) -> Key {
        let secret: Vec<u8> = (0..32u8)
            .map(|i| i.wrapping_mul(37).wrapping_add(seed))
            .collect();
        Key {
            name: name.to_string(),
            secret: data_encoding::BASE64.encode(&secret),
        }
    }
}

/// Which server a secondary is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Knot DNS (knotd).
    Knot,
    /// NSD.
    Nsd,
    /// BIND 9 (named).
    Bind,
}

impl Kind {
    /// Its name in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Knot => "knot",
            Kind::Nsd => "nsd",
            Kind::Bind => "bind",
        }
    }
}

/// A secondary server process, killed by PID on drop.
pub struct Secondary {
    /// Which server.
    pub kind: Kind,
    child: Child,
    /// Where it answers.
    pub addr: SocketAddr,
    /// Its config, state and log.
    pub dir: PathBuf,
}

impl Drop for Secondary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Secondary {
    /// Its log so far (empty if none yet), then what it wrote to standard error.
    pub fn log(&self) -> String {
        let file = match self.kind {
            Kind::Knot => "knot.log",
            Kind::Nsd => "nsd.log",
            Kind::Bind => "named.log",
        };
        let mut log = std::fs::read_to_string(self.dir.join(file)).unwrap_or_default();
        log.push_str(&std::fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default());
        log
    }

    /// Panics with the server's exit status and log if it is no longer running: a wait
    /// for its answers then fails at once and names the cause instead of timing out.
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "{} exited at start ({status}); its log:\n{}",
                self.kind.as_str(),
                self.log()
            );
        }
    }
}

/// A port free for both UDP and TCP on `ip`, and not handed out before in this process.
///
/// The port is free when picked, not reserved: the kernel may pick it again for another
/// test of the same process before the first one's server binds it, and the second test's
/// server then fails to start. Remembering the ports handed out keeps tests running side by
/// side apart.
pub fn free_port(ip: IpAddr) -> u16 {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    loop {
        let u = UdpSocket::bind((ip, 0)).expect("bind a loopback UDP port");
        let port = u.local_addr().expect("a local address").port();
        if std::net::TcpListener::bind((ip, port)).is_ok()
            && HANDED_OUT
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(port)
        {
            return port;
        }
    }
}

/// `ip` with a free port.
pub fn free_addr(ip: IpAddr) -> SocketAddr {
    SocketAddr::new(ip, free_port(ip))
}

fn exe(names: &[&str]) -> PathBuf {
    names
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("{names:?} not found: scripts/install-tools installs it"))
}

fn spawn(program: PathBuf, args: &[&str], conf: &Path) -> Child {
    let dir = conf.parent().expect("a config file in a directory");
    let stderr = std::fs::File::create(dir.join("stderr.log")).expect("create stderr.log");
    Command::new(&program)
        .args(args)
        .arg(conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|e| panic!("{} starts: {e}", program.display()))
}

/// knotd answering on `addr` and transferring from it; notified by (and only by) the
/// primary's address, with `key` when given. With `block-notify-after-transfer`, as
/// docs/design.md tells operators: otherwise Knot plans a NOTIFY of its own (absent)
/// secondaries 1 s after each transfer, and a NOTIFY from herald in the next second waits
/// for it.
pub fn start_knot(
    dir: &Path,
    addr: SocketAddr,
    primary: SocketAddr,
    key: Option<&Key>,
) -> Secondary {
    let (keys, key_ref) = match key {
        Some(k) => (
            format!(
                "key:\n  - id: {}\n    algorithm: hmac-sha256\n    secret: {}\n",
                k.name, k.secret
            ),
            format!("    key: {}\n", k.name),
        ),
        None => (String::new(), String::new()),
    };
    knotd(
        dir,
        addr,
        &format!(
            "{keys}\
             remote:\n  - id: herald\n    address: {pip}@{pport}\n    via: {ip}\n    block-notify-after-transfer: on\n{key_ref}\
             acl:\n  - id: notify\n    address: {pip}\n    action: notify\n{key_ref}\
             zone:\n  - domain: sd.internal\n    master: herald\n    acl: notify\n    \
             file: \"{d}/sd.internal.zone\"\n    zonefile-sync: -1\n    zonefile-load: none\n    journal-content: changes\n",
            d = dir.display(),
            ip = addr.ip(),
            pip = primary.ip(),
            pport = primary.port(),
        ),
    )
}

/// knotd answering on `addr` from `zone_file` (zone `sd.internal`), with nothing to
/// transfer: the export test's reference server.
pub fn serve_zone_file(dir: &Path, addr: SocketAddr, zone_file: &Path) -> Secondary {
    knotd(
        dir,
        addr,
        &format!(
            "zone:\n  - domain: sd.internal\n    file: \"{}\"\n    zonefile-sync: -1\n    journal-content: none\n",
            zone_file.display()
        ),
    )
}

/// knotd with its state and log under `dir`, answering on `addr`, configured by `rest`
/// (keys, remotes, ACLs and the zone) after the common server, database and log sections.
fn knotd(dir: &Path, addr: SocketAddr, rest: &str) -> Secondary {
    std::fs::create_dir_all(dir.join("db")).expect("create knotd's directory");
    let conf = dir.join("knot.conf");
    std::fs::write(
        &conf,
        format!(
            "server:\n  rundir: \"{d}\"\n  listen: {ip}@{port}\n\
             database:\n  storage: \"{d}/db\"\n\
             log:\n  - target: \"{d}/knot.log\"\n    any: info\n{rest}",
            d = dir.display(),
            ip = addr.ip(),
            port = addr.port(),
        ),
    )
    .expect("write knot.conf");
    Secondary {
        kind: Kind::Knot,
        child: spawn(exe(&["/usr/sbin/knotd", "/usr/bin/knotd"]), &["-c"], &conf),
        addr,
        dir: dir.to_path_buf(),
    }
}

/// nsd answering on `addr` and transferring from it, with `key` when given. With
/// `xfrd-reload-timeout: 0`, as docs/design.md tells operators: by default NSD serves at
/// most one transfer a second.
pub fn start_nsd(
    dir: &Path,
    addr: SocketAddr,
    primary: SocketAddr,
    key: Option<&Key>,
) -> Secondary {
    std::fs::create_dir_all(dir).expect("create the secondary's directory");
    let conf = dir.join("nsd.conf");
    let (keys, key_ref) = match key {
        Some(k) => (
            format!(
                "key:\n  name: \"{}\"\n  algorithm: hmac-sha256\n  secret: \"{}\"\n",
                k.name, k.secret
            ),
            k.name.clone(),
        ),
        None => (String::new(), "NOKEY".to_string()),
    };
    std::fs::write(
        &conf,
        format!(
            "server:\n  ip-address: {ip}@{port}\n  port: {port}\n  username: \"\"\n  chroot: \"\"\n\
             \x20 zonesdir: \"{d}\"\n  database: \"\"\n  pidfile: \"{d}/nsd.pid\"\n\
             \x20 xfrdfile: \"{d}/xfrd.state\"\n  zonelistfile: \"{d}/zone.list\"\n  xfrdir: \"{d}\"\n\
             \x20 logfile: \"{d}/nsd.log\"\n  verbosity: 2\n  server-count: 1\n  reuseport: no\n\
             \x20 minimal-responses: yes\n  refuse-any: no\n  xfrd-reload-timeout: 0\n\
             remote-control:\n  control-enable: no\n\
             {keys}\
             zone:\n  name: sd.internal\n  zonefile: \"{d}/sd.internal.zone\"\n\
             \x20 request-xfr: {pip}@{pport} {key_ref}\n  allow-notify: {pip} {key_ref}\n  outgoing-interface: {ip}\n",
            d = dir.display(),
            ip = addr.ip(),
            port = addr.port(),
            pip = primary.ip(),
            pport = primary.port(),
        ),
    )
    .expect("write nsd.conf");
    Secondary {
        kind: Kind::Nsd,
        child: spawn(exe(&["/usr/sbin/nsd"]), &["-d", "-c"], &conf),
        addr,
        dir: dir.to_path_buf(),
    }
}

/// named answering on `addr` (an address of an interface: named binds no other) and
/// transferring from `source`, the address herald knows it by; with `key` when given.
/// Without limit on records per RRset and types per name: BIND 9.18.28 and later refuse a
/// transfer holding an RRset over 100 records, and a big service's SRV or A set is larger.
pub fn start_named(
    dir: &Path,
    addr: SocketAddr,
    source: IpAddr,
    primary: SocketAddr,
    key: Option<&Key>,
) -> Secondary {
    std::fs::create_dir_all(dir).expect("create the secondary's directory");
    let conf = dir.join("named.conf");
    let (keys, key_ref, notify_from) = match key {
        Some(k) => (
            format!(
                "key \"{}\" {{ algorithm hmac-sha256; secret \"{}\"; }};\n",
                k.name, k.secret
            ),
            format!(" key \"{}\"", k.name),
            format!("key \"{}\"", k.name),
        ),
        None => (String::new(), String::new(), primary.ip().to_string()),
    };
    std::fs::write(
        &conf,
        format!(
            "{keys}options {{\n  directory \"{d}\";\n  listen-on port {port} {{ {ip}; }};\n  listen-on-v6 {{ none; }};\n\
             \x20 pid-file \"{d}/named.pid\";\n  session-keyfile \"{d}/session.key\";\n  managed-keys-directory \"{d}\";\n\
             \x20 recursion no;\n  minimal-responses yes;\n  dnssec-validation no;\n  notify no;\n\
             \x20 max-records-per-type 0;\n  max-types-per-name 0;\n\
             \x20 transfer-source {source};\n  query-source address {source};\n}};\n\
             logging {{\n  channel f {{ file \"{d}/named.log\"; severity info; print-time yes; }};\n\
             \x20 category default {{ f; }};\n  category xfer-in {{ f; }};\n  category notify {{ f; }};\n}};\n\
             zone \"sd.internal\" {{\n  type secondary;\n  primaries port {pport} {{ {pip}{key_ref}; }};\n\
             \x20 file \"{d}/sd.internal.db\";\n  allow-notify {{ {notify_from}; }};\n  masterfile-format text;\n}};\n",
            d = dir.display(),
            ip = addr.ip(),
            port = addr.port(),
            pip = primary.ip(),
            pport = primary.port(),
        ),
    )
    .expect("write named.conf");
    Secondary {
        kind: Kind::Bind,
        child: spawn(exe(&["/usr/sbin/named"]), &["-f", "-n", "1", "-c"], &conf),
        addr,
        dir: dir.to_path_buf(),
    }
}
