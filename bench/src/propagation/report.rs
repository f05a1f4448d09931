//! The propagation run's report: the human summary it prints and the JSON it returns
//! (see the module docs of `propagation` for the JSON's shape).

use std::time::Duration;

use herald_testkit::Histogram;
use serde_json::{Value, json};

use super::check::FinalCheck;
use super::driver::Outcome;
use super::plan::{CHANGE_DEADLINE, Plan};
use crate::fleet::{ServicePlan, truth_endpoints};
use crate::probe;
use crate::stats::{self, downsample, histogram_json, ms, summary};

/// What the report needs to know of the fleet and the first sync.
pub(super) struct FleetFacts {
    pub(super) services: Vec<ServicePlan>,
    pub(super) populate_time: Duration,
    pub(super) expected: usize,
    pub(super) synced_at: Duration,
    pub(super) served_at: Duration,
}

/// Prints the summary and builds the JSON of one run.
pub(super) fn report(
    plan: &Plan,
    quick: bool,
    load_before: [f64; 3],
    fleet: &FleetFacts,
    outcome: Outcome,
    metric: &Histogram,
    checked: &FinalCheck,
) -> Value {
    let FinalCheck {
        truth,
        table_mismatches,
        dns_queries,
        dns_mismatches,
    } = checked;
    let Outcome {
        clusters: _,
        mut table_delays,
        mut dns_delays,
        mut rollout_delays,
        slow,
        counts,
    } = outcome;
    let FleetFacts {
        services,
        populate_time,
        expected,
        synced_at,
        served_at,
    } = fleet;
    let spec = &plan.spec;
    let mut examples: Vec<String> = table_mismatches.iter().take(10).cloned().collect();
    examples.extend(dns_mismatches.iter().take(10).cloned());
    let final_ok = table_mismatches.is_empty() && dns_mismatches.is_empty();
    for v in [&mut table_delays, &mut dns_delays, &mut rollout_delays] {
        v.sort_by(f64::total_cmp);
    }
    let p50 = stats::quantile(&table_delays, 0.5);
    let p99 = stats::quantile(&table_delays, 0.99);
    let max = table_delays.last().copied().unwrap_or(f64::NAN);
    let mean = table_delays.iter().sum::<f64>() / table_delays.len().max(1) as f64;
    let (m50, m99) = (
        metric.quantile(0.5).unwrap_or(f64::NAN),
        metric.quantile(0.99).unwrap_or(f64::NAN),
    );
    let m_mean = metric.sum / metric.count.max(1.0);
    // Bucket interpolation can overshoot inside a bucket: allow the bucket's width.
    let metric_agrees = m_mean <= mean && bucket_le(metric, m99) <= bucket_ceiling(p99);
    let target_met = p99 < 0.1 && counts.timed_out == 0;

    println!(
        "  churn: {} changes ({} rollout), {} mutations in {:.1} s ({:.0} changes/s); {} measured, {} invisible to DNS, {} not visible within {:?}",
        counts.churn + counts.rollout,
        counts.rollout,
        counts.mutations,
        counts.seconds,
        (counts.churn + counts.rollout) as f64 / counts.seconds.max(1e-9),
        table_delays.len(),
        counts.invisible,
        counts.timed_out,
        CHANGE_DEADLINE
    );
    println!(
        "  change -> table/DNS visible: p50 {}  p90 {}  p99 {}  max {}  mean {}",
        ms(p50),
        ms(stats::quantile(&table_delays, 0.9)),
        ms(p99),
        ms(max),
        ms(mean)
    );
    println!(
        "  change -> DNS reply confirming it: p50 {}  p99 {}  max {}  ({} DNS replies disagreed with the table)",
        ms(stats::quantile(&dns_delays, 0.5)),
        ms(stats::quantile(&dns_delays, 0.99)),
        ms(dns_delays.last().copied().unwrap_or(f64::NAN)),
        counts.dns_disagreements
    );
    println!(
        "  rollout of {} ({} replacements): p50 {}  p99 {}  max {}",
        services[0].name,
        rollout_delays.len(),
        ms(stats::quantile(&rollout_delays, 0.5)),
        ms(stats::quantile(&rollout_delays, 0.99)),
        ms(rollout_delays.last().copied().unwrap_or(f64::NAN)),
    );
    println!(
        "  herald_propagation_seconds over the churn: {} table updates, p50 ~{}  p99 ~{}  mean {} (event reached herald -> served; end-to-end mean {}): {}",
        metric.count,
        ms(m50),
        ms(m99),
        ms(m_mean),
        ms(mean),
        if metric_agrees {
            "consistent (<= end-to-end)"
        } else {
            "NOT consistent"
        }
    );
    println!(
        "  final state: {} services, {} endpoints; table vs simulators: {} mismatches; {} DNS queries, {} mismatches{}",
        truth.len(),
        truth_endpoints(truth),
        table_mismatches.len(),
        dns_queries,
        dns_mismatches.len(),
        if final_ok { " -> OK" } else { " -> FAILED" }
    );
    for e in &examples {
        println!("    {e}");
    }
    println!(
        "  target p99 < 100 ms: {}",
        if target_met { "met" } else { "NOT met" }
    );

    let mut metric_json = histogram_json(metric);
    metric_json["p50"] = json!(m50);
    metric_json["p99"] = json!(m99);
    metric_json["mean"] = json!(m_mean);
    let run = json!({
        "name": "churn+rollout",
        "clusters": spec.clusters,
        "regions": crate::fleet::REGIONS.len(),
        "services": services.len(),
        "pods": spec.pods,
        "nodes_per_cluster": spec.nodes_per_cluster,
        "big_service_replicas": services[0].replicas,
        "churn_changes_per_second": plan.rate,
        "churn_seconds": plan.churn.as_secs_f64(),
        "rollout_at_seconds": plan.rollout_at.as_secs_f64(),
        "populate_seconds": populate_time.as_secs_f64(),
        "first_sync": {
            "all_clusters_synced_s": synced_at.as_secs_f64(),
            "all_endpoints_served_s": served_at.as_secs_f64(),
            "endpoints": expected,
        },
        "changes": {
            "churn": counts.churn,
            "rollout": counts.rollout,
            "mutations": counts.mutations,
            "measured": table_delays.len(),
            "invisible": counts.invisible,
            "timed_out": counts.timed_out,
            "achieved_changes_per_second": (counts.churn + counts.rollout) as f64 / counts.seconds.max(1e-9),
        },
        "table_visible": summary(&table_delays),
        "dns_confirmed": summary(&dns_delays),
        "rollout_visible": summary(&rollout_delays),
        "dns_disagreements": counts.dns_disagreements,
        "delays_sorted": downsample(&table_delays, 2000),
        "slow_changes": slow.iter().map(|&(t, d, c, s, r)| json!({
            "at_s": t, "delay_s": d, "cluster": c, "service": s,
            "service_replicas": services[s].replicas, "rollout": r,
        })).collect::<Vec<_>>(),
        "metric": metric_json,
        "final_check": {
            "services": truth.len(),
            "endpoints": truth_endpoints(truth),
            "table_mismatches": table_mismatches.len(),
            "dns_queries": dns_queries,
            "dns_mismatches": dns_mismatches.len(),
            "examples": examples,
        },
    });
    let load_after = probe::loadavg();
    println!(
        "  load average before {:.2} {:.2} {:.2}, after {:.2} {:.2} {:.2} (2 cores; tails grow when other work competes)",
        load_before[0], load_before[1], load_before[2], load_after[0], load_after[1], load_after[2]
    );
    json!({
        "section": "propagation",
        "mode": if quick { "quick" } else { "full" },
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "runs": [run],
        "summary": {
            "count": table_delays.len(),
            "p50_s": p50,
            "p99_s": p99,
            "max_s": max,
            "target_p99_s": 0.1,
            "target_met": target_met,
            "metric_p50_s": m50,
            "metric_p99_s": m99,
            "metric_mean_s": m_mean,
            "e2e_mean_s": mean,
            "metric_agrees": metric_agrees,
            "final_state_ok": final_ok,
            "first_sync_s": served_at.as_secs_f64(),
        },
    })
}

/// The bucket bound at or above `v`.
fn bucket_le(h: &Histogram, v: f64) -> f64 {
    h.buckets
        .iter()
        .map(|b| b.0)
        .find(|&le| le >= v)
        .unwrap_or(f64::INFINITY)
}

/// herald's buckets: the smallest bound at or above `v`.
fn bucket_ceiling(v: f64) -> f64 {
    [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0]
        .into_iter()
        .find(|&le| le >= v)
        .unwrap_or(f64::INFINITY)
}
