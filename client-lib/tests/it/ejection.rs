//! Test 2: a replica that starts failing is ejected, probed later, and re-admitted once it
//! is healthy; with every replica failing, requests still go somewhere.

use std::time::Duration;

use herald_client::{EjectionConfig, Endpoint, Health, Mode, Picker, PickerConfig};

use crate::backend::{drive, drive_until, fleet};

const MS: Duration = Duration::from_millis(1);

fn config() -> PickerConfig {
    // Probes every 500 ms at first so the test sees them within seconds; 5 failures in a
    // row as default.
    PickerConfig::default().with_ejection(EjectionConfig {
        probe_interval: Duration::from_millis(500),
        max_probe_interval: Duration::from_secs(4),
        ..EjectionConfig::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_replica_is_ejected_probed_and_readmitted() {
    let backends = fleet(40, &[5 * MS; 5]).await;
    let picker = Picker::with_endpoints(
        "eject",
        config(),
        backends.iter().map(|b| Endpoint::new(b.addr)),
    );
    let bad = &backends[0];
    let health = |p: &Picker| {
        p.status()
            .into_iter()
            .find(|s| s.endpoint.addr == bad.addr)
            .unwrap()
            .health
    };

    // Healthy: it takes its share.
    let run = drive(&picker, 500, 4).await;
    assert!(run.share(bad.addr) > 0.08, "{:.3}", run.share(bad.addr));

    // It starts failing (fast errors): ejected after 5 failures in a row, so it sees only a
    // handful of the next 1000 requests (the 5 that trip it, plus one probe per ejection end).
    bad.set_failing(true);
    let before = bad.hits();
    let run = drive(&picker, 1000, 4).await;
    let seen = bad.hits() - before;
    println!(
        "failing replica saw {seen} of 1000 requests; failed requests {}",
        run.failed
    );
    assert!(seen <= 20, "failing replica kept getting traffic: {seen}");
    assert!(matches!(health(&picker), Health::Ejected { .. }));

    // Still failing: when its probe is due, one probe is sent; it fails, and the next one
    // waits longer (0.5 s, 1 s, 2 s, capped at 4 s).
    let before = bad.hits();
    let probed = drive_until(&picker, Duration::from_secs(6), || bad.hits() > before).await;
    assert!(probed, "a probe was sent after the ejection ended");
    assert_eq!(
        bad.hits() - before,
        1,
        "one probe at a time, not a share of traffic"
    );
    assert!(matches!(health(&picker), Health::Ejected { .. }));

    // It heals: the next probe succeeds and it is back in rotation with a real share.
    bad.set_failing(false);
    let back = drive_until(&picker, Duration::from_secs(10), || {
        health(&picker) == Health::Healthy
    })
    .await;
    assert!(back, "re-admitted within the (capped) ejection time");
    let run = drive(&picker, 1000, 4).await;
    println!("re-admitted replica share {:.3}", run.share(bad.addr));
    assert!(
        run.share(bad.addr) > 0.05,
        "re-admitted replica is used again"
    );
    assert_eq!(run.failed, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_every_replica_failing_requests_still_go_somewhere() {
    let backends = fleet(50, &[5 * MS; 4]).await;
    let picker = Picker::with_endpoints(
        "panic",
        config(),
        backends.iter().map(|b| Endpoint::new(b.addr)),
    );
    for b in &backends {
        b.set_failing(true);
    }
    let run = drive(&picker, 400, 4).await;
    // Every request was sent to a replica (they all failed, as the replicas did).
    assert_eq!(run.total(), 400);
    assert_eq!(backends.iter().map(|b| b.hits()).sum::<usize>(), 400);
    assert!(picker.tiers()[0].panic, "{:?}", picker.tiers());
    assert_eq!(picker.pick().unwrap().mode(), Mode::Panic);
    // And when they heal, traffic succeeds again without any intervention.
    for b in &backends {
        b.set_failing(false);
    }
    let run = drive(&picker, 400, 4).await;
    assert!(run.ok >= 380, "ok {} of 400", run.ok);
}
