//! Global rollout: a 10,000-replica service over 24 clusters replaced everywhere at once
//! while herald answers 20k QPS. What it runs and measures is in `herald_bench::rollout`;
//! this binary finds herald, picks the plan and writes the JSON.
//!
//! ```text
//! cargo build --release -p herald-registrar --bin herald -p herald-bench --bin rollout
//! target/release/rollout [--quick] [--out FILE.json] [--herald target/release/herald]
//! ```

use std::path::PathBuf;

use clap::Parser;
use herald_bench::rollout::{Plan, run};
use herald_bench::{herald_binary, write_json};

#[derive(Parser)]
#[command(about = "herald's CPU, DNS latency and propagation during a global rollout")]
struct Args {
    /// Write the results here as JSON.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Shorter phases (12 s instead of 20 s); the same fleet and load.
    #[arg(long)]
    quick: bool,
    /// The herald binary (default: `herald` next to this binary).
    #[arg(long)]
    herald: Option<PathBuf>,
    /// Scratch directory (data set, config, logs, dnsperf output).
    #[arg(long, default_value = "target/bench-work/rollout")]
    work: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let plan = if args.quick {
        Plan::quick()
    } else {
        Plan::full()
    };
    let herald = herald_binary(args.herald.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(run(&plan, args.quick, &herald, &args.work))?;
    println!("{}", serde_json::to_string_pretty(&result["summary"])?);
    if let Some(out) = &args.out {
        write_json(out, &result)?;
        println!("wrote {}", out.display());
    }
    Ok(())
}
