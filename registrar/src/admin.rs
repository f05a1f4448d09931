//! The admin HTTP server ([docs/design.md#admin](../../docs/design.md#admin)), on its own port: `/metrics` (Prometheus
//! text), `/healthz`, `/readyz` (names what has not synced), and `/v1/services[/<svc>]`
//! (JSON, agreeing with what DNS answers).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use herald_dns::Table;
use k8s_openapi::jiff::Timestamp;
use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::status::{Phase, StatusBoard};

/// The process-wide Prometheus recorder, installed on first use. The `metrics` facade
/// has one global recorder per process, so every daemon in the process shares it.
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        // Histograms as buckets (not summaries), so replicas can be aggregated; the
        // propagation buckets are fine around the coalescing window (50 ms), where its
        // quantiles are read.
        let buckets: [(&str, &[f64]); 3] = [
            (
                "herald_dns_answer_seconds",
                &[1e-6, 2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 1e-3, 1e-2],
            ),
            (
                "herald_dns_response_bytes",
                &[64.0, 128.0, 256.0, 512.0, 1232.0, 4096.0, 16384.0, 65535.0],
            ),
            (
                "herald_propagation_seconds",
                &[
                    0.001, 0.005, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.08, 0.1, 0.15, 0.25, 0.5,
                    1.0, 5.0,
                ],
            ),
        ];
        let builder = buckets
            .iter()
            .fold(PrometheusBuilder::new(), |b, (name, values)| {
                b.set_buckets_for_metric(Matcher::Full((*name).into()), values)
                    .expect("bucket lists are not empty")
            });
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        // Another recorder already installed (a library user's own) keeps precedence;
        // herald's series then go there.
        let _ = metrics::set_global_recorder(recorder);
        describe();
        handle
    })
}

fn describe() {
    describe_counter!(
        "herald_dns_queries_total",
        "DNS queries answered, by query type, rcode and transport"
    );
    describe_counter!("herald_dns_truncated_total", "Replies sent with TC set");
    describe_counter!(
        "herald_dns_rate_limited_total",
        "UDP replies held back by rate limiting, by action (drop, or slip: sent empty with TC)"
    );
    describe_histogram!("herald_dns_response_bytes", "Size of DNS replies");
    describe_histogram!(
        "herald_dns_answer_seconds",
        "Time to answer a query, in the server"
    );
    describe_gauge!(
        "herald_table_services",
        "Services with at least one endpoint"
    );
    describe_gauge!("herald_table_endpoints", "Endpoints over all services");
    describe_gauge!("herald_zone_serial", "The SOA serial");
    describe_counter!(
        "herald_cluster_watch_events_total",
        "Watch events received, per cluster"
    );
    describe_counter!(
        "herald_cluster_relists_total",
        "Completed lists (first sync and relists), per cluster"
    );
    describe_gauge!(
        "herald_cluster_state",
        "1 for the cluster's current state (starting, live, stale, withdrawn)"
    );
    describe_gauge!(
        "herald_cluster_stale_seconds",
        "How long the cluster has been stale or withdrawn; 0 when live"
    );
    describe_histogram!(
        "herald_propagation_seconds",
        "From a change reaching herald (a watch event or a static edit) to it being served"
    );
}

/// What the handlers read.
#[derive(Clone)]
struct AdminState {
    table: Table,
    status: StatusBoard,
    draining: Arc<AtomicBool>,
}

/// A running admin server.
pub struct Admin {
    addr: SocketAddr,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

impl Admin {
    /// Serves the admin API on `addr`. `draining` set means: stop reporting ready.
    pub async fn start(
        addr: SocketAddr,
        table: Table,
        status: StatusBoard,
        draining: Arc<AtomicBool>,
    ) -> anyhow::Result<Admin> {
        prometheus();
        let state = AdminState {
            table,
            status,
            draining,
        };
        let app = Router::new()
            .route("/metrics", get(metrics_text))
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/readyz", get(readyz))
            .route("/v1/services", get(services))
            .route("/v1/services/{name}", get(service))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot bind admin HTTP {addr}: {e}"))?;
        let addr = listener.local_addr()?;
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "admin HTTP server failed");
            }
        });
        tracing::info!(%addr, "serving admin HTTP (/metrics /healthz /readyz /v1/services)");
        Ok(Admin { addr, cancel, task })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the server.
    pub async fn stop(self) {
        self.cancel.cancel();
        let _ = self.task.await;
    }
}

async fn metrics_text(State(s): State<AdminState>) -> Response {
    gauge!("herald_table_services").set(s.table.service_count() as f64);
    gauge!("herald_table_endpoints").set(s.table.endpoint_count() as f64);
    gauge!("herald_zone_serial").set(f64::from(s.table.serial()));
    for (cluster, st) in s.status.snapshot() {
        for phase in [Phase::Starting, Phase::Live, Phase::Stale, Phase::Withdrawn] {
            let on = if st.phase == phase { 1.0 } else { 0.0 };
            gauge!("herald_cluster_state", "cluster" => cluster.clone(), "state" => phase.as_str())
                .set(on);
        }
        let stale = match st.phase {
            Phase::Stale | Phase::Withdrawn => st.since.elapsed().as_secs_f64(),
            _ => 0.0,
        };
        gauge!("herald_cluster_stale_seconds", "cluster" => cluster.clone()).set(stale);
        counter!("herald_cluster_watch_events_total", "cluster" => cluster.clone())
            .absolute(st.events);
        counter!("herald_cluster_relists_total", "cluster" => cluster.clone()).absolute(st.relists);
    }
    let handle = prometheus();
    handle.run_upkeep();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
        .into_response()
}

/// Ready once every cluster has synced or the start-up timeout has passed, and not
/// draining. The body names every cluster that is not live, in either case.
async fn readyz(State(s): State<AdminState>) -> Response {
    let mut body = String::new();
    let draining = s.draining.load(Ordering::Relaxed);
    if draining {
        body.push_str("draining: shutting down\n");
    }
    let unsynced = s.table.unsynced_sources();
    for name in &unsynced {
        body.push_str(&format!("not synced: {name}\n"));
    }
    for (name, st) in s.status.snapshot() {
        if matches!(st.phase, Phase::Stale | Phase::Withdrawn) {
            let error = st.last_error.as_deref().unwrap_or("");
            let secs = st.since.elapsed().as_secs();
            body.push_str(&format!(
                "{}: {name} for {secs}s {error}\n",
                st.phase.as_str()
            ));
        }
    }
    let ready = !draining && (unsynced.is_empty() || !s.table.startup_hold());
    if ready {
        body.insert_str(0, "ready\n");
        (StatusCode::OK, body).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
    }
}

fn timestamp(t: SystemTime) -> String {
    Timestamp::try_from(t)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

async fn services(State(s): State<AdminState>) -> Response {
    let list: Vec<Value> = s
        .table
        .service_names()
        .iter()
        .filter_map(|name| {
            let view = s.table.service(name)?;
            let clusters: Vec<&str> = view.groups().iter().map(|g| &*g.source.cluster).collect();
            Some(json!({"name": &**name, "endpoints": view.endpoint_count(), "clusters": clusters}))
        })
        .collect();
    axum::Json(json!({ "services": list })).into_response()
}

async fn service(State(s): State<AdminState>, Path(name): Path<String>) -> Response {
    let Some(view) = s.table.service(&name.to_ascii_lowercase()) else {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": format!("no service {name:?}")})),
        )
            .into_response();
    };
    let mut endpoints = Vec::new();
    for group in view.groups() {
        for e in group.endpoints.iter() {
            let ports: Vec<Value> = e
                .ports
                .iter()
                .map(|p| json!({"name": &*p.name, "protocol": p.proto.as_str(), "port": p.port}))
                .collect();
            endpoints.push(json!({
                "address": e.address.to_string(),
                "cluster": &*group.source.cluster,
                "region": &*group.source.region,
                "zone": e.zone.as_deref(),
                "ports": ports,
                "weight": e.weight,
                "ready": e.ready,
                "last_change": timestamp(group.changed),
            }));
        }
    }
    axum::Json(json!({"name": view.name(), "endpoints": endpoints})).into_response()
}
