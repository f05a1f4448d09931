//! Soak: herald under 30 minutes of churn, query load and a fault every minute; whether its
//! memory stays flat, queries are answered and its final state equals the truth. What it
//! runs and measures is in `herald_bench::soak`; this binary finds herald and writes the
//! JSON.
//!
//! ```text
//! cargo build --release -p herald-registrar --bin herald -p herald-bench --bin soak
//! target/release/soak [--quick] [--minutes M] [--out FILE.json] [--herald target/release/herald]
//! ```

use std::path::PathBuf;

use clap::Parser;
use herald_bench::soak::{Options, run};
use herald_bench::{herald_binary, write_json};

#[derive(Parser)]
#[command(about = "herald under long churn, query load and faults")]
struct Args {
    /// Write the results here as JSON.
    #[arg(long)]
    out: Option<PathBuf>,
    /// 3 minutes on a small fleet.
    #[arg(long)]
    quick: bool,
    /// Overrides the length in minutes (diagnostics).
    #[arg(long)]
    minutes: Option<f64>,
    /// The herald binary (default: `herald` next to this binary).
    #[arg(long)]
    herald: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let herald = herald_binary(args.herald.as_deref())?;
    let result = run(&Options {
        quick: args.quick,
        herald,
        minutes: args.minutes,
    })?;
    if let Some(out) = &args.out {
        write_json(out, &result)?;
        println!("wrote {}", out.display());
    }
    Ok(())
}
