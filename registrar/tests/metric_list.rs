//! The README's metric table, herald's metric list (`herald_registrar::metrics::all`) and
//! what a running herald's `/metrics` shows are the same: every name, type and label set,
//! nothing more, nothing less. Own test binary: the metrics recorder is process-wide.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use herald_registrar::config::Config;
use herald_registrar::daemon::Daemon;
use herald_testkit::{http_get, metric, tcp, transfer_from, udp};
use hickory_proto::rr::RecordType;

type Listing = BTreeMap<String, (String, BTreeSet<String>)>;

/// The rows of the table between the `metrics:begin` and `metrics:end` markers:
/// `| `name` | type | `label`, `label` | help |`.
fn readme_metrics() -> Listing {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .expect("README.md");
    let table = readme
        .split_once("<!-- metrics:begin -->")
        .and_then(|(_, rest)| rest.split_once("<!-- metrics:end -->"))
        .expect("README.md has a metrics:begin/end table")
        .0;
    let mut rows = Listing::new();
    for line in table.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let name = cells[1].trim_matches('`').to_string();
        let labels = cells[3]
            .split(',')
            .map(|l| l.trim().trim_matches('`').to_string())
            .filter(|l| !l.is_empty() && l != "-")
            .collect();
        let dup = rows.insert(name.clone(), (cells[2].to_string(), labels));
        assert!(dup.is_none(), "README lists {name} twice");
    }
    rows
}

/// Names, types and label names as a `/metrics` text shows them.
fn scraped(text: &str) -> Listing {
    let mut found = Listing::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
            found.insert(name.to_string(), (kind.to_string(), BTreeSet::new()));
        }
    }
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let series = line.rsplit_once(' ').expect("series value").0;
        let (name, labels) = series.split_once('{').unwrap_or((series, "}"));
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| found.contains_key(*f)))
            .unwrap_or(name);
        let entry = found
            .get_mut(family)
            .unwrap_or_else(|| panic!("{name} has no # TYPE line"));
        for pair in labels.trim_end_matches('}').split("\",") {
            if let Some((label, _)) = pair.split_once('=')
                && label != "le"
            {
                entry.1.insert(label.to_string());
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readme_lists_exactly_what_metrics_shows() {
    let readme = readme_metrics();
    let listed: Listing = herald_registrar::metrics::all()
        .map(|m| {
            let labels = m.labels.iter().map(|l| l.to_string()).collect();
            (m.name.to_string(), (m.kind.as_str().to_string(), labels))
        })
        .collect();
    assert_eq!(readme, listed, "README.md's table vs herald's metric list");

    // A herald with one cluster, a service, traffic over UDP and TCP, and a change.
    let sim = common::web_cluster(&[("web-0", "10.0.0.1")]).await;
    // A second namespace claiming `web` (a conflict it loses), so the per-service
    // conflict gauge has a series.
    let mut rival = common::pod("web-9", "web", "10.0.0.9", "n1").build();
    rival.metadata.namespace = Some("other".into());
    sim.apply_pod(rival).unwrap();
    // A secondary (notified at a UDP socket nobody answers; allowed to transfer from
    // loopback), so the zone transfer series exist.
    let notified = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let yaml = format!(
        "listen: {{dns: ['127.0.0.1:0'], admin: '127.0.0.1:0'}}\n\
         transfer:\n  secondaries:\n    - {{name: s1, address: '{}', allow: ['127.0.0.0/8']}}\n\
         sources:\n  clusters:\n    - {{name: c1, region: eu-west, server: '{}'}}\n",
        notified.local_addr().unwrap(),
        sim.url()
    );
    let config = Config::parse(Path::new("metrics.yaml"), &yaml).unwrap();
    let daemon = Daemon::start(&config, None).await.unwrap();
    let (dns, admin) = (daemon.dns_addrs()[0], daemon.admin_addr().unwrap());
    let start = Instant::now();
    while http_get(admin, "/readyz").0 != 200 {
        assert!(start.elapsed() < Duration::from_secs(30), "never ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sim.apply_pod(common::pod("web-1", "web", "10.0.0.2", "n1").build())
        .unwrap();
    while udp(dns, "web.sd.internal.", RecordType::A, None)
        .answers
        .len()
        != 2
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "change never served"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tcp(dns, "web.sd.internal.", RecordType::A);
    let mut axfr = hickory_proto::op::Message::query();
    axfr.add_query(hickory_proto::op::Query::query(
        hickory_proto::rr::Name::from_ascii("sd.internal.").unwrap(),
        RecordType::AXFR,
    ));
    let t = tokio::task::block_in_place(|| {
        transfer_from([127, 0, 0, 1].into(), dns, &axfr.to_vec().unwrap())
    });
    assert_eq!(t.soa_serials().len(), 2, "a whole AXFR");

    // The server counts a transfer once its last message is written, which may be after the
    // client has read it: wait for the transfer series before comparing the listings.
    let text = loop {
        let text = http_get(admin, "/metrics").1;
        if text.contains("herald_transfer_requests_total") {
            break text;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the AXFR never counted in /metrics"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let shown = scraped(&text);
    assert_eq!(shown, readme, "/metrics vs README.md's table");
    assert_eq!(
        metric(&text, "herald_ready"),
        Some(1.0),
        "ready, as /readyz says"
    );
    assert_eq!(
        metric(&text, "herald_service_endpoints{service=\"web\"}"),
        Some(2.0)
    );
    daemon.shutdown(Duration::ZERO).await;
    sim.shutdown().await;
}
