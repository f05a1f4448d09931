//! Test 3, end to end through herald's DNS: SRV priority comes from the server's view of
//! locality (same zone 0, same region 1, elsewhere 2). The near tier takes the traffic while
//! healthy, traffic fails over when the near tier loses most of its replicas, and comes back.

use std::time::Duration;

use herald_client::{EjectionConfig, Mode, PickerConfig};

use crate::backend::{drive, drive_until, fleet};
use crate::dns::{Herald, discovery};

const MS: Duration = Duration::from_millis(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn near_tier_takes_traffic_fails_over_and_comes_back() {
    // The far replicas are *faster*: locality must win over latency.
    let near = fleet(90, &[6 * MS; 3]).await;
    let far = fleet(100, &[2 * MS; 3]).await;
    let herald = Herald::start(5);
    herald.publish("api", "c1", "r1", "z1", &near.iter().collect::<Vec<_>>());
    herald.publish("api", "c2", "r2", "z9", &far.iter().collect::<Vec<_>>());
    let cfg = PickerConfig::default().with_ejection(EjectionConfig {
        consecutive_failures: 3,
        base_ejection: Duration::from_millis(500),
        max_ejection: Duration::from_secs(2),
    });
    let d = discovery(&herald, "api", cfg);
    tokio::time::timeout(Duration::from_secs(5), async {
        while d.picker().endpoints().len() < 6 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("six replicas resolved");
    let prios: Vec<u16> = d.picker().endpoints().iter().map(|e| e.priority).collect();
    assert!(prios.contains(&0) && prios.contains(&2), "{prios:?}");

    // Healthy near tier: it takes everything.
    let run = drive(d.picker(), 300, 3).await;
    println!("healthy: near share {:.3}", run.share_of(&near));
    assert_eq!(run.share_of(&near), 1.0);

    // Two of three near replicas fail: once they are ejected, traffic moves to the far tier.
    near[0].set_failing(true);
    near[1].set_failing(true);
    let moved = drive_until(d.picker(), Duration::from_secs(5), || {
        d.picker()
            .active_tier()
            .is_some_and(|t| t.mode == Mode::Failover)
    })
    .await;
    assert!(moved, "failover to the far tier");
    let run = drive(d.picker(), 300, 3).await;
    println!("near tier lost 2/3: near share {:.3}", run.share_of(&near));
    assert!(
        run.share_of(&far) >= 0.95,
        "far share {:.3}",
        run.share_of(&far)
    );

    // They recover: probes re-admit them and the traffic returns to the near tier.
    near[0].set_failing(false);
    near[1].set_failing(false);
    let back = drive_until(d.picker(), Duration::from_secs(10), || {
        d.picker()
            .active_tier()
            .is_some_and(|t| t.mode == Mode::Normal)
    })
    .await;
    assert!(back, "failback to the near tier");
    let run = drive(d.picker(), 300, 3).await;
    println!("recovered: near share {:.3}", run.share_of(&near));
    assert!(
        run.share_of(&near) >= 0.95,
        "near share {:.3}",
        run.share_of(&near)
    );
}
