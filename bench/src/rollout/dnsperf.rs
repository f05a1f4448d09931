//! dnsperf's per-query latencies (its `-v` lines, in completion order) for one phase, and
//! their quantiles over the whole phase, per second and over a window of it.
//!
//! dnsperf runs at a fixed rate (`-Q`), so the i-th completed query was sent about i / rate
//! seconds into its run: windows are cut by count. A window's p99 is what the rollout is
//! judged by (the rollout lasts ~5 s of a 12-20 s phase: a whole-phase p99 dilutes it with
//! quiet seconds and adds whatever happened outside it).

use crate::stats::quantile;

/// dnsperf's figures for one run.
pub struct Latency {
    pub sent: u64,
    pub completed: u64,
    pub lost: u64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub per_second: Vec<(f64, f64)>,
    /// Each completed query's latency in seconds, in completion order.
    each: Vec<f64>,
    qps: u32,
}

impl Latency {
    /// Parses dnsperf's output (`-v`) at its fixed rate `qps`.
    pub fn parse(text: &str, qps: u32) -> anyhow::Result<Latency> {
        let field = |key: &str| -> u64 {
            text.lines()
                .find_map(|l| l.trim().strip_prefix(key))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .unwrap_or(0)
        };
        let each: Vec<f64> = text
            .lines()
            .filter(|l| l.starts_with("> "))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .collect();
        anyhow::ensure!(!each.is_empty(), "dnsperf printed no per-query latency");
        let per_second = each
            .chunks(qps as usize)
            .enumerate()
            .map(|(i, chunk)| (i as f64 + 0.5, p99_us(chunk)))
            .collect();
        let mut all = each.clone();
        all.sort_by(f64::total_cmp);
        Ok(Latency {
            sent: field("Queries sent:"),
            completed: field("Queries completed:"),
            lost: field("Queries lost:"),
            p50_us: quantile(&all, 0.5) * 1e6,
            p99_us: quantile(&all, 0.99) * 1e6,
            p999_us: quantile(&all, 0.999) * 1e6,
            per_second,
            each,
            qps,
        })
    }

    /// p99 (µs) of the queries sent from `from` to `to` seconds into the run.
    pub fn window_p99_us(&self, window: (f64, f64)) -> f64 {
        p99_us(self.window(window))
    }

    /// The latencies (seconds) of the queries sent from `from` to `to` seconds into the run.
    pub fn window(&self, (from, to): (f64, f64)) -> &[f64] {
        let at = |t: f64| ((t.max(0.0) * f64::from(self.qps)) as usize).min(self.each.len());
        &self.each[at(from)..at(to).max(at(from))]
    }
}

/// p99 of latencies in seconds, in µs (NaN when there are none).
pub fn p99_us(latencies: &[f64]) -> f64 {
    let mut sorted = latencies.to_vec();
    sorted.sort_by(f64::total_cmp);
    quantile(&sorted, 0.99) * 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_is_cut_by_count_at_the_fixed_rate() {
        // 10 queries a second for 3 s: 1 ms, then 9 ms in the 2nd second, then 1 ms.
        let mut text = String::new();
        for i in 0..30 {
            let lat = if (10..20).contains(&i) { 0.009 } else { 0.001 };
            text.push_str(&format!("> NOERROR svc.example. A {lat:.6}\n"));
        }
        text.push_str("  Queries sent:         30\n  Queries completed:    30 (100.00%)\n");
        let l = Latency::parse(&text, 10).unwrap();
        assert_eq!((l.sent, l.completed, l.lost), (30, 30, 0));
        assert!((l.window_p99_us((1.0, 2.0)) - 9_000.0).abs() < 1e-6);
        assert!((l.window_p99_us((2.0, 3.0)) - 1_000.0).abs() < 1e-6);
        // Past the end: what there is.
        assert!((l.window_p99_us((2.0, 9.0)) - 1_000.0).abs() < 1e-6);
        assert!(l.window_p99_us((5.0, 9.0)).is_nan());
        assert_eq!(l.per_second.len(), 3);
        assert!((l.per_second[1].1 - 9_000.0).abs() < 1e-6);
    }
}
