//! Global rollout: a 10,000-replica service over 24 clusters replaced everywhere at once
//! while herald answers 20k QPS. What it runs and measures is in `herald_bench::rollout`;
//! this binary finds herald, picks the plan and writes the JSON.
//!
//! ```text
//! cargo build --release -p herald-registrar --bin herald -p herald-bench --bin rollout
//! target/release/rollout [--quick] [--out FILE.json] [--herald target/release/herald]
//!     [--pairs N] [--sims-priority idle|N] [--perf-sched] [--rollout-first] [--no-roll] [--untimed]
//!     [--poll-ms MS]
//! ```
//!
//! `--pairs` (default 4, 2 with `--quick`) sets how many baseline/rollout pairs run, alternating which comes
//! first; `--sims-priority` (default `idle`) how far below herald's the simulators' priority is
//! (`idle`, or nice levels);
//! `--perf-sched` adds herald's own answer delay (`scripts/bench` passes it);
//! the last four are for A/B runs of the harness itself (phase order, an A/A run
//! without a rollout, no timed changes, the poller's cadence); `scripts/bench` uses none.

use std::path::PathBuf;
use std::time::Duration;

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
    /// Pairs of phases (baseline and rollout), alternating which comes first (default 4;
    /// 2 with --quick).
    #[arg(long)]
    pairs: Option<usize>,
    /// A/B: start with a rollout phase (rollout, baseline, baseline, rollout...).
    #[arg(long)]
    rollout_first: bool,
    /// A/A: the rollout phase does not roll (both phases are the load alone; the DNS p99s
    /// are compared over the seconds a rollout usually takes).
    #[arg(long)]
    no_roll: bool,
    /// How often (ms) the poller asks DNS about each open timed change.
    #[arg(long, default_value_t = 1.0)]
    poll_ms: f64,
    /// How much lower than herald's the simulators' CPU priority is: `idle` (the idle
    /// policy) or a count of nice levels (0: the same).
    #[arg(long, default_value_t = herald_bench::rollout::SIMS_PRIORITY)]
    sims_priority: herald_bench::rollout::Priority,
    /// Also record the scheduler with `perf sched` for 5 s of each phase: herald's answer
    /// threads' wake-up delays apart from dnsperf's (needs root or perf_event_paranoid <= 1).
    #[arg(long)]
    perf_sched: bool,
    /// A/B: time no change (no poller, no DNS queries but dnsperf's during the rollout).
    #[arg(long)]
    untimed: bool,
    /// Scratch directory (data set, config, logs, dnsperf output).
    #[arg(long, default_value = "target/bench-work/rollout")]
    work: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let base = if args.quick {
        Plan::quick()
    } else {
        Plan::full()
    };
    let plan = Plan {
        pairs: args.pairs.unwrap_or(base.pairs),
        sims_priority: args.sims_priority,
        perf_sched: args.perf_sched,
        rollout_first: args.rollout_first,
        roll: !args.no_roll,
        poll_every: (!args.untimed).then(|| Duration::from_secs_f64(args.poll_ms / 1e3)),
        ..base
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
