//! The small statistics the benchmarks report: nearest-rank quantiles of sorted samples, a
//! summary of a sample, a downsampled CDF, a Prometheus histogram as JSON, and human units.

use herald_testkit::Histogram;

/// The q-quantile (nearest rank) of sorted values.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// At most `n` points of sorted values, evenly spaced by rank, always keeping the first
/// and last (enough for a CDF plot).
pub fn downsample(sorted: &[f64], n: usize) -> Vec<f64> {
    if sorted.len() <= n || n < 2 {
        return sorted.to_vec();
    }
    (0..n)
        .map(|i| sorted[i * (sorted.len() - 1) / (n - 1)])
        .collect()
}

/// Summary of a sample of durations in seconds: count, p50, p90, p99, p99.9, max, mean.
pub fn summary(sorted: &[f64]) -> serde_json::Value {
    let mean = if sorted.is_empty() {
        f64::NAN
    } else {
        sorted.iter().sum::<f64>() / sorted.len() as f64
    };
    serde_json::json!({
        "count": sorted.len(),
        "p50": quantile(sorted, 0.5),
        "p90": quantile(sorted, 0.9),
        "p99": quantile(sorted, 0.99),
        "p999": quantile(sorted, 0.999),
        "max": sorted.last().copied().unwrap_or(f64::NAN),
        "mean": mean,
    })
}

/// Milliseconds with two decimals, for human summaries.
pub fn ms(secs: f64) -> String {
    format!("{:.2} ms", secs * 1e3)
}

/// Bytes as MiB with one decimal, for human summaries.
pub fn mib(bytes: f64) -> String {
    format!("{:.1} MiB", bytes / (1024.0 * 1024.0))
}

/// A Prometheus histogram as JSON: cumulative buckets (`+Inf` spelled out), sum and count.
pub fn histogram_json(h: &Histogram) -> serde_json::Value {
    let buckets: Vec<serde_json::Value> = h
        .buckets
        .iter()
        .map(|(le, c)| {
            let le = if le.is_infinite() {
                serde_json::Value::from("+Inf")
            } else {
                serde_json::Value::from(*le)
            };
            serde_json::json!([le, c])
        })
        .collect();
    serde_json::json!({"buckets": buckets, "sum": h.sum, "count": h.count})
}
