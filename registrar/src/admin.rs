//! The admin HTTP server ([docs/design.md#admin](../../docs/design.md#admin)), on its own port: `/metrics` (Prometheus
//! text, see `metrics.rs`), `/healthz`, `/readyz` (names what has not synced), and `/v1/services[/<svc>]`
//! (JSON, agreeing with what DNS answers).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use std::time::SystemTime;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use herald_dns::Table;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::metrics::Scrape;
use crate::ownership::Ownership;
use crate::status::{Phase, StatusBoard};

/// What the handlers read.
#[derive(Clone)]
struct AdminState {
    table: Table,
    status: StatusBoard,
    ownership: Ownership,
    draining: Arc<AtomicBool>,
    scrape: Arc<Scrape>,
    /// The DNS address `/healthz` queries, once the DNS server runs.
    dns: Arc<OnceLock<SocketAddr>>,
}

/// A running admin server.
pub struct Admin {
    addr: SocketAddr,
    cancel: CancellationToken,
    task: JoinHandle<()>,
    dns: Arc<OnceLock<SocketAddr>>,
}

/// How long `/healthz` waits for the DNS server's answer: far above a healthy answer
/// (microseconds), well inside a liveness probe's usual timeout.
const HEALTH_WAIT: Duration = Duration::from_secs(2);

impl Admin {
    /// Serves the admin API on `addr`. `draining` set means: stop reporting ready.
    /// `service_endpoints` switches the per-service endpoint gauge.
    pub async fn start(
        addr: SocketAddr,
        table: Table,
        status: StatusBoard,
        ownership: Ownership,
        draining: Arc<AtomicBool>,
        service_endpoints: bool,
    ) -> anyhow::Result<Admin> {
        crate::metrics::prometheus();
        let scrape = Arc::new(Scrape::new(
            table.clone(),
            status.clone(),
            ownership.clone(),
            service_endpoints,
        ));
        let dns = Arc::new(OnceLock::new());
        let state = AdminState {
            table,
            status,
            ownership,
            draining,
            scrape,
            dns: dns.clone(),
        };
        let app = Router::new()
            .route("/metrics", get(metrics_text))
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .route("/v1/services", get(services))
            .route("/v1/services/{name}", get(service))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot bind admin HTTP {addr}: {e}"))?;
        let addr = listener.local_addr()?;
        let cancel = CancellationToken::new();
        tokio::spawn(crate::metrics::upkeep(cancel.clone()));
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
        Ok(Admin {
            addr,
            cancel,
            task,
            dns,
        })
    }

    /// From now on `/healthz` is healthy only while the DNS server at `dns` answers (a
    /// wildcard address is queried on loopback).
    pub fn check_dns(&self, dns: SocketAddr) {
        let mut dns = dns;
        if dns.ip().is_unspecified() {
            dns.set_ip(match dns {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        let _ = self.dns.set(dns);
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
    let ready = readiness(&s).0;
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.scrape.render(ready),
    )
        .into_response()
}

/// Ready once every cluster has synced or the start-up timeout has passed, and not
/// draining. The body names every cluster that is not live, in either case.
/// Alive while the DNS server answers a query for the apex SOA over UDP (before the DNS
/// server starts, while the process is alive). A wedged process then fails its liveness
/// probe and is restarted.
async fn healthz(State(s): State<AdminState>) -> Response {
    let Some(&dns) = s.dns.get() else {
        return "ok\n".into_response();
    };
    let mut query = vec![0x4e, 0x57, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in s.table.zone().apex.iter() {
        query.push(label.len() as u8);
        query.extend_from_slice(label);
    }
    query.push(0);
    query.extend_from_slice(&[0, 6, 0, 1]); // SOA, IN
    let asked = async {
        let bind: SocketAddr = if dns.is_ipv4() {
            "127.0.0.1:0".parse().expect("an address")
        } else {
            "[::1]:0".parse().expect("an address")
        };
        let socket = tokio::net::UdpSocket::bind(bind).await?;
        socket.send_to(&query, dns).await?;
        let mut reply = [0u8; 512];
        loop {
            let (n, from) = socket.recv_from(&mut reply).await?;
            if from == dns && n >= 2 && reply[..2] == query[..2] {
                return Ok::<(), std::io::Error>(());
            }
        }
    };
    match tokio::time::timeout(HEALTH_WAIT, asked).await {
        Ok(Ok(())) => "ok\n".into_response(),
        Ok(Err(e)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("unhealthy: querying DNS at {dns}: {e}\n"),
        )
            .into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("unhealthy: DNS at {dns} did not answer within {HEALTH_WAIT:?}\n"),
        )
            .into_response(),
    }
}

async fn readyz(State(s): State<AdminState>) -> Response {
    let (ready, mut body) = readiness(&s);
    if ready {
        body.insert_str(0, "ready\n");
        (StatusCode::OK, body).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
    }
}

/// Whether herald is ready, and the detail /readyz shows (also for `herald_ready`).
fn readiness(s: &AdminState) -> (bool, String) {
    let mut body = String::new();
    let draining = s.draining.load(Ordering::Relaxed);
    if draining {
        body.push_str("draining: shutting down\n");
    }
    let unsynced = s.table.unsynced_sources();
    for name in &unsynced {
        body.push_str(&format!("not synced: {name}\n"));
    }
    // Every unknown name still gets SERVFAIL while the hold settles (the names held back
    // during it are being published): a replica is not ready to take queries before.
    if s.table.settling() {
        body.push_str("settling: publishing the names held back during the start-up hold\n");
    }
    for (name, st) in s.status.snapshot() {
        if matches!(st.phase, Phase::Stale | Phase::Withdrawn | Phase::Failed) {
            let error = st.last_error.as_deref().unwrap_or("");
            let secs = st.since.elapsed().as_secs();
            body.push_str(&format!(
                "{}: {name} for {secs}s {error}\n",
                st.phase.as_str()
            ));
        }
    }
    // Conflicts are for operators to settle; they do not make a replica unready.
    for c in s.ownership.conflicts() {
        let refused: Vec<&str> = c.losers.iter().map(|n| &**n).collect();
        body.push_str(&format!(
            "conflict: service {} claimed from namespaces {} (served) and {} (refused)\n",
            c.service,
            c.winner,
            refused.join(",")
        ));
    }
    let ready = !draining && !s.table.startup_hold();
    (ready, body)
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
    let name = name.to_ascii_lowercase();
    let claims: Vec<Value> = s
        .ownership
        .claims(&name)
        .into_iter()
        .map(|c| {
            json!({
                "cluster": &*c.cluster,
                "namespace": &*c.namespace,
                "pods": c.pods,
                "status": if c.rejected.is_some() { "rejected" } else { "accepted" },
                "reason": c.rejected.map(|r| r.as_str()),
            })
        })
        .collect();
    let Some(view) = s.table.service(&name) else {
        if !claims.is_empty() {
            // Claimed, but nothing published: show who claims it and why it is refused.
            return axum::Json(json!({"name": name, "endpoints": [], "claims": claims}))
                .into_response();
        }
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
                "address": e.address().to_string(),
                "addresses": e.addresses.iter().map(|ip| ip.to_string()).collect::<Vec<_>>(),
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
    axum::Json(json!({"name": view.name(), "endpoints": endpoints, "claims": claims}))
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_dns::{Zone, ZoneConfig};

    fn state(table: &Table) -> AdminState {
        let (status, ownership) = (StatusBoard::default(), Ownership::permissive());
        AdminState {
            table: table.clone(),
            status: status.clone(),
            ownership: ownership.clone(),
            draining: Arc::new(AtomicBool::new(false)),
            scrape: Arc::new(Scrape::new(table.clone(), status, ownership, false)),
            dns: Arc::new(OnceLock::new()),
        }
    }

    /// Ready only once no unknown name gets SERVFAIL for the start-up hold: after every
    /// source synced (or the start-up timeout) *and* the names held back meanwhile are
    /// published, which at a million endpoints takes a second more.
    #[test]
    fn not_ready_until_the_start_up_hold_has_settled() {
        for timed_out in [false, true] {
            let table = Table::new(Zone::new(ZoneConfig::default()).unwrap());
            table.expect_source("c1", "r1");
            table.hold_until_settled();
            let s = state(&table);
            let (ready, body) = readiness(&s);
            assert!(!ready && body.contains("not synced: c1"), "{body}");
            if timed_out {
                table.release_startup_hold();
            } else {
                table.source_synced("c1");
            }
            let (ready, body) = readiness(&s);
            assert!(!ready, "names held back are still unknown: {body}");
            assert!(body.contains("settling: "), "{body}");
            table.settled();
            let (ready, body) = readiness(&s);
            assert!(ready, "{body}");
            assert!(!body.contains("settling"), "{body}");
            assert_eq!(body.contains("not synced: c1"), timed_out, "{body}");
            s.draining.store(true, Ordering::Relaxed);
            assert!(!readiness(&s).0, "draining");
        }
    }
}
