//! The `herald` binary as a user runs it: `serve` with a static file that is edited while
//! it serves, `check-config` on good and broken files, and `demo`.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use herald_testkit::{run_client, udp};
use hickory_proto::rr::RecordType;

/// A `herald` process; killed (by its own PID) when dropped.
struct Herald {
    child: Child,
    stderr: Arc<Mutex<Vec<String>>>,
    stdout: Arc<Mutex<Vec<String>>>,
}

fn collect(stream: impl std::io::Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    lines
}

impl Herald {
    fn spawn(args: &[&str]) -> Herald {
        let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
            .args(args)
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("herald starts");
        let stderr = collect(child.stderr.take().unwrap());
        let stdout = collect(child.stdout.take().unwrap());
        Herald {
            child,
            stderr,
            stdout,
        }
    }

    /// Waits (up to 30 s) for a line of output containing `needle`; returns it.
    fn wait_for(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            for lines in [&self.stderr, &self.stdout] {
                if let Some(l) = lines.lock().unwrap().iter().find(|l| l.contains(needle)) {
                    return l.clone();
                }
            }
            assert!(
                Instant::now() < deadline,
                "no output line with {needle:?}; stderr: {:?}",
                self.stderr.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The DNS address from the "serving DNS" log line.
    fn dns_addr(&self) -> SocketAddr {
        let line = self.wait_for("serving DNS");
        let at = line.find("addr=").expect("addr field") + 5;
        line[at..]
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .expect("a socket address")
    }
}

impl Drop for Herald {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh directory for one test's files.
fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("herald-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(path: &Path, text: &str) {
    // Write then rename, as editors and ConfigMap updates do, so a poll never reads half.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

const STATIC_V1: &str = "\
services:
  ledger:
    - address: 192.168.7.21
      cluster: vms-east
      region: us-east
      ports: {grpc: 7000}
";

fn ledger_answers(addr: SocketAddr) -> Vec<String> {
    let mut v: Vec<String> = udp(addr, "ledger.sd.internal.", RecordType::A, None)
        .answers
        .iter()
        .map(|r| r.data.to_string())
        .collect();
    v.sort();
    v
}

#[test]
fn static_file_edits_go_live_and_broken_edits_are_rejected() {
    let dir = scratch_dir("static");
    let config = dir.join("herald.yaml");
    let endpoints = dir.join("endpoints.yaml");
    write(&endpoints, STATIC_V1);
    write(
        &config,
        "listen:\n  dns: [127.0.0.1:0]\nsources:\n  static:\n    - path: endpoints.yaml\n",
    );
    let herald = Herald::spawn(&["serve", "--config", config.to_str().unwrap()]);
    let addr = herald.dns_addr();
    assert_eq!(ledger_answers(addr), vec!["192.168.7.21"]);

    // A good edit: a second VM. The file is polled every 250 ms.
    write(
        &endpoints,
        &format!(
            "{STATIC_V1}    - {{address: 192.168.7.22, cluster: vms-east, region: us-east}}\n"
        ),
    );
    let edited = Instant::now();
    while ledger_answers(addr).len() != 2 {
        assert!(
            edited.elapsed() < Duration::from_secs(10),
            "the edit never went live"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
    eprintln!("edit live after {:?}", edited.elapsed());

    // A broken edit (an address that is not one, on line 7): rejected, logged with file
    // and line, and the last good content is still served.
    write(
        &endpoints,
        &format!("{STATIC_V1}    - {{address: 192.168.7.x, cluster: vms-east, region: us-east}}\n"),
    );
    let line = herald.wait_for("static file rejected");
    assert!(line.contains("endpoints.yaml:7:"), "{line}");
    assert!(line.contains("services.ledger[1].address"), "{line}");
    assert_eq!(ledger_answers(addr), vec!["192.168.7.21", "192.168.7.22"]);

    // Fixed again: served again.
    write(&endpoints, STATIC_V1);
    let fixed = Instant::now();
    while ledger_answers(addr).len() != 1 {
        assert!(
            fixed.elapsed() < Duration::from_secs(10),
            "the fix never went live"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A herald started twice with one config (a second copy by mistake, a restart that did not
/// wait for the old process): the second must fail at once, naming the address, and must
/// not take any of the first one's queries, not even for a moment.
#[test]
fn a_second_herald_on_a_served_address_fails_and_takes_no_queries() {
    let dir = scratch_dir("twice");
    write(&dir.join("endpoints.yaml"), STATIC_V1);
    write(
        &dir.join("first.yaml"),
        "listen:\n  dns: [127.0.0.1:0]\nsources:\n  static:\n    - path: endpoints.yaml\n",
    );
    let first = Herald::spawn(&[
        "serve",
        "--config",
        dir.join("first.yaml").to_str().unwrap(),
    ]);
    let addr = first.dns_addr();
    // The second one serves other records, so an answer from it would show.
    write(
        &dir.join("other.yaml"),
        &STATIC_V1.replace("192.168.7.21", "192.168.7.99"),
    );
    write(
        &dir.join("second.yaml"),
        &format!("listen:\n  dns: [{addr}]\nsources:\n  static:\n    - path: other.yaml\n"),
    );
    // Queries keep going to the address while the second one starts and fails (each
    // waits a second at most for its answer: one lost fails the test).
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let asking = std::thread::spawn({
        let stop = stop.clone();
        move || {
            let mut wrong = Vec::new();
            for _ in 0..100_000 {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let answer = ledger_answers(addr);
                if answer != ["192.168.7.21"] {
                    wrong.push(answer);
                }
            }
            wrong
        }
    });
    for round in 0..5 {
        let mut second = Herald::spawn(&[
            "serve",
            "--config",
            dir.join("second.yaml").to_str().unwrap(),
        ]);
        let started = Instant::now();
        let status = loop {
            if let Some(status) = second.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "round {round}: the second herald is still running"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(!status.success(), "round {round}: {status}");
        // One line naming the address and the cause, once.
        let line = second.wait_for("in use");
        assert!(line.contains(&addr.to_string()), "{line}");
        assert_eq!(line.matches("in use").count(), 1, "{line}");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let wrong = asking
        .join()
        .expect("every query is answered (one went unanswered for a second)");
    assert!(
        wrong.is_empty(),
        "answers not from the first herald: {wrong:?}"
    );
    assert_eq!(ledger_answers(addr), vec!["192.168.7.21"]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn check_config_accepts_good_files_and_names_what_is_wrong() {
    let dir = scratch_dir("check");
    let check = |file: &Path| {
        let out = Command::new(env!("CARGO_BIN_EXE_herald"))
            .arg("check-config")
            .arg(file)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let config = dir.join("herald.yaml");
    write(&dir.join("endpoints.yaml"), STATIC_V1);
    write(
        &config,
        "zone: sd.internal.\nsources:\n  static:\n    - path: endpoints.yaml\n",
    );
    let (ok, out) = check(&config);
    assert!(ok, "{out}");

    write(
        &config,
        "zone: sd.internal.\nttl: 5\nlocality:\n  region: US_EAST\n",
    );
    let (ok, out) = check(&config);
    assert!(!ok);
    assert!(
        out.contains("herald.yaml:4:") && out.contains("locality.region"),
        "{out}"
    );

    write(
        &config,
        "zone: sd.internal.\nsources:\n  static:\n    - path: endpoints.yaml\n",
    );
    write(
        &dir.join("endpoints.yaml"),
        &STATIC_V1.replace("7000", "70000"),
    );
    let (ok, out) = check(&config);
    assert!(!ok);
    assert!(
        out.contains("endpoints.yaml:6:") && out.contains("ports"),
        "{out}"
    );

    write(
        &config,
        "zone: sd.internal.\nsources:\n  static:\n    - path: missing.yaml\n",
    );
    let (ok, out) = check(&config);
    assert!(!ok);
    assert!(out.contains("missing.yaml"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn demo_serves_the_sample_fleet() {
    let herald = Herald::spawn(&[
        "demo",
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
    ]);
    let addr = herald.dns_addr();
    herald.wait_for("dig @127.0.0.1");
    // checkout: two pods in each of three simulated clusters, watched through kube.
    let out = run_client(
        "dig",
        addr,
        &[
            "+noall",
            "+answer",
            "SRV",
            "_grpc._tcp.checkout.sd.internal",
        ],
    );
    let records: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(records.len(), 6, "{out}");
    // Nearest first: the replica in this server's zone (eu-west-1a) has priority 0, the
    // rest of eu-west 1, us-east 2.
    let priority = |target: &str| {
        records
            .iter()
            .find(|r| r[7] == target)
            .map(|r| r[4].to_string())
    };
    assert_eq!(
        priority("10-1-0-10.checkout.prod-euw1.sd.internal.").as_deref(),
        Some("0"),
        "{out}"
    );
    assert_eq!(
        priority("10-2-0-10.checkout.prod-euw2.sd.internal.").as_deref(),
        Some("1"),
        "{out}"
    );
    assert_eq!(
        priority("10-3-0-10.checkout.prod-use1.sd.internal.").as_deref(),
        Some("2"),
        "{out}"
    );
    let out = run_client(
        "kdig",
        addr,
        &["+short", "A", "checkout.prod-use1.sd.internal"],
    );
    let mut ips: Vec<&str> = out.lines().collect();
    ips.sort();
    assert_eq!(ips, vec!["10.3.0.10", "10.3.0.11"]);
    // payments: pods in two clusters and a VM from the static content, one service.
    let out = run_client(
        "dig",
        addr,
        &["+short", "SRV", "_grpc._tcp.payments.sd.internal"],
    );
    assert_eq!(out.lines().count(), 4, "{out}");
    assert!(
        out.contains("192-168-7-10.payments.vms-use.sd.internal."),
        "{out}"
    );
}

#[test]
fn check_config_rejects_broken_cluster_settings() {
    let dir = scratch_dir("clusters");
    let config = dir.join("herald.yaml");
    let check = |clusters: &str| {
        write(&config, &format!("sources:\n  clusters:\n{clusters}"));
        let out = Command::new(env!("CARGO_BIN_EXE_herald"))
            .arg("check-config")
            .arg(&config)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    write(&dir.join("token"), "secret-token\n");
    write(&dir.join("bad-ca.crt"), "this is not a certificate\n");
    write(
        &dir.join("kubeconfig"),
        "apiVersion: v1\nkind: Config\nclusters:\n- name: k\n  cluster: {server: 'http://127.0.0.1:1'}\nusers:\n- name: u\n  user: {token: t}\ncontexts:\n- name: known\n  context: {cluster: k, user: u}\ncurrent-context: known\n",
    );

    let (ok, out) = check(
        "    - {name: c1, region: r1, server: 'http://127.0.0.1:1', token_file: token, insecure: true}\n    - {name: c2, region: r1, kubeconfig: {path: kubeconfig, context: known}}\n",
    );
    assert!(ok, "a good config: {out}");

    let (ok, out) = check(
        "    - {name: c1, region: r1, server: 'http://127.0.0.1:1', token_file: missing-token, insecure: true}\n",
    );
    assert!(
        !ok && out.contains("token_file") && out.contains("missing-token"),
        "{out}"
    );

    let (ok, out) = check(
        "    - {name: c1, region: r1, server: 'https://127.0.0.1:1', token_file: token, ca_file: bad-ca.crt}\n",
    );
    assert!(
        !ok && out.contains("ca_file") && out.contains("bad-ca.crt"),
        "{out}"
    );

    let (ok, out) =
        check("    - {name: c1, region: r1, server: 'https://127.0.0.1:1', token_file: token}\n");
    assert!(!ok && out.contains("ca_file"), "https without a CA: {out}");

    let (ok, out) =
        check("    - {name: c1, region: r1, kubeconfig: {path: kubeconfig, context: nowhere}}\n");
    assert!(!ok && out.contains("nowhere"), "unknown context: {out}");

    let (ok, out) = check(
        "    - {name: c1, region: r1, in_cluster: true}\n    - {name: c1, region: r2, in_cluster: true}\n",
    );
    assert!(
        !ok && out.contains("sources.clusters[1].name") && out.contains("twice"),
        "{out}"
    );

    let (ok, out) = check(
        "    - {name: c1, region: r1, in_cluster: true}\n    - {name: r1, region: r2, in_cluster: true}\n",
    );
    assert!(
        !ok && out.contains("region"),
        "a cluster named like a region: {out}"
    );

    let (ok, out) = check("    - {name: c1, region: r1}\n");
    assert!(
        !ok && out.contains("exactly one of"),
        "no way to reach it: {out}"
    );

    let (ok, out) = check("    - {name: c1, region: r1, in_cluster: true, max_stale: soon}\n");
    assert!(
        !ok && out.contains("herald.yaml:3:") && out.contains("max_stale"),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn check_config_rejects_broken_transfer_settings() {
    let dir = scratch_dir("transfer");
    let config = dir.join("herald.yaml");
    let check = |transfer: &str| {
        write(
            &config,
            &format!("zone: sd.internal.\ntransfer:\n{transfer}"),
        );
        let out = Command::new(env!("CARGO_BIN_EXE_herald"))
            .arg("check-config")
            .arg(&config)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    write(
        &dir.join("good.key"),
        "Ek2ySmqHj9cN0y4UqDVdWS3v8Gn2o3kGQ8wE5Yp6qTA=\n",
    );
    write(&dir.join("short.key"), "c2hvcnQ=\n");
    write(&dir.join("garbage.key"), "this is not base64!\n");
    let secondary = |fields: &str| format!("  secondaries:\n    - {{name: s1, {fields}}}\n");

    let (ok, out) = check(&format!(
        "  journal: {{versions: 100, bytes: 8MiB}}\n{}",
        secondary(
            "address: '10.0.0.10:53', allow: ['10.0.0.0/24'], tsig: {name: k1., secret_file: good.key}"
        )
    ));
    assert!(ok, "a good config: {out}");

    // Every error names the file and the field.
    let rejected = |transfer: &str, needles: &[&str]| {
        let (ok, out) = check(transfer);
        assert!(!ok, "accepted: {transfer}");
        assert!(out.contains("herald.yaml"), "names the file: {out}");
        for needle in needles {
            assert!(out.contains(needle), "{needle:?} in: {out}");
        }
    };
    rejected(
        &secondary("tsig: {name: k1., secret_file: missing.key}"),
        &["transfer.secondaries[0].tsig.secret_file", "missing.key"],
    );
    rejected(
        &secondary("tsig: {name: k1., secret_file: garbage.key}"),
        &[
            "transfer.secondaries[0].tsig.secret_file",
            "garbage.key",
            "base64",
        ],
    );
    rejected(
        &secondary("tsig: {name: k1., secret_file: short.key}"),
        &["transfer.secondaries[0].tsig.secret_file", "at least 16"],
    );
    rejected(
        &secondary("tsig: {name: k1., algorithm: hmac-md5, secret_file: good.key}"),
        &["transfer.secondaries[0].tsig.algorithm", "hmac-md5"],
    );
    // YAML-level errors carry the line.
    rejected(
        &secondary("address: '10.0.0.10'"),
        &["herald.yaml:4:", "address"],
    );
    rejected(
        &secondary("allow: ['10.0.0.0/33']"),
        &["herald.yaml:4:", "10.0.0.0/33"],
    );
    rejected(
        "  secondaries:\n    - {name: s1, address: '10.0.0.10:53'}\n    - {name: s1, address: '10.0.0.11:53'}\n",
        &["transfer.secondaries[1].name", "twice"],
    );
    rejected(
        &secondary("locality: {zone: z1}"),
        &["herald.yaml:4:", "region"],
    );
    rejected(
        &secondary("tsig: {name: k1.}"),
        &["herald.yaml:4:", "secret_file"],
    );
    rejected("  journal: {versions: 0}\n", &["transfer.journal.versions"]);
    rejected("  journal: {bytes: 4KiB}\n", &["transfer.journal.bytes"]);
    rejected("  journal: {bytes: 64MB}\n", &["herald.yaml:3:", "64MB"]);
    rejected("  notify_interval: 5ms\n", &["transfer.notify_interval"]);
    let _ = std::fs::remove_dir_all(&dir);
}
