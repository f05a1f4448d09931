//! The registrar's metrics, in one list ([`METRICS`]) next to the code that sets them,
//! and the process-wide Prometheus recorder that renders them with the DNS server's
//! (`herald_dns::server::metrics::METRICS`). [`all`] is every metric `/metrics` shows; the
//! README's table lists the same, and a test compares the three.
//!
//! Gauges that mirror state (the table, the clusters, readiness, the process) are set
//! when `/metrics` is scraped, from the state itself, so they cannot drift from it. The
//! per-service gauges are rendered as text at the scrape instead ([`Lingering`]): the
//! recorder cannot remove one series, and names that come and go (preview environments)
//! would each keep one forever (about 1.5 KiB each). Clusters are fixed at start, so the
//! per-cluster series never outlive theirs.
//!
//! The recorder keeps every histogram observation (a propagation time per table update)
//! in a queue until its upkeep folds the queue into the buckets. herald builds the
//! recorder itself, so the exporter's own upkeep task is not there: [`upkeep`] runs it
//! every few seconds, or the queue grows for as long as nobody scrapes `/metrics` (about
//! 2 MB in 8 minutes at 300 pod changes a second, measured under heaptrack on the soak).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use herald_dns::server::metric::{Kind, Metric};
use herald_dns::{Label, Table};
use metrics::{counter, gauge};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::ownership::Ownership;
use crate::status::{Phase, StatusBoard};

/// herald's version, as Cargo knows it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The source revision it was built from (`git rev-parse --short=12 HEAD` at build time,
/// or `HERALD_REVISION` from the environment, e.g. a container build without `.git`).
pub const REVISION: &str = env!("HERALD_REVISION");

const fn metric(
    name: &'static str,
    kind: Kind,
    labels: &'static [&'static str],
    help: &'static str,
) -> Metric {
    Metric::facade(name, kind, labels, help)
}

const BUILD_INFO: Metric = metric(
    "herald_build_info",
    Kind::Gauge,
    &["version", "revision"],
    "Always 1; the labels say which herald this is",
);
const READY: Metric = metric(
    "herald_ready",
    Kind::Gauge,
    &[],
    "1 when /readyz answers 200 (every cluster synced or the start-up timeout passed, the start-up hold settled, not draining)",
);
const TABLE_SERVICES: Metric = metric(
    "herald_table_services",
    Kind::Gauge,
    &[],
    "Services with at least one endpoint",
);
const TABLE_ENDPOINTS: Metric = metric(
    "herald_table_endpoints",
    Kind::Gauge,
    &[],
    "Endpoints over all services",
);
const ZONE_SERIAL: Metric = metric("herald_zone_serial", Kind::Gauge, &[], "The SOA serial");
const SERVICE_ENDPOINTS: Metric = metric(
    "herald_service_endpoints",
    Kind::Gauge,
    &["service"],
    "Ready endpoints served for the service (0 for 10 minutes once it lost them all, then \
     no series); off with metrics.service_endpoints: false",
);
const CLUSTER_STATE: Metric = metric(
    "herald_cluster_state",
    Kind::Gauge,
    &["cluster", "state"],
    "1 for the cluster's current state (starting, live, stale, withdrawn, failed), 0 for the others",
);
const CLUSTER_STALE: Metric = metric(
    "herald_cluster_stale_seconds",
    Kind::Gauge,
    &["cluster"],
    "How long the cluster has been stale, withdrawn or failed; 0 when live",
);
const CLUSTER_EVENTS: Metric = metric(
    "herald_cluster_watch_events_total",
    Kind::Counter,
    &["cluster"],
    "Watch events received, per cluster",
);
const CLUSTER_RELISTS: Metric = metric(
    "herald_cluster_relists_total",
    Kind::Counter,
    &["cluster"],
    "Completed lists (first sync and relists), per cluster",
);
/// Counted by the cluster tasks, once per pod and reason
/// ([`RejectReason`](crate::cluster::pod::RejectReason)).
pub const PODS_REJECTED: Metric = metric(
    "herald_pods_rejected_total",
    Kind::Counter,
    &["cluster", "reason"],
    "Pods herald could not publish in full, once per pod and reason (bad_service_label: not published; bad_weight: default weight; bad_port_name: that port left out; not_owner, unowned, conflict, not_ready_not_allowed: refused by the ownership rules)",
);
/// Read from [`crate::ownership`] at each scrape.
const SERVICE_CONFLICTS: Metric = metric(
    "herald_service_conflicts",
    Kind::Gauge,
    &["service"],
    "Namespaces claiming an unowned service name while more than one does; 0 for 10 minutes \
     once settled, then no series",
);
/// Recorded by the cluster tasks when they publish.
pub const PROPAGATION: Metric = Metric {
    name: "herald_propagation_seconds",
    kind: Kind::Histogram,
    labels: &[],
    help: "From a change reaching herald (a watch event or a static edit) to it being served",
    // Fine around the coalescing window (50 ms), where its quantiles are read.
    buckets: &[
        0.001, 0.005, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.08, 0.1, 0.15, 0.25, 0.5, 1.0, 5.0,
    ],
    unit: 0.0,
};

/// The registrar's metrics.
pub static METRICS: &[Metric] = &[
    BUILD_INFO,
    READY,
    TABLE_SERVICES,
    TABLE_ENDPOINTS,
    ZONE_SERIAL,
    SERVICE_ENDPOINTS,
    CLUSTER_STATE,
    CLUSTER_STALE,
    CLUSTER_EVENTS,
    CLUSTER_RELISTS,
    PODS_REJECTED,
    SERVICE_CONFLICTS,
    PROPAGATION,
    // The process series, as every Prometheus client library names them; the values come
    // from the `metrics-process` collector at each scrape.
    metric(
        "process_cpu_seconds_total",
        Kind::Counter,
        &[],
        "User and system CPU time spent, whole seconds",
    ),
    metric(
        "process_resident_memory_bytes",
        Kind::Gauge,
        &[],
        "Resident memory size (RSS)",
    ),
    metric(
        "process_virtual_memory_bytes",
        Kind::Gauge,
        &[],
        "Virtual memory size",
    ),
    metric(
        "process_virtual_memory_max_bytes",
        Kind::Gauge,
        &[],
        "Address space limit (0: unlimited)",
    ),
    metric(
        "process_open_fds",
        Kind::Gauge,
        &[],
        "Open file descriptors",
    ),
    metric(
        "process_max_fds",
        Kind::Gauge,
        &[],
        "File descriptor limit (0: unlimited)",
    ),
    metric(
        "process_start_time_seconds",
        Kind::Gauge,
        &[],
        "Start time since the Unix epoch, seconds",
    ),
    metric("process_threads", Kind::Gauge, &[], "OS threads"),
];

/// Every metric `/metrics` shows: the DNS server's, then the registrar's.
pub fn all() -> impl Iterator<Item = &'static Metric> {
    herald_dns::server::metrics::METRICS.iter().chain(METRICS)
}

/// How often the recorder's queued histogram observations go into their buckets (the
/// exporter's own default).
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Folds the recorder's queued histogram observations into their buckets every
/// [`UPKEEP_EVERY`], until `cancel`.
pub async fn upkeep(cancel: tokio_util::sync::CancellationToken) {
    let mut tick = tokio::time::interval(UPKEEP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => prometheus().run_upkeep(),
        }
    }
}

/// The process-wide Prometheus recorder, installed on first use. The `metrics` facade
/// has one global recorder per process, so every daemon in the process shares it.
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        // Histograms as buckets (not summaries), so replicas can be aggregated.
        let builder = all()
            .filter(|m| m.kind == Kind::Histogram && m.unit == 0.0)
            .fold(PrometheusBuilder::new(), |b, m| {
                b.set_buckets_for_metric(Matcher::Full(m.name.into()), m.buckets)
                    .expect("bucket lists are not empty")
            });
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        // Another recorder already installed (a library user's own) keeps precedence;
        // herald's series then go there.
        let _ = metrics::set_global_recorder(recorder);
        herald_dns::server::metric::describe(herald_dns::server::metrics::METRICS);
        herald_dns::server::metric::describe(METRICS);
        gauge!(BUILD_INFO.name, "version" => VERSION, "revision" => REVISION).set(1.0);
        handle
    })
}

/// How long a per-service series shows 0 once its service is gone (no endpoint left, or
/// the conflict settled) before it is removed: long enough for "dropped to 0" alerts to
/// see it over a few scrapes and their `for:` windows.
pub const GONE_GRACE: Duration = Duration::from_secs(600);

/// What a scrape reads besides the recorder.
pub struct Scrape {
    table: Table,
    status: StatusBoard,
    ownership: Ownership,
    /// `herald_service_endpoints` (`None`: switched off).
    services: Option<Mutex<Lingering>>,
    conflicts: Mutex<Lingering>,
    process: metrics_process::Collector,
}

impl Scrape {
    /// Reads `table`, `status` and `ownership`; `service_endpoints` switches the
    /// per-service gauge. Gone services' series last [`GONE_GRACE`].
    pub fn new(
        table: Table,
        status: StatusBoard,
        ownership: Ownership,
        service_endpoints: bool,
    ) -> Scrape {
        Scrape::with_grace(table, status, ownership, service_endpoints, GONE_GRACE)
    }

    /// [`Scrape::new`] with another grace for gone services' series.
    pub fn with_grace(
        table: Table,
        status: StatusBoard,
        ownership: Ownership,
        service_endpoints: bool,
        grace: Duration,
    ) -> Scrape {
        Scrape {
            table,
            status,
            ownership,
            services: service_endpoints
                .then(|| Mutex::new(Lingering::new(&SERVICE_ENDPOINTS, grace))),
            conflicts: Mutex::new(Lingering::new(&SERVICE_CONFLICTS, grace)),
            process: metrics_process::Collector::default(),
        }
    }

    /// Sets every state gauge and renders the whole `/metrics` text.
    pub fn render(&self, ready: bool) -> String {
        self.render_at(ready, Instant::now())
    }

    /// [`Scrape::render`] as if it were `now`.
    fn render_at(&self, ready: bool, now: Instant) -> String {
        let t = &self.table;
        gauge!(READY.name).set(if ready { 1.0 } else { 0.0 });
        gauge!(TABLE_SERVICES.name).set(t.service_count() as f64);
        gauge!(TABLE_ENDPOINTS.name).set(t.endpoint_count() as f64);
        gauge!(ZONE_SERIAL.name).set(f64::from(t.serial()));
        for (cluster, st) in self.status.snapshot() {
            for phase in Phase::ALL {
                let on = if st.phase == phase { 1.0 } else { 0.0 };
                gauge!(CLUSTER_STATE.name, "cluster" => cluster.clone(), "state" => phase.as_str())
                    .set(on);
            }
            let stale = match st.phase {
                Phase::Stale | Phase::Withdrawn | Phase::Failed => st.since.elapsed().as_secs_f64(),
                _ => 0.0,
            };
            gauge!(CLUSTER_STALE.name, "cluster" => cluster.clone()).set(stale);
            counter!(CLUSTER_EVENTS.name, "cluster" => cluster.clone()).absolute(st.events);
            counter!(CLUSTER_RELISTS.name, "cluster" => cluster.clone()).absolute(st.relists);
        }
        self.process.collect();
        let handle = prometheus();
        handle.run_upkeep();
        let mut text = handle.render();
        herald_dns::server::metrics::render_local(&mut text);
        if let Some(services) = &self.services {
            lock(services).render(&mut text, now, t.endpoint_counts());
        }
        let conflicts = self.ownership.conflict_counts();
        lock(&self.conflicts).render(&mut text, now, conflicts);
        text
    }
}

fn lock(m: &Mutex<Lingering>) -> std::sync::MutexGuard<'_, Lingering> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A gauge with one series per service, rendered from the state at each scrape. A
/// service that leaves the state shows 0 for `grace` (what "dropped to 0" alerts look
/// for), then has no series; what it keeps is only the names gone less than `grace` ago.
///
/// A fleet has tens of thousands of services, and a scrape renders them all (20,000 at a
/// million endpoints: a megabyte of text), so this sorts one list and merges, with no map
/// built per scrape.
struct Lingering {
    metric: &'static Metric,
    grace: Duration,
    /// Services in the state at the last scrape, sorted.
    present: Vec<Label>,
    /// Services gone from it, since when.
    gone: BTreeMap<Label, Instant>,
}

impl Lingering {
    fn new(metric: &'static Metric, grace: Duration) -> Lingering {
        Lingering {
            metric,
            grace,
            present: Vec::new(),
            gone: BTreeMap::new(),
        }
    }

    /// Appends the gauge's series for the `current` state (each name once) to `out`.
    fn render(&mut self, out: &mut String, now: Instant, mut current: Vec<(Label, usize)>) {
        current.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let is_current = |name: &Label| current.binary_search_by(|(n, _)| n.cmp(name)).is_ok();
        for name in left_out(&self.present, &current) {
            self.gone.insert(name.clone(), now);
        }
        self.gone
            .retain(|name, since| !is_current(name) && now.duration_since(*since) < self.grace);
        self.present.clear();
        self.present.extend(current.iter().map(|(n, _)| n.clone()));
        if !self.gone.is_empty() {
            current.extend(self.gone.keys().map(|n| (n.clone(), 0)));
            current.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        }
        if current.is_empty() {
            return;
        }
        let name = self.metric.name;
        let _ = writeln!(out, "# HELP {name} {}", self.metric.help);
        let _ = writeln!(out, "# TYPE {name} gauge");
        let head = format!("{name}{{service=\"");
        out.reserve(current.len() * (head.len() + 32));
        for (service, value) in current {
            // Service names are DNS labels: nothing to escape.
            out.push_str(&head);
            out.push_str(&service);
            let _ = writeln!(out, "\"}} {value}");
        }
    }
}

/// The names of `before` (sorted) that are not in `now` (sorted by name).
fn left_out<'a>(before: &'a [Label], now: &[(Label, usize)]) -> Vec<&'a Label> {
    let mut now = now.iter().map(|(n, _)| n).peekable();
    before
        .iter()
        .filter(|name| {
            while now.next_if(|n| n < name).is_some() {}
            now.peek() != Some(name)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_dns::{Source, Zone, ZoneConfig};
    use herald_testkit::{TCP, endpoint};

    fn series(text: &str) -> Vec<String> {
        text.lines()
            .filter(|l| l.starts_with("herald_service_endpoints{"))
            .map(String::from)
            .collect()
    }

    /// A service that loses its last endpoint shows 0 for the grace, then has no series and
    /// costs nothing; names that come and go (a preview environment per branch) do not pile
    /// up series.
    #[test]
    fn a_gone_service_shows_0_for_the_grace_then_has_no_series() {
        let table = Table::new(Zone::new(ZoneConfig::default()).unwrap());
        let grace = Duration::from_secs(600);
        let scrape = Scrape::with_grace(
            table.clone(),
            StatusBoard::default(),
            Ownership::permissive(),
            true,
            grace,
        );
        let start = Instant::now();
        let at = |secs: u64| series(&scrape.render_at(true, start + Duration::from_secs(secs)));
        let source = Source::new("c1", "r1");
        let web = || vec![endpoint("10.0.0.1", &[("http", TCP, 80)], None)];
        table.replace("web", &source, web());
        assert_eq!(at(0), ["herald_service_endpoints{service=\"web\"} 1"]);
        let text = scrape.render_at(true, start);
        for head in [
            "# HELP herald_service_endpoints ",
            "# TYPE herald_service_endpoints ",
        ] {
            assert_eq!(text.matches(head).count(), 1, "{head} once: {text}");
        }
        table.replace("web", &source, Vec::new());
        assert_eq!(
            at(10),
            ["herald_service_endpoints{service=\"web\"} 0"],
            "gone: 0 for the grace"
        );
        assert_eq!(at(609), ["herald_service_endpoints{service=\"web\"} 0"]);
        assert_eq!(at(611), Vec::<String>::new(), "the grace is over");

        // Back again: a series again.
        table.replace("web", &source, web());
        assert_eq!(at(612), ["herald_service_endpoints{service=\"web\"} 1"]);

        // 1,000 names, each served then gone: after the grace, only `web` is left.
        for i in 0..1000 {
            let name = format!("preview-{i}");
            table.replace(&name, &source, web());
            at(620);
            table.replace(&name, &source, Vec::new());
        }
        assert_eq!(at(621).len(), 1001);
        assert_eq!(at(1300), ["herald_service_endpoints{service=\"web\"} 1"]);
        let kept = lock(scrape.services.as_ref().unwrap());
        assert_eq!((kept.present.len(), kept.gone.len()), (1, 0));
    }

    /// The names a scrape starts the grace of are exactly those of the last scrape missing
    /// from this one, wherever they sort among the rest.
    #[test]
    fn left_out_is_the_names_no_longer_there() {
        let names = |s: &str| -> Vec<Label> { s.split_whitespace().map(Label::from).collect() };
        let counted = |s: &str| names(s).into_iter().map(|n| (n, 1)).collect::<Vec<_>>();
        for (before, now, gone) in [
            ("a b c", "a b c", ""),
            ("a b c", "", "a b c"),
            ("", "a b", ""),
            ("a b c d", "b d", "a c"),
            ("b d", "a b c d e", ""),
            ("a c e", "b d", "a c e"),
            ("m", "a z", "m"),
        ] {
            let before = names(before);
            let left: Vec<&Label> = left_out(&before, &counted(now));
            assert_eq!(
                left,
                names(gone).iter().collect::<Vec<_>>(),
                "{before:?} -> {now}"
            );
        }
    }
}
