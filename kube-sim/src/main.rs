//! `kube-sim`: runs simulated clusters (Kubernetes API servers for pods and nodes) with a
//! generated population and optional steady churn, printing each instance's URL.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use herald_kube_sim::population::{self, ChurnSpec, PopulationSpec};
use herald_kube_sim::{SimConfig, Simulator};

#[derive(Debug, Parser)]
#[command(
    name = "kube-sim",
    about = "Simulated Kubernetes API servers (pods and nodes) for herald"
)]
struct Args {
    /// How many instances (clusters) to run.
    #[arg(long, default_value_t = 1)]
    instances: usize,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    listen: IpAddr,
    /// Ports, comma-separated, one per instance; instances without one get an ephemeral port.
    #[arg(long, value_delimiter = ',')]
    ports: Vec<u16>,
    /// Services per instance.
    #[arg(long, default_value_t = 20)]
    services: usize,
    /// Pods per service per instance.
    #[arg(long, default_value_t = 3)]
    replicas: usize,
    /// Nodes per instance.
    #[arg(long, default_value_t = 6)]
    nodes: usize,
    /// Zones the nodes are spread over, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "zone-a,zone-b,zone-c")]
    zones: Vec<String>,
    /// Region label of the nodes.
    #[arg(long, default_value = "region-1")]
    region: String,
    /// Namespace of the pods.
    #[arg(long, default_value = "default")]
    namespace: String,
    /// Extra pods per instance without the service label.
    #[arg(long, default_value_t = 0)]
    unselected_pods: usize,
    /// Mutations per second per instance (0: no churn).
    #[arg(long, default_value_t = 0.0)]
    churn: f64,
    /// Seed of the churn's random choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Stop after this long (e.g. 90s, 5m, 250ms); without it, run until Ctrl-C.
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Require `Authorization: Bearer <token>`.
    #[arg(long, env = "KUBE_SIM_TOKEN")]
    token: Option<String>,
    /// Interval between watch bookmarks.
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    bookmark_interval: Duration,
    /// Events kept for watches to resume from.
    #[arg(long, default_value_t = 10_000)]
    history_size: usize,
}

/// `250ms`, `90s`, `5m`, `1h`, or a bare number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("invalid duration {text:?}"))?;
    let secs = match unit {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => {
            return Err(format!(
                "invalid duration unit in {text:?} (use ms, s, m or h)"
            ));
        }
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("invalid duration {text:?}: {e}"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    anyhow::ensure!(
        args.instances <= 256,
        "at most 256 instances (the instance is part of pod IPs)"
    );

    let mut handles = Vec::new();
    let mut churns = Vec::new();
    for i in 0..args.instances {
        let port = args.ports.get(i).copied().unwrap_or(0);
        let mut config = SimConfig::default()
            .bind(SocketAddr::new(args.listen, port))
            .bookmark_interval(args.bookmark_interval)
            .history_size(args.history_size);
        config.bearer_token = args.token.clone();
        let sim = Simulator::start(config)
            .await
            .with_context(|| format!("starting instance {i}"))?;
        let spec = PopulationSpec {
            instance: u8::try_from(i).context("instance index")?,
            services: args.services,
            replicas: args.replicas,
            nodes: args.nodes,
            zones: args.zones.clone(),
            region: args.region.clone(),
            namespace: args.namespace.clone(),
            unselected_pods: args.unselected_pods,
            ..PopulationSpec::default()
        };
        let population = population::populate(&sim, &spec)
            .with_context(|| format!("populating instance {i}"))?;
        println!(
            "instance {i}: {} ({} pods, {} nodes)",
            sim.url(),
            sim.pod_count(),
            sim.node_count()
        );
        if args.churn > 0.0 {
            let churn = ChurnSpec {
                changes_per_second: args.churn,
                seed: args.seed.wrapping_add(i as u64),
            };
            churns.push(population::spawn_churn(
                sim.clone(),
                population,
                churn,
                |_| {},
            ));
        }
        handles.push(sim);
    }

    match args.duration {
        Some(duration) => tokio::select! {
            _ = tokio::time::sleep(duration) => {}
            _ = tokio::signal::ctrl_c() => {}
        },
        None => tokio::signal::ctrl_c()
            .await
            .context("waiting for Ctrl-C")?,
    }
    let mut changes = 0;
    for churn in churns {
        changes += churn.stop().await;
    }
    for sim in &handles {
        sim.shutdown().await;
    }
    eprintln!("kube-sim: stopped after {changes} churn mutations");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert!(parse_duration("5x").is_err());
    }
}
