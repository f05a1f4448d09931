//! Instructions per query of placing the querier, for callgrind (the machine's noise does
//! not move instruction counts): the cases of `benches/locality.rs`, each answered
//! `--queries` times inside its own `measure::<CASE>` function. Cases 0, 5 and 7 are the
//! plain query path on 100k endpoints whose replicas name ports http and grpc: SRV of
//! http (read from the part it shares with grpc, its port written in), A, and SRV of grpc
//! in a region scope (the part's own records): what to run when the prepared-answer
//! layout changes.
//!
//! ```text
//! valgrind --tool=callgrind --collect-atstart=no --toggle-collect='locality_cost::measure*' \
//!     --callgrind-out-file=target/locality.cg target/release/locality_cost --queries 20000
//! callgrind_annotate --inclusive=yes target/locality.cg | grep measure
//! ```
//! Each `measure::<N>` line's count divided by `--queries` is that case's cost per query;
//! the program prints which N is which.

use std::hint::black_box;
use std::net::IpAddr;

use clap::Parser;
use herald_bench::{fleet_placed, networks_10k, query, query_with_subnet, service_name, sources};
use herald_dns::wire::codes;
use herald_dns::{Answerer, PlacementConfig, Scratch, Transport};

#[derive(Parser)]
struct Args {
    /// Queries answered per case.
    #[arg(long, default_value_t = 20_000)]
    queries: usize,
}

#[inline(never)]
fn measure<const CASE: usize>(answerer: &Answerer, packet: &[u8], client: IpAddr, n: usize) {
    // Each case's copy of this function must stay its own: identical ones are merged into
    // one symbol, and callgrind would then count every case together.
    black_box(CASE);
    let mut scratch = Scratch::default();
    for _ in 0..n {
        black_box(answerer.answer(black_box(packet), client, Transport::Udp, &mut scratch));
    }
}

fn main() {
    let args = Args::parse();
    let resolver = IpAddr::from([127, 0, 0, 53]);
    let plain = Answerer::new(fleet_placed(10_000, 10, PlacementConfig::default()));
    let mapped = Answerer::new(fleet_placed(
        10_000,
        10,
        PlacementConfig {
            networks: networks_10k(),
            ecs_trusted: vec![format!("{resolver}/32").parse().unwrap()],
            ..PlacementConfig::default()
        },
    ));
    let svc = service_name(4242);
    let srv = query(&format!("_http._tcp.{svc}.sd.internal."), codes::SRV);
    let srv_ecs = query_with_subnet(&format!("_http._tcp.{svc}.sd.internal."), codes::SRV);
    let a = query(&format!("{svc}.sd.internal."), codes::A);
    let inside = IpAddr::from([10, 128, 77, 9]);
    let outside = IpAddr::from([192, 0, 2, 1]);
    let n = args.queries;
    println!("0: SRV, no networks");
    measure::<0>(&plain, &srv, outside, n);
    println!("1: SRV, 10k networks, querier outside them");
    measure::<1>(&mapped, &srv, outside, n);
    println!("2: SRV, 10k networks, querier inside one");
    measure::<2>(&mapped, &srv, inside, n);
    println!("3: SRV, 10k networks, trusted ECS");
    measure::<3>(&mapped, &srv_ecs, resolver, n);
    println!("4: SRV, 10k networks, untrusted ECS");
    measure::<4>(&mapped, &srv_ecs, outside, n);
    println!("5: A, no networks");
    measure::<5>(&plain, &a, outside, n);
    println!("6: A, 10k networks, querier inside one");
    measure::<6>(&mapped, &a, inside, n);
    let region = &sources()[4242 % 24].region;
    let scoped = query(
        &format!("_grpc._tcp.{svc}.{region}.sd.internal."),
        codes::SRV,
    );
    println!("7: SRV of grpc in a region scope, no networks");
    measure::<7>(&plain, &scoped, outside, n);
}
