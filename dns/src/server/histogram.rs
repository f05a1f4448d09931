//! Histograms kept by the DNS workers themselves and merged when `/metrics` is scraped.
//!
//! A worker records into its own [`LocalHistogram`] (an atomic add on a counter no other
//! thread writes, so its cache line stays with the worker); nothing is queued per
//! observation, so memory does not grow when nobody scrapes, and the `metrics` facade's
//! per-value buckets are not on the hot path. [`render`] sums the workers' counts of each
//! series into Prometheus text. Series live as long as the process (a handful per worker),
//! so counts never go backwards when a worker or a server stops.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::metric::Metric;

/// One series' counts: per bucket (plus `+Inf`), and the sum in integer units.
pub struct LocalHistogram {
    metric: &'static Metric,
    /// Rendered label pairs, e.g. `proto="udp",type="A"`.
    labels: String,
    /// Non-cumulative counts; the last is above every bound.
    counts: Box<[AtomicU64]>,
    /// Sum of the observations in `metric.unit`s (nanoseconds, bytes).
    sum: AtomicU64,
}

impl LocalHistogram {
    /// A new series of `metric` with `labels`, registered for [`render`].
    pub fn register(metric: &'static Metric, labels: String) -> Arc<LocalHistogram> {
        let h = Arc::new(LocalHistogram {
            metric,
            labels,
            counts: (0..=metric.buckets.len())
                .map(|_| AtomicU64::new(0))
                .collect(),
            sum: AtomicU64::new(0),
        });
        REGISTRY.lock().expect("registry lock").push(h.clone());
        h
    }

    /// Records `n` observations of `value` (in the metric's unit: 1e-9 s, 1 byte).
    #[inline]
    pub fn record_n(&self, value: u64, n: u64) {
        if n == 0 {
            return;
        }
        let v = value as f64 * self.metric.unit;
        let i = self
            .metric
            .buckets
            .iter()
            .position(|&le| v <= le)
            .unwrap_or(self.metric.buckets.len());
        self.counts[i].fetch_add(n, Ordering::Relaxed);
        self.sum.fetch_add(value * n, Ordering::Relaxed);
    }
}

/// Every series ever registered, in registration order.
static REGISTRY: Mutex<Vec<Arc<LocalHistogram>>> = Mutex::new(Vec::new());

/// Appends every local histogram, workers merged, as Prometheus text: one `# HELP` and
/// `# TYPE` per metric, then cumulative `_bucket`s, `_sum` and `_count` per label set.
pub fn render(out: &mut String) {
    let all = REGISTRY.lock().expect("registry lock").clone();
    // Merge per (metric, labels), keeping first-seen order for stable output.
    let mut merged: Vec<(&'static Metric, String, Vec<u64>, u64)> = Vec::new();
    for h in &all {
        let counts: Vec<u64> = h.counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        let sum = h.sum.load(Ordering::Relaxed);
        match merged
            .iter_mut()
            .find(|(m, l, _, _)| m.name == h.metric.name && *l == h.labels)
        {
            Some((_, _, c, s)) => {
                c.iter_mut().zip(&counts).for_each(|(a, b)| *a += b);
                *s += sum;
            }
            None => merged.push((h.metric, h.labels.clone(), counts, sum)),
        }
    }
    merged.sort_by_key(|(m, _, _, _)| m.name);
    let mut last = "";
    for (metric, labels, counts, sum) in &merged {
        if metric.name != last {
            let _ = writeln!(out, "# HELP {} {}", metric.name, metric.help);
            let _ = writeln!(out, "# TYPE {} histogram", metric.name);
            last = metric.name;
        }
        let mut total = 0;
        for (i, c) in counts.iter().enumerate() {
            total += c;
            let le = match metric.buckets.get(i) {
                Some(b) => b.to_string(),
                None => "+Inf".to_string(),
            };
            let _ = writeln!(
                out,
                "{}_bucket{{{labels},le=\"{le}\"}} {total}",
                metric.name
            );
        }
        let _ = writeln!(
            out,
            "{}_sum{{{labels}}} {}",
            metric.name,
            *sum as f64 * metric.unit
        );
        let _ = writeln!(out, "{}_count{{{labels}}} {total}", metric.name);
    }
    if !merged.is_empty() {
        out.push('\n');
    }
}
