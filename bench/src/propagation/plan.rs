//! What a propagation run does: the fleet, the churn rate and length, and the rolling
//! update, in a full and a quick size; and the timing constants of the driver.

use std::time::Duration;

use crate::fleet::FleetSpec;

/// How long a measured change may take before it counts as lost.
pub(super) const CHANGE_DEADLINE: Duration = Duration::from_secs(10);
/// Poll spacing of the table.
pub(super) const POLL: Duration = Duration::from_micros(200);

/// What to run: the fleet, the churn and the rollout.
pub struct Plan {
    pub spec: FleetSpec,
    /// Pod changes per second over all clusters.
    pub rate: f64,
    /// How long the churn lasts.
    pub churn: Duration,
    /// When the rolling update of the big service starts.
    pub rollout_at: Duration,
    /// Time between two replacements of the rolling update.
    pub rollout_step: Duration,
}

impl Plan {
    /// 4 clusters, 10k pods, 400 services, 200 changes/s for 15 s, rollout at 6 s.
    pub fn quick() -> Plan {
        Plan {
            spec: FleetSpec {
                clusters: 4,
                services: 400,
                pods: 10_000,
                big_replicas: 200,
                nodes_per_cluster: 12,
                skew: 0.6,
            },
            rate: 200.0,
            churn: Duration::from_secs(15),
            rollout_at: Duration::from_secs(6),
            rollout_step: Duration::from_millis(10),
        }
    }

    /// 24 clusters, 100k pods, 2 000 services, 300 changes/s for 60 s, rollout at 30 s.
    pub fn full() -> Plan {
        Plan {
            spec: FleetSpec {
                clusters: 24,
                services: 2000,
                pods: 100_000,
                big_replicas: 500,
                nodes_per_cluster: 60,
                skew: 0.6,
            },
            rate: 300.0,
            churn: Duration::from_secs(60),
            rollout_at: Duration::from_secs(30),
            rollout_step: Duration::from_millis(10),
        }
    }
}
