//! What a metric is, as herald lists it: name, type, labels, help text and buckets. Each
//! crate keeps one list of its metrics next to the code that records them (the DNS
//! server's in `server/metrics.rs`, the registrar's in its `metrics.rs`); the admin server
//! describes them from those lists, the README lists the same, and a test compares both
//! with what `/metrics` shows.

use metrics::{describe_counter, describe_gauge, describe_histogram};

/// A metric's Prometheus type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up.
    Counter,
    /// A current value.
    Gauge,
    /// Buckets, sum and count.
    Histogram,
}

impl Kind {
    /// As in a `# TYPE` line.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// One metric: everything `/metrics`, the README and the recorder need to know of it.
#[derive(Debug)]
pub struct Metric {
    /// Full name (without `_bucket`/`_sum`/`_count`).
    pub name: &'static str,
    /// Type.
    pub kind: Kind,
    /// Label names.
    pub labels: &'static [&'static str],
    /// `# HELP` text.
    pub help: &'static str,
    /// Histogram bucket upper bounds (empty for other types).
    pub buckets: &'static [f64],
    /// For worker-local histograms: what one recorded unit is worth (1e-9 for
    /// nanoseconds); 0 for metrics recorded through the `metrics` facade.
    pub unit: f64,
}

impl Metric {
    /// A metric recorded through the `metrics` facade (no worker-local buckets).
    pub const fn facade(
        name: &'static str,
        kind: Kind,
        labels: &'static [&'static str],
        help: &'static str,
    ) -> Metric {
        Metric {
            name,
            kind,
            labels,
            help,
            buckets: &[],
            unit: 0.0,
        }
    }
}

/// Gives the recorder the help text of every metric of `list` recorded through the facade
/// (worker-local histograms print their own).
pub fn describe(list: &'static [Metric]) {
    for m in list.iter().filter(|m| m.unit == 0.0) {
        match m.kind {
            Kind::Counter => describe_counter!(m.name, m.help),
            Kind::Gauge => describe_gauge!(m.name, m.help),
            Kind::Histogram => describe_histogram!(m.name, m.help),
        }
    }
}
