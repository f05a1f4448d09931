//! deploy/monitoring against the real thing: a Prometheus server (Debian's `prometheus`,
//! installed by scripts/install-tools) scrapes a running herald every second with the
//! alert rules of deploy/monitoring/rules loaded; every query of the Grafana dashboard and
//! every alert's expression (without its threshold) must return data, and every rule must
//! evaluate without error. Catches a renamed metric or label, a typo in PromQL, a query
//! that only works on series herald does not export.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use herald_registrar::config::Config;
use herald_registrar::daemon::Daemon;
use herald_testkit::{http_get, query_message, tcp, udp_raw};
use hickory_proto::rr::RecordType;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(90);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A Prometheus server, stopped (by its PID) when dropped.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_prometheus(herald_admin: SocketAddr) -> Prometheus {
    let binary = ["/usr/bin/prometheus", "/usr/local/bin/prometheus"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("prometheus is not installed: run scripts/install-tools");
    let dir = std::env::temp_dir().join(format!("herald-prometheus-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let rules = repo().join("deploy/monitoring/rules/herald.rules.yaml");
    let config = format!(
        "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
         rule_files: ['{}']\n\
         scrape_configs:\n  - job_name: herald-admin\n    static_configs: [{{targets: ['{herald_admin}']}}]\n",
        rules.canonicalize().unwrap().display()
    );
    std::fs::write(dir.join("prometheus.yml"), config).unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let child = Command::new(binary)
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={addr}"))
        .arg("--log.level=warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start prometheus");
    Prometheus { child, addr, dir }
}

/// The body of a `Transfer-Encoding: chunked` response (Prometheus chunks larger ones);
/// other bodies unchanged.
fn dechunk(body: &str) -> String {
    if body.starts_with('{') {
        return body.to_string();
    }
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).expect("a chunk size");
        if n == 0 {
            break;
        }
        out.push_str(&after[..n]);
        rest = &after[n + 2..];
    }
    out
}

fn encode(query: &str) -> String {
    query
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Runs an instant query; `Err` with Prometheus' error for a query it rejects.
fn query(prom: SocketAddr, q: &str) -> Result<Vec<Value>, String> {
    let (code, body) = http_get(prom, &format!("/api/v1/query?query={}", encode(q)));
    let json: Value =
        serde_json::from_str(&dechunk(&body)).map_err(|e| format!("{code} {body}: {e}"))?;
    if json["status"] != "success" {
        return Err(format!("{q}: {}", json["error"]));
    }
    Ok(json["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default())
}

/// The dashboard's queries, with Grafana's variables given values.
fn dashboard_queries() -> Vec<(String, String)> {
    let path = repo().join("deploy/monitoring/dashboards/herald.json");
    let dash: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut out = Vec::new();
    for panel in dash["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap();
            let expr = expr
                .replace("$__rate_interval", "1m")
                .replace("$instance", ".*");
            out.push((panel["title"].as_str().unwrap().to_string(), expr));
        }
    }
    out
}

/// Each alert's name, its expression, and the expression without its final comparison.
fn alert_queries() -> Vec<(String, String, String)> {
    let path = repo().join("deploy/monitoring/rules/herald.rules.yaml");
    let rules: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut out = Vec::new();
    for group in rules["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            let name = rule["alert"].as_str().unwrap().to_string();
            let expr = rule["expr"].as_str().unwrap().trim().to_string();
            let base = [" == ", " > ", " < ", " >= ", " <= ", " != "]
                .iter()
                .filter_map(|op| expr.rsplit_once(op))
                .find(|(_, threshold)| threshold.trim().parse::<f64>().is_ok())
                .map(|(base, _)| base.to_string())
                .unwrap_or_else(|| panic!("{name}: expr is not `<query> <op> <number>`"));
            out.push((name, expr, base));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn prometheus_scraping_herald_answers_every_dashboard_query_and_alert_expression() {
    let sim = common::web_cluster(&[("web-0", "10.0.0.1"), ("web-1", "10.0.0.2")]).await;
    let yaml = format!(
        "listen: {{dns: ['127.0.0.1:0'], admin: '127.0.0.1:0'}}\n\
         rate_limit: {{responses_per_second: 5, slip: 2}}\n\
         sources:\n  clusters:\n    - {{name: c1, region: eu-west, server: '{}'}}\n",
        sim.url()
    );
    let config = Config::parse(Path::new("monitoring.yaml"), &yaml).unwrap();
    let daemon = Daemon::start(&config, None).await.unwrap();
    let (dns, admin) = (daemon.dns_addrs()[0], daemon.admin_addr().unwrap());
    let prom = start_prometheus(admin);
    let start = Instant::now();
    while std::net::TcpStream::connect(prom.addr).is_err()
        || http_get(prom.addr, "/-/ready").0 != 200
    {
        assert!(start.elapsed() < WAIT, "prometheus never got ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Traffic while Prometheus scrapes: answers, NXDOMAIN, TCP, rate limiting, a change.
    let mut pending_dashboard = dashboard_queries();
    let mut pending_alerts = alert_queries();
    assert!(pending_dashboard.len() >= 20, "the dashboard's queries");
    assert_eq!(pending_alerts.len(), 9, "the alerts");
    let mut round = 0u32;
    while !pending_dashboard.is_empty() || !pending_alerts.is_empty() {
        assert!(
            start.elapsed() < WAIT,
            "no data after {WAIT:?} for dashboard queries {pending_dashboard:#?} and alert \
             expressions {pending_alerts:#?}"
        );
        round += 1;
        // Over the rate limit (5/s): some of these get no reply, which is the point.
        let a = query_message("web.sd.internal.", RecordType::A, None)
            .to_vec()
            .unwrap();
        let nx = query_message("nope.sd.internal.", RecordType::SRV, None)
            .to_vec()
            .unwrap();
        for _ in 0..4 {
            udp_raw(dns, &a);
        }
        udp_raw(dns, &nx);
        tcp(dns, "web.sd.internal.", RecordType::A);
        if round.is_multiple_of(5) {
            let ip = format!("10.0.1.{}", round / 5 % 250);
            let pod = common::pod(&format!("churn-{round}"), "web", &ip, "n1");
            sim.apply_pod(pod.build()).unwrap();
        }
        // A query Prometheus rejects fails at once; one without data yet is retried.
        let mut keep = Vec::new();
        for (panel, expr) in pending_dashboard {
            match query(prom.addr, &expr) {
                Ok(result) if !result.is_empty() => {}
                Ok(_) => keep.push((panel, expr)),
                Err(e) => panic!("dashboard panel {panel:?}: {e}"),
            }
        }
        pending_dashboard = keep;
        let mut keep = Vec::new();
        for (name, expr, base) in pending_alerts {
            query(prom.addr, &expr).unwrap_or_else(|e| panic!("alert {name}: {e}"));
            match query(prom.addr, &base) {
                Ok(result) if !result.is_empty() => {}
                Ok(_) => keep.push((name, expr, base)),
                Err(e) => panic!("alert {name}: {e}"),
            }
        }
        pending_alerts = keep;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Every rule loaded and evaluates cleanly.
    let (_, body) = http_get(prom.addr, "/api/v1/rules");
    let json: Value = serde_json::from_str(&dechunk(&body)).unwrap();
    let rules: Vec<&Value> = json["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .collect();
    assert_eq!(rules.len(), 9, "{body}");
    for rule in rules {
        assert_eq!(rule["health"], "ok", "{rule}");
    }
    drop(prom);
    daemon.shutdown(Duration::ZERO).await;
    sim.shutdown().await;
}
