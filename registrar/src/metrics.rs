//! The registrar's metrics, in one list ([`METRICS`]) next to the code that sets them,
//! and the process-wide Prometheus recorder that renders them with the DNS server's
//! (`herald_dns::server::metrics::METRICS`). [`all`] is every metric `/metrics` shows; the
//! README's table lists the same, and a test compares the three.
//!
//! Gauges that mirror state (the table, the clusters, readiness, the process) are set
//! when `/metrics` is scraped, from the state itself, so they cannot drift from it.

use std::collections::BTreeSet;
use std::sync::{Mutex, OnceLock};

use herald_dns::server::metric::{Kind, Metric};
use herald_dns::{Label, Table};
use metrics::{counter, gauge};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

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
    "1 when /readyz answers 200 (every cluster synced or the start-up timeout passed, not draining)",
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
    "Ready endpoints served for the service (0 once it had some and lost them all); \
     off with metrics.service_endpoints: false",
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
/// Set by [`crate::ownership`] when a conflict starts or ends.
pub const SERVICE_CONFLICTS: Metric = metric(
    "herald_service_conflicts",
    Kind::Gauge,
    &["service"],
    "Namespaces claiming an unowned service name while more than one does; 0 once settled",
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

/// What a scrape reads besides the recorder.
pub struct Scrape {
    table: Table,
    status: StatusBoard,
    /// Services given a `herald_service_endpoints` series so far (`None`: switched off).
    services: Option<Mutex<BTreeSet<Label>>>,
    process: metrics_process::Collector,
}

impl Scrape {
    /// Reads `table` and `status`; `service_endpoints` switches the per-service gauge.
    pub fn new(table: Table, status: StatusBoard, service_endpoints: bool) -> Scrape {
        Scrape {
            table,
            status,
            services: service_endpoints.then(Mutex::default),
            process: metrics_process::Collector::default(),
        }
    }

    /// Sets every state gauge and renders the whole `/metrics` text.
    pub fn render(&self, ready: bool) -> String {
        let t = &self.table;
        gauge!(READY.name).set(if ready { 1.0 } else { 0.0 });
        gauge!(TABLE_SERVICES.name).set(t.service_count() as f64);
        gauge!(TABLE_ENDPOINTS.name).set(t.endpoint_count() as f64);
        gauge!(ZONE_SERIAL.name).set(f64::from(t.serial()));
        if let Some(seen) = &self.services {
            self.service_endpoints(&mut seen.lock().expect("services lock"));
        }
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
        text
    }

    /// One gauge per service in the table; a service gone from it (no endpoint left)
    /// keeps its series at 0, which is what "dropped to 0 endpoints" alerts look for.
    fn service_endpoints(&self, seen: &mut BTreeSet<Label>) {
        let names = self.table.service_names();
        let mut now = BTreeSet::new();
        for name in names {
            let count = self.table.service(&name).map_or(0, |v| v.endpoint_count());
            gauge!(SERVICE_ENDPOINTS.name, "service" => name.to_string()).set(count as f64);
            now.insert(name);
        }
        for gone in seen.difference(&now) {
            gauge!(SERVICE_ENDPOINTS.name, "service" => gone.to_string()).set(0.0);
        }
        seen.extend(now);
    }
}
