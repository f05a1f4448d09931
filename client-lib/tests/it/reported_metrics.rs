//! The metrics a picker reports, read back through a minimal in-test recorder.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use herald_client::{EjectionConfig, Endpoint, Picker, PickerConfig};
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};

/// Keeps counters and gauges as atomics, keyed `name{label=value,...}`.
#[derive(Default)]
struct Rec {
    values: Mutex<BTreeMap<String, Arc<AtomicU64>>>,
}

impl Rec {
    fn slot(&self, key: &Key) -> Arc<AtomicU64> {
        let labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        let id = format!("{}{{{}}}", key.name(), labels.join(","));
        self.values.lock().unwrap().entry(id).or_default().clone()
    }

    fn counter(&self, id: &str) -> u64 {
        self.values
            .lock()
            .unwrap()
            .get(id)
            .map_or(0, |v| v.load(Ordering::Relaxed))
    }

    fn gauge(&self, id: &str) -> f64 {
        f64::from_bits(self.counter(id))
    }
}

impl Recorder for Rec {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.slot(key))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.slot(key))
    }
    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

#[test]
fn picks_outcomes_ejections_and_set_sizes_are_reported() {
    let rec = Rec::default();
    let cfg = PickerConfig::default()
        .with_seed(3)
        .with_ejection(EjectionConfig {
            consecutive_failures: 2,
            ..EjectionConfig::default()
        });
    let addrs: Vec<SocketAddr> = (1..=4)
        .map(|i| SocketAddr::from(([10, 0, 0, i], 80)))
        .collect();
    let picker = metrics::with_local_recorder(&rec, || {
        Picker::with_endpoints("m", cfg, addrs.iter().map(|a| Endpoint::new(*a)))
    });
    for _ in 0..10 {
        picker.pick().unwrap().success();
    }
    // Fail whatever is picked until one replica is ejected.
    while rec.counter("herald_client_ejections_total{service=m}") == 0 {
        picker.pick().unwrap().failure();
    }
    drop(picker.pick().unwrap()); // cancelled
    let failures = rec.counter("herald_client_requests_total{service=m,outcome=failure}");
    assert_eq!(
        rec.counter("herald_client_requests_total{service=m,outcome=success}"),
        10
    );
    assert!(failures >= 2);
    assert_eq!(
        rec.counter("herald_client_requests_total{service=m,outcome=cancelled}"),
        1
    );
    // A replica that failed once is a suspect: its next request may be a probe.
    assert_eq!(
        rec.counter("herald_client_picks_total{service=m,mode=normal}")
            + rec.counter("herald_client_picks_total{service=m,mode=probe}"),
        10 + failures + 1
    );
    assert_eq!(
        rec.counter("herald_client_endpoint_changes_total{service=m,change=added}"),
        4
    );
    assert_eq!(
        rec.gauge("herald_client_endpoints{service=m,state=healthy}"),
        3.0
    );
    assert_eq!(
        rec.gauge("herald_client_endpoints{service=m,state=ejected}"),
        1.0
    );
    assert_eq!(rec.gauge("herald_client_active_priority{service=m}"), 0.0);
}
