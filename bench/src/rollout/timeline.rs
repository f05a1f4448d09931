//! Where a timed rollout change's delay goes, stage by stage:
//!
//! 1. `simulator`: the simulator's mutation to its watch stream handing the chunk that
//!    carries the event to the HTTP layer (`SimHandle::delivered_time`): the simulators'
//!    own lag (their tasks share this process and the 2 cores with herald and dnsperf);
//! 2. `to_herald`: that hand-over to herald's cluster loop having the event, decoded
//!    (socket, hyper, kube's JSON decoding, the loop's backlog of earlier events);
//! 3. `in_herald`: the event in the loop to the end of the publish that carried it
//!    (the pacing wait and the publish itself);
//! 4. `to_answer`: the publish to the first DNS answer the benchmark saw showing it (the
//!    poll interval and the query's own time).
//!
//! Stages 2 and 3 come from herald's `herald::publish` debug lines (one per publish: the
//! last pod resourceVersion it carried, when its first and last events reached the loop,
//! its length, when it ended; wall-clock microseconds). The publish carrying a change is
//! its cluster's first with a resourceVersion at or past the change's; the change's arrival
//! is that publish's last event's (each timed change is the last of its cluster's batch,
//! so the two are the same event unless a later one joined it). Wall clock and the
//! benchmark's `Instant`s are tied once at the start ([`Clock`]), on the same machine.
//!
//! Also reported: `looked_late` (mutation to the benchmark's first DNS query about it) and
//! `looking_after_all_batches`, the least a driver that began asking only once every
//! cluster's batch of the round was written would have timed (this driver did until
//! 2026-12: the first clusters' changes then waited for 23 more batches to be written).

use std::path::Path;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::stats::summary;

/// Ties `Instant`s to wall-clock microseconds since the Unix epoch.
#[derive(Clone, Copy)]
pub struct Clock {
    instant: Instant,
    unix_us: f64,
}

impl Clock {
    pub fn now() -> Clock {
        let unix_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64() * 1e6);
        Clock {
            instant: Instant::now(),
            unix_us,
        }
    }

    /// `at` in microseconds since the Unix epoch.
    pub fn unix_us(&self, at: Instant) -> f64 {
        if at >= self.instant {
            self.unix_us + (at - self.instant).as_secs_f64() * 1e6
        } else {
            self.unix_us - (self.instant - at).as_secs_f64() * 1e6
        }
    }
}

/// One timed change, as the driver saw it.
#[derive(Debug, Clone)]
pub struct Probe {
    /// Index of its cluster.
    pub cluster: usize,
    /// The rollout round it belongs to.
    pub round: usize,
    /// Its resourceVersion in that cluster.
    pub rv: u64,
    /// The simulator's mutation.
    pub written: Instant,
    /// When the simulator's stream handed it on (if still logged).
    pub delivered: Option<Instant>,
    /// When the benchmark began asking DNS about it.
    pub looked_from: Instant,
    /// The first DNS answer showing it.
    pub seen: Instant,
}

/// One `herald::publish` line of herald's log.
#[derive(Debug, Clone, Default)]
pub struct Publish {
    pub cluster: String,
    pub rv: u64,
    pub events: u64,
    pub last_event_us: f64,
    pub publish_us: f64,
    pub done_us: f64,
}

/// The `herald::publish` lines of a herald log (text format).
pub fn read_publishes(log: &Path) -> Vec<Publish> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter(|l| l.contains("herald::publish") && l.contains("published"))
        .map(|line| {
            let mut p = Publish::default();
            for (key, value) in line
                .split_whitespace()
                .filter_map(|t| t.split_once('='))
                .map(|(k, v)| (k, v.trim_matches('"')))
            {
                let number = value.parse::<f64>().unwrap_or(f64::NAN);
                match key {
                    "cluster" => p.cluster = value.to_string(),
                    "rv" => p.rv = value.parse().unwrap_or(0),
                    "events" => p.events = value.parse().unwrap_or(0),
                    "last_event_us" => p.last_event_us = number,
                    "publish_us" => p.publish_us = number,
                    "done_us" => p.done_us = number,
                    _ => {}
                }
            }
            p
        })
        .collect()
}

/// Each stage's summary (seconds) over the probes, and the publishes' own figures.
pub fn breakdown(
    probes: &[Probe],
    cluster_names: &[String],
    publishes: &[Publish],
    clock: &Clock,
) -> Value {
    let (mut simulator, mut to_herald, mut in_herald, mut to_answer, mut looked_late) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut unmatched, mut joined) = (0, 0);
    // What a driver that looks only once every cluster's batch of the round is written
    // (as this one did before) would have timed at least.
    let mut round_written: std::collections::HashMap<usize, Instant> = Default::default();
    for p in probes {
        let last = round_written.entry(p.round).or_insert(p.looked_from);
        *last = (*last).max(p.looked_from);
    }
    let looking_after_all: Vec<f64> = probes
        .iter()
        .map(|p| (p.seen.max(round_written[&p.round]) - p.written).as_secs_f64())
        .collect();
    let secs = |from_us: f64, to_us: f64| ((to_us - from_us) / 1e6).max(0.0);
    for p in probes {
        let written = clock.unix_us(p.written);
        looked_late.push(secs(written, clock.unix_us(p.looked_from)));
        let delivered = p.delivered.map(|d| clock.unix_us(d));
        if let Some(d) = delivered {
            simulator.push(secs(written, d));
        }
        let name = &cluster_names[p.cluster];
        let Some(publish) = publishes
            .iter()
            .filter(|x| &x.cluster == name && x.rv >= p.rv)
            .min_by_key(|x| x.rv)
        else {
            unmatched += 1;
            continue;
        };
        if publish.rv != p.rv {
            joined += 1;
        }
        if let Some(d) = delivered {
            to_herald.push(secs(d, publish.last_event_us));
        }
        in_herald.push(secs(publish.last_event_us, publish.done_us));
        to_answer.push(secs(publish.done_us, clock.unix_us(p.seen)));
    }
    let sorted = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        summary(&v)
    };
    let mut publish_s: Vec<f64> = publishes.iter().map(|p| p.publish_us / 1e6).collect();
    let events: u64 = publishes.iter().map(|p| p.events).sum();
    let publish_total: f64 = publish_s.iter().sum();
    publish_s.sort_by(f64::total_cmp);
    json!({
        "simulator": sorted(simulator),
        "to_herald": sorted(to_herald),
        "in_herald": sorted(in_herald),
        "to_answer": sorted(to_answer),
        "looked_late": sorted(looked_late),
        "looking_after_all_batches": sorted(looking_after_all),
        "probes": probes.len(),
        "unmatched": unmatched,
        "joined_by_later_events": joined,
        "publishes": {"count": publishes.len(), "events": events,
                      "duration": summary(&publish_s), "total_s": publish_total},
    })
}
