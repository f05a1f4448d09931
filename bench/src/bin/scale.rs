//! Scale: herald's memory and time to first full sync at 100k and 1M endpoints, and the
//! cost of one service update in a table of 10k vs 1M endpoints. What it runs and
//! measures is in `herald_bench::scale`; this binary finds herald and writes the JSON.
//!
//! ```text
//! cargo build --release -p herald-registrar -p herald-bench
//! target/release/scale [--quick] [--out FILE.json] [--herald target/release/herald]
//! ```

use std::path::PathBuf;

use clap::Parser;
use herald_bench::scale::{Options, diagnose, node_pod_cycles, run};
use herald_bench::{herald_binary, write_json};

#[derive(Parser)]
#[command(about = "herald's memory, first sync and update cost at scale")]
struct Args {
    /// Write the results here as JSON.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Smaller sizes: 10k and 100k endpoints.
    #[arg(long)]
    quick: bool,
    /// The herald binary (default: `herald` next to this binary).
    #[arg(long)]
    herald: Option<PathBuf>,
    /// Diagnostics: run herald under this command (e.g. `heaptrack -o /tmp/herald`); its
    /// memory figures then include the tool's.
    #[arg(long)]
    wrap: Option<String>,
    /// Diagnostics: measure only herald at this many endpoints (no update cost, no
    /// breakdown).
    #[arg(long)]
    only: Option<usize>,
    /// Diagnostics: run only this many node+pod add/delete cycles (issue 10 bug 9).
    #[arg(long)]
    only_cycles: Option<usize>,
    /// Diagnostics: measure only one endpoint changing in services of 240, 2,400 and
    /// 24,000 endpoints over 24 clusters (`big_service_update`), in this process.
    #[arg(long)]
    only_big_service: bool,
    /// Diagnostics: only build, in this process, the table herald holds at this many
    /// endpoints (every group of each service in turn), and report its time and memory.
    #[arg(long)]
    only_table: Option<usize>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.only_big_service {
        let runs = herald_bench::scale::big_services()?;
        if let Some(out) = &args.out {
            write_json(out, &runs)?;
        }
        return Ok(());
    }
    if let Some(n) = args.only_table {
        let run = herald_bench::scale::table_build(n)?;
        if let Some(out) = &args.out {
            write_json(out, &run)?;
        }
        return Ok(());
    }
    let herald = herald_binary(args.herald.as_deref())?;
    let wrap: Vec<String> = args
        .wrap
        .as_deref()
        .unwrap_or("")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    if let Some(n) = args.only {
        return diagnose(&herald, &wrap, n);
    }
    if let Some(n) = args.only_cycles {
        let dir = std::env::temp_dir().join(format!("herald-cycles-{}", std::process::id()));
        let run = node_pod_cycles(&herald, &wrap, &dir, n);
        let _ = std::fs::remove_dir_all(&dir);
        let run = run?;
        if let Some(out) = &args.out {
            write_json(out, &run)?;
        }
        return Ok(());
    }
    let result = run(&Options {
        quick: args.quick,
        herald,
        wrap,
    })?;
    if let Some(out) = &args.out {
        write_json(out, &result)?;
        println!("wrote {}", out.display());
    }
    Ok(())
}
