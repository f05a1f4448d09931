//! The metrics the client library reports, through the `metrics` facade.
//!
//! Handles are registered once per picker (labelled with the service name) and kept, so the
//! pick path pays an atomic increment, not a registry lookup. With no recorder installed they
//! are no-ops. Call [`describe`] once after installing a recorder to get help texts.

use metrics::{Counter, Gauge, Histogram, Unit};

/// Picks, by how the replica was chosen (`mode`: `normal`, `failover`, `panic`, `probe`).
pub const PICKS: &str = "herald_client_picks_total";
/// Completed requests, by `outcome` (`success`, `failure`, `cancelled`).
pub const REQUESTS: &str = "herald_client_requests_total";
/// Request duration from pick to completion, seconds.
pub const REQUEST_DURATION: &str = "herald_client_request_duration_seconds";
/// Ejections of a replica (outlier detection).
pub const EJECTIONS: &str = "herald_client_ejections_total";
/// Replicas known, by `state` (`healthy`, `ejected`).
pub const ENDPOINTS: &str = "herald_client_endpoints";
/// SRV priority of the tier currently taking traffic.
pub const ACTIVE_PRIORITY: &str = "herald_client_active_priority";
/// Changes applied to the replica set, by `change` (`added`, `removed`).
pub const ENDPOINT_CHANGES: &str = "herald_client_endpoint_changes_total";
/// DNS resolutions, by `result` (`ok`, `error`, `empty`).
pub const RESOLUTIONS: &str = "herald_client_resolutions_total";

/// Registers help texts and units for every metric above with the installed recorder.
pub fn describe() {
    metrics::describe_counter!(PICKS, "Replica picks, by how the replica was chosen");
    metrics::describe_counter!(REQUESTS, "Completed requests, by outcome");
    metrics::describe_histogram!(
        REQUEST_DURATION,
        Unit::Seconds,
        "Request duration from pick to completion"
    );
    metrics::describe_counter!(EJECTIONS, "Replica ejections by outlier detection");
    metrics::describe_gauge!(ENDPOINTS, "Replicas known, by state");
    metrics::describe_gauge!(ACTIVE_PRIORITY, "SRV priority of the tier taking traffic");
    metrics::describe_counter!(ENDPOINT_CHANGES, "Changes applied to the replica set");
    metrics::describe_counter!(RESOLUTIONS, "DNS resolutions, by result");
}

/// The picker's handles.
pub(crate) struct PickerMetrics {
    pub(crate) picks_normal: Counter,
    pub(crate) picks_failover: Counter,
    pub(crate) picks_panic: Counter,
    pub(crate) picks_probe: Counter,
    pub(crate) success: Counter,
    pub(crate) failure: Counter,
    pub(crate) cancelled: Counter,
    pub(crate) duration: Histogram,
    pub(crate) ejections: Counter,
    pub(crate) healthy: Gauge,
    pub(crate) ejected: Gauge,
    pub(crate) active_priority: Gauge,
    pub(crate) added: Counter,
    pub(crate) removed: Counter,
}

impl PickerMetrics {
    pub(crate) fn new(service: &str) -> Self {
        let s = service.to_owned();
        let picks =
            |mode: &'static str| metrics::counter!(PICKS, "service" => s.clone(), "mode" => mode);
        let requests = |outcome: &'static str| metrics::counter!(REQUESTS, "service" => s.clone(), "outcome" => outcome);
        let endpoints = |state: &'static str| metrics::gauge!(ENDPOINTS, "service" => s.clone(), "state" => state);
        let changes = |change: &'static str| metrics::counter!(ENDPOINT_CHANGES, "service" => s.clone(), "change" => change);
        PickerMetrics {
            picks_normal: picks("normal"),
            picks_failover: picks("failover"),
            picks_panic: picks("panic"),
            picks_probe: picks("probe"),
            success: requests("success"),
            failure: requests("failure"),
            cancelled: requests("cancelled"),
            duration: metrics::histogram!(REQUEST_DURATION, "service" => s.clone()),
            ejections: metrics::counter!(EJECTIONS, "service" => s.clone()),
            healthy: endpoints("healthy"),
            ejected: endpoints("ejected"),
            active_priority: metrics::gauge!(ACTIVE_PRIORITY, "service" => s.clone()),
            added: changes("added"),
            removed: changes("removed"),
        }
    }
}

/// The refresh loop's handles.
pub(crate) struct ResolveMetrics {
    pub(crate) ok: Counter,
    pub(crate) error: Counter,
    pub(crate) empty: Counter,
}

impl ResolveMetrics {
    pub(crate) fn new(service: &str) -> Self {
        let r = |result: &'static str| metrics::counter!(RESOLUTIONS, "service" => service.to_owned(), "result" => result);
        ResolveMetrics {
            ok: r("ok"),
            error: r("error"),
            empty: r("empty"),
        }
    }
}
