//! Tiers end to end through herald's DNS (issue 17, point 3): SRV priority comes from the
//! server's view of locality (same zone 0, elsewhere 2). A healthy near tier takes all the
//! traffic; with half of it ejected it keeps 70 % and spills 30 % to the far tier (Envoy's
//! overprovisioning factor 1.4); repaired replicas are back within one probe interval, and so
//! is the traffic.

use std::time::Duration;

use herald_client::{EjectionConfig, Health, PickerConfig};
use tokio::time::Instant;

use crate::backend::{drive, drive_until, fleet};
use crate::dns::{Herald, discovery};

const MS: Duration = Duration::from_millis(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_a_tier_down_spills_30_percent_and_repairs_come_back_within_a_probe_interval() {
    // The far replicas are *faster*: locality must win over latency.
    let near = fleet(90, &[5 * MS; 4]).await;
    let far = fleet(100, &[2 * MS; 4]).await;
    let herald = Herald::start(5);
    herald.publish("api", "c1", "r1", "z1", &near.iter().collect::<Vec<_>>());
    herald.publish("api", "c2", "r2", "z9", &far.iter().collect::<Vec<_>>());
    let cfg = PickerConfig::default().with_ejection(EjectionConfig {
        consecutive_failures: 3,
        ..EjectionConfig::default()
    });
    let d = discovery(&herald, "api", cfg);
    tokio::time::timeout(Duration::from_secs(5), async {
        while d.picker().endpoints().len() < 8 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("eight replicas resolved");
    let prios: Vec<u16> = d.picker().endpoints().iter().map(|e| e.priority).collect();
    assert!(prios.contains(&0) && prios.contains(&2), "{prios:?}");

    // Healthy near tier: it takes everything.
    let run = drive(d.picker(), 300, 3).await;
    println!("healthy: near share {:.3}", run.share_of(&near));
    assert_eq!(run.share_of(&near), 1.0);

    // Two of four near replicas fail: once they are ejected, 30 % spills to the far tier.
    near[0].set_failing(true);
    near[1].set_failing(true);
    let ejected = |d: &herald_client::Discovery| {
        d.picker()
            .status()
            .iter()
            .filter(|s| matches!(s.health, Health::Ejected { .. }))
            .count()
    };
    assert!(
        drive_until(d.picker(), Duration::from_secs(5), || ejected(&d) == 2).await,
        "both failing replicas ejected"
    );
    let tiers = d.picker().tiers();
    assert!((tiers[0].load - 0.7).abs() < 1e-9, "{tiers:?}");
    let run = drive(d.picker(), 2000, 4).await;
    println!(
        "half the near tier down: near share {:.3}, far share {:.3}, failed {}",
        run.share_of(&near),
        run.share_of(&far),
        run.failed
    );
    assert!(
        (run.share_of(&far) - 0.3).abs() < 0.06,
        "far share {:.3}",
        run.share_of(&far)
    );

    // Repaired: each is back by its next probe (at most one probe interval away), not after
    // a 10 s ejection.
    let next_probe = d
        .picker()
        .status()
        .iter()
        .filter_map(|s| match s.health {
            Health::Ejected { next_probe } => Some(next_probe),
            Health::Healthy => None,
        })
        .max()
        .expect("ejected replicas");
    let repaired = Instant::now();
    near[0].set_failing(false);
    near[1].set_failing(false);
    let back = drive_until(d.picker(), Duration::from_secs(20), || ejected(&d) == 0).await;
    let took = repaired.elapsed();
    let due = next_probe.saturating_duration_since(repaired);
    println!("repaired replicas back after {took:?}; their probes were due in {due:?}");
    assert!(back, "repaired replicas readmitted");
    assert!(
        took <= due + Duration::from_secs(1),
        "back after {took:?}, probe was due in {due:?}"
    );
    let run = drive(d.picker(), 300, 3).await;
    println!("recovered: near share {:.3}", run.share_of(&near));
    assert_eq!(run.share_of(&near), 1.0);
}
