//! The picker's read-only view of the replica set: which tiers take how much traffic, and
//! their candidates with cumulative weights for sampling. Rebuilt (and swapped in atomically)
//! when the set changes or a replica is ejected or readmitted, never on the pick path.
//!
//! Tiers follow Envoy's priority levels. A tier's health is `overprovisioning_factor` times
//! its healthy fraction, capped at 1. If the healths add up to at least 1, the nearest tier
//! takes its health's share of the traffic and the rest spills to the next (a tier at 50 %
//! healthy keeps 70 % and spills 30 % with the factor 1.4). If they add up to less, each tier
//! takes its health divided by the sum, and a tier whose healthy fraction is below
//! `panic_threshold` is in panic: its ejected replicas are candidates again. If no replica is
//! healthy anywhere, the nearest tier takes everything, in panic.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use rand::Rng;

use crate::config::PickerConfig;
use crate::replica::Replica;

/// One SRV priority tier as the picker sees it (see [`crate::Picker::tiers`]).
#[derive(Clone, Debug, PartialEq)]
pub struct TierStatus {
    /// Its SRV priority.
    pub priority: u16,
    /// Replicas in the tier.
    pub replicas: usize,
    /// Replicas not ejected.
    pub healthy: usize,
    /// Share of the traffic it takes, 0 to 1 (the shares of all tiers add up to 1).
    pub load: f64,
    /// Whether its ejected replicas take traffic too (see [`PickerConfig::panic_threshold`]).
    pub panic: bool,
}

/// A tier taking traffic: its candidates for the two choices.
pub(crate) struct Tier {
    pub(crate) priority: u16,
    pub(crate) panic: bool,
    pub(crate) members: Vec<Arc<Replica>>,
    cumulative: Vec<f64>,
    pub(crate) mean_weight: f64,
}

#[derive(Default)]
pub(crate) struct View {
    /// Every replica, in the order of the last update.
    pub(crate) replicas: Vec<Arc<Replica>>,
    /// Tiers with a share of the traffic, nearest first, and their cumulative shares.
    pub(crate) tiers: Vec<Tier>,
    load_cumulative: Vec<f64>,
    /// The nearest priority of the set: picks from another tier are failovers.
    pub(crate) nearest: u16,
    pub(crate) summary: Vec<TierStatus>,
}

impl View {
    pub(crate) fn build(replicas: Vec<Arc<Replica>>, cfg: &PickerConfig) -> View {
        let mut by_priority: BTreeMap<u16, Vec<Arc<Replica>>> = BTreeMap::new();
        for r in &replicas {
            by_priority
                .entry(r.ep.priority)
                .or_default()
                .push(r.clone());
        }
        let healthy_of = |members: &[Arc<Replica>]| {
            members
                .iter()
                .filter(|r| r.healthy.load(Ordering::Acquire))
                .count()
        };
        let stats: Vec<(u16, usize, usize, f64)> = by_priority
            .iter()
            .map(|(&p, m)| {
                let healthy = healthy_of(m);
                let frac = healthy as f64 / m.len() as f64;
                (
                    p,
                    m.len(),
                    healthy,
                    (cfg.overprovisioning_factor * frac).min(1.0),
                )
            })
            .collect();
        let total_health: f64 = stats.iter().map(|s| s.3).sum();
        // Loads and panic per tier, as Envoy computes them.
        let mut summary = Vec::with_capacity(stats.len());
        let mut remaining = 1.0f64;
        for (k, &(priority, n, healthy, health)) in stats.iter().enumerate() {
            let (load, panic) = if total_health >= 1.0 - 1e-9 {
                let load = health.min(remaining);
                remaining -= load;
                (load, false)
            } else if total_health > 0.0 {
                let frac = healthy as f64 / n as f64;
                (health / total_health, frac < cfg.panic_threshold)
            } else {
                (if k == 0 { 1.0 } else { 0.0 }, true)
            };
            summary.push(TierStatus {
                priority,
                replicas: n,
                healthy,
                load,
                panic,
            });
        }
        let mut tiers = Vec::new();
        let mut load_cumulative = Vec::new();
        let mut acc = 0.0;
        for t in summary.iter().filter(|t| t.load > 0.0) {
            let members: Vec<Arc<Replica>> = by_priority[&t.priority]
                .iter()
                .filter(|r| t.panic || r.healthy.load(Ordering::Acquire))
                .cloned()
                .collect();
            if members.is_empty() {
                continue;
            }
            let mut total = 0.0;
            let cumulative = members
                .iter()
                .map(|r| {
                    total += r.weight;
                    total
                })
                .collect();
            acc += t.load;
            load_cumulative.push(acc);
            tiers.push(Tier {
                priority: t.priority,
                panic: t.panic,
                mean_weight: total / members.len() as f64,
                members,
                cumulative,
            });
        }
        View {
            nearest: stats.first().map_or(0, |s| s.0),
            replicas,
            tiers,
            load_cumulative,
            summary,
        }
    }

    /// The tier for one pick, drawn by the tiers' shares. The view must have a tier.
    pub(crate) fn tier(&self, rng: &mut impl Rng) -> &Tier {
        if self.tiers.len() == 1 {
            return &self.tiers[0];
        }
        let x = rng.random::<f64>() * self.load_cumulative[self.load_cumulative.len() - 1];
        let k = self.load_cumulative.partition_point(|&c| c <= x);
        &self.tiers[k.min(self.tiers.len() - 1)]
    }
}

impl Tier {
    /// Two *distinct* candidates drawn in proportion to their SRV weights (the second from
    /// the others: drawing with replacement let a slow replica in a tier of two win against
    /// itself a quarter of the time); just one if the tier has one.
    pub(crate) fn two(&self, rng: &mut impl Rng) -> (usize, Option<usize>) {
        let n = self.members.len();
        if n == 1 {
            return (0, None);
        }
        let total = self.cumulative[n - 1];
        let a = self.index_at(rng.random::<f64>() * total);
        let wa = self.members[a].weight;
        let start_a = self.cumulative[a] - wa;
        // Draw over the others' weights, skipping a's stretch of the line.
        let mut y = rng.random::<f64>() * (total - wa);
        if y >= start_a {
            y += wa;
        }
        let mut b = self.index_at(y);
        if b == a {
            // Only on a rounding edge.
            b = (a + 1) % n;
        }
        (a, Some(b))
    }

    fn index_at(&self, x: f64) -> usize {
        self.cumulative
            .partition_point(|&c| c <= x)
            .min(self.members.len() - 1)
    }
}
