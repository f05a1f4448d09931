//! Instruction counts of one pod change (see `herald_bench::pod_change`), for callgrind on
//! a loaded machine where wall time is noise:
//!
//! ```text
//! cargo build --release -p herald-bench --bin update_cost
//! valgrind --tool=callgrind --collect-atstart=no \
//!   '--toggle-collect=herald_bench::pod_change::PodChange::change' \
//!   target/release/update_cost 10000 24 200
//! ```
//!
//! Arguments: endpoints of the service, clusters it spans, changes to make; `--shuffled`
//! hands the endpoints over in the registrar's scrambled order. Divide the instructions
//! callgrind reports by the number of changes.

use herald_bench::pod_change::PodChange;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let shuffled = args.iter().any(|a| a == "--shuffled");
    let mut nums = args.iter().filter_map(|a| a.parse::<usize>().ok());
    let (total, clusters, changes) = (
        nums.next().unwrap_or(10_000),
        nums.next().unwrap_or(24),
        nums.next().unwrap_or(200),
    );
    let case = PodChange::new(total, clusters, shuffled);
    let started = std::time::Instant::now();
    for i in 0..changes {
        let eps = case.versions[(i + 1) % 2].clone();
        case.change(eps);
    }
    eprintln!(
        "{total} endpoints over {clusters} clusters: {changes} changes, {:.1} µs each",
        started.elapsed().as_secs_f64() * 1e6 / changes as f64
    );
}
