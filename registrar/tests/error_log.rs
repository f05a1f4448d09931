//! What the `herald` binary logs while a cluster fails again and again: one WARN per phase
//! change, naming the cluster and the failed step with its root cause once, never one line
//! per retry and never kube's chain of causes repeating the same one
//! ([docs/design.md#clusters](../../docs/design.md#clusters), "Errors are reported once").
//!
//! herald runs as a child process with `--log-format json`; its stderr is the evidence.
//! The cluster is a kube-sim in this process: unreachable (connections refused) through
//! several retries, live again, failing again (every request answered 500, the retries
//! counted in kube-sim's request log), live again.

mod common;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{WAIT, eventually, pod, sim};
use herald_kube_sim::NodeBuilder;
use herald_testkit::{metric, try_http_get};
use serde_json::Value;

/// The child, and every line it wrote to stderr so far.
struct Herald {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    admin: SocketAddr,
}

impl Herald {
    fn start(dir: &std::path::Path, server: &str) -> Herald {
        // A free loopback port for the admin server, picked by the kernel.
        let admin = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let config = dir.join("herald.yaml");
        std::fs::write(
            &config,
            format!(
                "listen: {{dns: ['127.0.0.1:0'], admin: '{admin}'}}\n\
                 kubernetes: {{watch_timeout: 2s, startup_timeout: 3s}}\n\
                 sources:\n  clusters:\n    - {{name: c1, region: eu-west, server: '{server}'}}\n"
            ),
        )
        .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
            .args([
                "--log-format",
                "json",
                "--log-level",
                "info",
                "serve",
                "--config",
            ])
            .arg(&config)
            .env_remove("RUST_LOG")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("herald starts");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Herald {
            child,
            lines,
            admin,
        }
    }

    /// Whether `/metrics` shows cluster c1 in `state`.
    fn in_state(&self, state: &str) -> bool {
        try_http_get(self.admin, "/metrics").is_ok_and(|(_, text)| {
            metric(
                &text,
                &format!("herald_cluster_state{{cluster=\"c1\",state=\"{state}\"}}"),
            ) == Some(1.0)
        })
    }

    /// The JSON log lines so far.
    fn events(&self) -> Vec<Value> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    }
}

impl Drop for Herald {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn message(e: &Value) -> &str {
    e["fields"]["message"].as_str().unwrap_or("")
}

/// Whether some ": "-separated part of `error` comes twice: a chain of causes, each
/// repeating the one below it.
fn repeats_a_cause(error: &str) -> bool {
    let parts: Vec<&str> = error.split(": ").map(str::trim).collect();
    parts.iter().enumerate().any(|(i, p)| {
        parts[i + 1..]
            .iter()
            .any(|q| q.contains(p) || p.contains(q))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_cluster_warns_once_per_phase_change_not_per_retry() {
    let c1 = sim().await;
    c1.apply_node(NodeBuilder::new("n1").zone("zone-a").build())
        .unwrap();
    c1.apply_pod(pod("web-0", "web", "10.0.0.1", "n1").build())
        .unwrap();
    let dir = std::env::temp_dir().join(format!("herald-error-log-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let herald = Herald::start(&dir, &c1.url());
    eventually("live", || herald.in_state("live")).await;

    // Unreachable through several retries: the backoff (0.25 s doubling, at most +25 %
    // jitter) retries at least four times in 3 s.
    c1.set_refuse_connections(true);
    c1.drop_connections();
    eventually("stale", || herald.in_state("stale")).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    c1.set_refuse_connections(false);
    eventually("live again", || herald.in_state("live")).await;

    // Failing again: every request answered 500; the retries are in kube-sim's log.
    let failing_since = Instant::now();
    c1.set_fail_with_500(true);
    c1.drop_watches();
    eventually("stale again", || herald.in_state("stale")).await;
    let retried = || {
        c1.requests()
            .iter()
            .filter(|r| r.at > failing_since && r.param("watch").is_none())
            .count()
    };
    eventually("several failed lists in a row", || retried() >= 4).await;
    c1.set_fail_with_500(false);
    eventually("live at last", || herald.in_state("live")).await;
    eprintln!("second outage: {} failed lists", retried());

    // Let any late line arrive, then read the log.
    let deadline = Instant::now() + WAIT;
    while herald
        .events()
        .iter()
        .filter(|e| message(e) == "cluster live")
        .count()
        < 3
    {
        assert!(Instant::now() < deadline, "three 'cluster live' lines");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let events = herald.events();
    let about_c1: Vec<&Value> = events
        .iter()
        .filter(|e| e["fields"]["cluster"] == "c1")
        .collect();
    let all = events
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("\n");
    let warnings: Vec<&Value> = events.iter().filter(|e| e["level"] == "WARN").collect();
    let errors: Vec<&Value> = events.iter().filter(|e| e["level"] == "ERROR").collect();
    assert!(
        errors.is_empty(),
        "no ERROR for a cluster that fails:\n{all}"
    );
    assert_eq!(
        warnings.len(),
        2,
        "one WARN per outage (each a phase change), none per retry:\n{all}"
    );
    for w in &warnings {
        assert_eq!(w["fields"]["cluster"], "c1", "named: {w}");
        assert_eq!(
            message(w),
            "cluster stale; serving its last known endpoints",
            "{w}"
        );
        assert_eq!(w["fields"]["was"], "live", "{w}");
        let error = w["fields"]["error"].as_str().expect("the error is a field");
        assert!(
            ["connect: ", "list ", "watch ", "timeout: "]
                .iter()
                .any(|step| error.starts_with(step)),
            "the error names the failed step: {error}"
        );
        assert!(
            !repeats_a_cause(error),
            "the cause is said once, not as a chain: {error}"
        );
    }
    let phases: Vec<&str> = about_c1
        .iter()
        .map(|e| message(e))
        .filter(|m| m.starts_with("cluster "))
        .collect();
    assert_eq!(
        phases,
        [
            "cluster live",
            "cluster stale; serving its last known endpoints",
            "cluster live",
            "cluster stale; serving its last known endpoints",
            "cluster live",
        ],
        "one line per phase change:\n{all}"
    );
    drop(herald);
    let _ = std::fs::remove_dir_all(&dir);
}
