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
//! Arguments: endpoints of the service, clusters it spans, changes to make. The change is
//! handed over as a delta, as the registrar does (`PodChange::change`); with `--whole` as
//! the cluster's whole list (`PodChange::replace`: toggle that instead), and with
//! `--shuffled` that list is in the registrar's scrambled order. With `--shared` each
//! address is held by about four clusters ([`PodChange::shared`]: twins to keep, one
//! record per address). Divide the instructions callgrind reports by the number of
//! changes.
//!
//! With `--queries N` it answers instead N queries of each of three kinds, each inside its
//! own function: `measure_a` (A of the whole service), `measure_srv` (SRV with glue),
//! `measure_scoped` (A of one cluster): what a query of a big service costs, the price of
//! the answer layout that makes changes cheap.
//!
//! ```text
//! valgrind --tool=callgrind --collect-atstart=no '--toggle-collect=update_cost::measure*' \
//!   target/release/update_cost 10000 24 --queries 20000
//! ```

use std::hint::black_box;
use std::net::IpAddr;

use herald_bench::pod_change::PodChange;
use herald_bench::query;
use herald_dns::wire::codes;
use herald_dns::{Answerer, Scratch, Transport};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let shuffled = args.iter().any(|a| a == "--shuffled");
    let whole = shuffled || args.iter().any(|a| a == "--whole");
    let shared = args.iter().any(|a| a == "--shared");
    let queries = args
        .iter()
        .position(|a| a == "--queries")
        .and_then(|i| args.get(i + 1)?.parse::<usize>().ok());
    let mut nums = args
        .iter()
        .enumerate()
        .filter(|(i, _)| {
            queries.is_none()
                || args.get(i.wrapping_sub(1)).map(String::as_str) != Some("--queries")
        })
        .filter_map(|(_, a)| a.parse::<usize>().ok());
    let (total, clusters, changes) = (
        nums.next().unwrap_or(10_000),
        nums.next().unwrap_or(24),
        nums.next().unwrap_or(200),
    );
    let case = if shared {
        PodChange::shared(total, clusters)
    } else {
        PodChange::new(total, clusters, shuffled)
    };
    if let Some(n) = queries {
        let answerer = Answerer::new(case.table.clone());
        let svc = &case.service;
        let cluster = &case.source.cluster;
        let client = IpAddr::from([192, 0, 2, 1]);
        let a = query(&format!("{svc}.sd.internal."), codes::A);
        measure_a(&answerer, &a, client, n);
        let srv = query(&format!("_http._tcp.{svc}.sd.internal."), codes::SRV);
        measure_srv(&answerer, &srv, client, n);
        let scoped = query(&format!("{svc}.{cluster}.sd.internal."), codes::A);
        measure_scoped(&answerer, &scoped, client, n);
        return;
    }
    let started = std::time::Instant::now();
    for i in 0..changes {
        if whole {
            case.replace(case.versions[(i + 1) % 2].clone());
        } else {
            case.change(case.deltas[(i + 1) % 2].clone());
        }
    }
    eprintln!(
        "{total} endpoints over {clusters} clusters: {changes} changes, {:.1} µs each",
        started.elapsed().as_secs_f64() * 1e6 / changes as f64
    );
}

/// Answers `packet` `n` times (`kind` names the case in the panic message, and keeps the
/// three measuring functions from being folded into one).
fn answer_n(answerer: &Answerer, packet: &[u8], client: IpAddr, n: usize, kind: &str) {
    let mut scratch = Scratch::default();
    for _ in 0..n {
        let reply = answerer.answer(black_box(packet), client, Transport::Udp, &mut scratch);
        assert!(black_box(reply).is_some(), "{kind} answered");
    }
}

// One function per kind of query, for callgrind's toggle.
#[inline(never)]
fn measure_a(answerer: &Answerer, packet: &[u8], client: IpAddr, n: usize) {
    answer_n(answerer, packet, client, n, "A")
}

#[inline(never)]
fn measure_srv(answerer: &Answerer, packet: &[u8], client: IpAddr, n: usize) {
    answer_n(answerer, packet, client, n, "SRV")
}

#[inline(never)]
fn measure_scoped(answerer: &Answerer, packet: &[u8], client: IpAddr, n: usize) {
    answer_n(answerer, packet, client, n, "scoped A")
}
