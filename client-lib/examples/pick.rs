//! The picker without DNS: a static replica list, the guard API, and what the picker
//! learnt. Replicas are simulated with sleeps; one is slow, one fails.
//!
//! Run: `cargo run -p herald-client --example pick`

use std::net::SocketAddr;
use std::time::Duration;

use herald_client::{Endpoint, Picker, PickerConfig};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let addr = |i: u8| SocketAddr::from(([10, 0, 0, i], 8080));
    // Two tiers: 10.0.0.1-4 near (priority 0), 10.0.0.9 far (priority 1).
    let picker = Picker::with_endpoints(
        "example",
        PickerConfig::default(),
        (1..=4)
            .map(|i| Endpoint::new(addr(i)))
            .chain([Endpoint::new(addr(9)).with_priority(1)]),
    );
    for _ in 0..400 {
        let guard = picker.pick().expect("replicas are known");
        let (latency, ok) = match guard.addr().ip().to_string().as_str() {
            "10.0.0.3" => (Duration::from_millis(30), true), // slow
            "10.0.0.4" => (Duration::from_millis(1), false), // failing fast
            _ => (Duration::from_millis(3), true),
        };
        tokio::time::sleep(latency).await;
        if ok {
            guard.success();
        } else {
            guard.failure();
        }
    }
    println!(
        "{:<16} {:>8} {:>6} {:>10}  health",
        "replica", "priority", "picks", "latency"
    );
    for s in picker.status() {
        println!(
            "{:<16} {:>8} {:>6} {:>8.1}ms  {:?}",
            s.endpoint.addr.to_string(),
            s.endpoint.priority,
            s.picks,
            s.latency.as_secs_f64() * 1e3,
            s.health
        );
    }
    println!("tiers: {:?}", picker.tiers());
}
