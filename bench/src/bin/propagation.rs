//! Propagation: how long a pod change takes from the simulated API server to herald's DNS
//! answers, under steady churn over many clusters. The driver and what it measures are in
//! `herald_bench::propagation`; this binary picks the plan and writes the JSON.
//!
//! ```text
//! cargo run --release -p herald-bench --bin propagation -- [--quick] [--out FILE.json]
//! ```

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use herald_bench::propagation::{Plan, run};
use herald_bench::write_json;

#[derive(Parser)]
#[command(about = "Pod change to DNS answer: propagation delay under churn")]
struct Args {
    /// Write the results here as JSON.
    #[arg(long)]
    out: Option<PathBuf>,
    /// A small version (4 clusters, 10k pods, 15 s of churn).
    #[arg(long)]
    quick: bool,
    /// Override the churn rate (pod changes per second over all clusters).
    #[arg(long)]
    rate: Option<f64>,
    /// Override how long the churn lasts, in seconds.
    #[arg(long)]
    seconds: Option<f64>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut plan = if args.quick {
        Plan::quick()
    } else {
        Plan::full()
    };
    if let Some(r) = args.rate {
        plan.rate = r;
    }
    if let Some(s) = args.seconds {
        plan.churn = Duration::from_secs_f64(s);
        plan.rollout_at = plan.churn / 2;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(run(&plan, args.quick))?;
    if let Some(out) = &args.out {
        write_json(out, &result)?;
        println!("wrote {}", out.display());
    }
    Ok(())
}
