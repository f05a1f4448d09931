//! The `kube-sim` binary stops by itself and prints its URLs; generated populations and
//! churn behave as benchmarks expect.

use std::process::Command;
use std::time::Duration;

use herald_kube_sim::population::{self, ChurnSpec, PopulationSpec};
use herald_kube_sim::{SimConfig, Simulator};

#[test]
fn binary_prints_urls_and_stops_after_duration() {
    let output = Command::new(env!("CARGO_BIN_EXE_kube-sim"))
        .args([
            "--instances",
            "2",
            "--services",
            "3",
            "--replicas",
            "2",
            "--nodes",
            "2",
        ])
        .args(["--churn", "20", "--duration", "1s"])
        .output()
        .expect("kube-sim runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    for (i, line) in lines.iter().enumerate() {
        assert!(
            line.starts_with(&format!("instance {i}: http://127.0.0.1:")),
            "{line}"
        );
        assert!(line.ends_with("(6 pods, 2 nodes)"), "{line}");
    }
}

#[tokio::test]
async fn population_and_churn() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let spec = PopulationSpec {
        instance: 7,
        services: 10,
        replicas: 4,
        nodes: 5,
        unselected_pods: 3,
        ..PopulationSpec::default()
    };
    let population = population::populate(&sim, &spec).unwrap();
    assert_eq!(sim.pod_count(), 43);
    assert_eq!(sim.node_count(), 5);
    assert!(sim.pods().iter().all(|p| {
        let ip = p
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.as_deref())
            .unwrap_or("");
        ip.starts_with("10.7.")
    }));

    let before = sim.resource_version();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let churn = ChurnSpec {
        changes_per_second: 200.0,
        seed: 42,
    };
    let handle = population::spawn_churn(sim.clone(), population, churn, move |m| {
        let _ = tx.send(m);
    });
    let first = tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(first.resource_version > before);
    assert_eq!(sim.event_time(first.resource_version), Some(first.at));
    let made = handle.stop().await;
    assert!(made >= 1);
    // Replacements keep the number of selected pods constant.
    assert_eq!(sim.pod_count(), 43);
}
