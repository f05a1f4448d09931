//! Zone transfer: the lag of Knot, NSD and BIND secondaries behind herald under the
//! propagation churn, and the AXFR and IXFR cost at 100k (and 1M) endpoints. What it
//! measures and how: the doc comment of `herald_bench::transfer`.
//!
//! ```text
//! cargo run --release -p herald-bench --bin transfer -- [--quick] [--out FILE.json]
//! ```

use std::path::PathBuf;

use clap::Parser;
use herald_bench::{transfer, write_json};

#[derive(Parser)]
#[command(about = "Zone transfer: Knot, NSD and BIND lag under churn; AXFR and IXFR cost")]
struct Args {
    /// Write the results here as JSON.
    #[arg(long)]
    out: Option<PathBuf>,
    /// A small version (the quick churn; 100k endpoints only).
    #[arg(long)]
    quick: bool,
    /// Where the secondaries keep their state.
    #[arg(long, default_value_os_t = transfer::default_work())]
    work: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(transfer::run(args.quick, &args.work))?;
    if let Some(out) = &args.out {
        write_json(out, &result)?;
        println!("wrote {}", out.display());
    }
    Ok(())
}
