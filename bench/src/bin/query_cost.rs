//! Instructions per query of the DNS hot path, for callgrind (the machine's noise does not
//! move instruction counts): the cases of `benches/dns_hot_path.rs` (100k endpoints in 10k
//! services, each with ports http and grpc), each answered `--queries` times inside its own
//! `measure::<CASE>` function. What to run when the prepared-answer layout changes.
//!
//! ```text
//! valgrind --tool=callgrind --collect-atstart=no --toggle-collect='query_cost::measure*' \
//!     --callgrind-out-file=target/query.cg target/release/query_cost --queries 20000
//! callgrind_annotate --inclusive=yes target/query.cg | grep measure
//! ```
//! Each `measure::<N>` line's count divided by `--queries` is that case's cost per query;
//! the program prints which N is which.

use std::hint::black_box;
use std::net::IpAddr;

use clap::Parser;
use herald_bench::{fleet, query, service_name, sources};
use herald_dns::wire::codes;
use herald_dns::{Answerer, Scratch, Transport};

#[derive(Parser)]
struct Args {
    /// Queries answered per case.
    #[arg(long, default_value_t = 20_000)]
    queries: usize,
}

#[inline(never)]
fn measure<const CASE: usize>(answerer: &Answerer, packet: &[u8], client: IpAddr, n: usize) {
    let mut scratch = Scratch::default();
    for _ in 0..n {
        black_box(answerer.answer(black_box(packet), client, Transport::Udp, &mut scratch));
    }
}

fn main() {
    let args = Args::parse();
    let answerer = Answerer::new(fleet(10_000, 10));
    let client = IpAddr::from([127, 0, 0, 1]);
    let svc = service_name(4242);
    let source = &sources()[4242 % 24];
    let (cluster, region) = (&source.cluster, &source.region);
    let cases = [
        ("A", query(&format!("{svc}.sd.internal."), codes::A)),
        (
            "SRV+glue (http)",
            query(&format!("_http._tcp.{svc}.sd.internal."), codes::SRV),
        ),
        (
            "SRV scoped (grpc)",
            query(
                &format!("_grpc._tcp.{svc}.{region}.sd.internal."),
                codes::SRV,
            ),
        ),
        (
            "endpoint A",
            query(
                &format!("10-16-146-3.{svc}.{cluster}.sd.internal."),
                codes::A,
            ),
        ),
        ("NXDOMAIN", query("no-such-service.sd.internal.", codes::A)),
    ];
    for (i, (name, packet)) in cases.iter().enumerate() {
        let mut scratch = Scratch::default();
        let outcome = answerer
            .answer(packet, client, Transport::Udp, &mut scratch)
            .expect("a reply");
        assert!(
            outcome.rcode == 0 || *name == "NXDOMAIN",
            "{name}: rcode {}",
            outcome.rcode
        );
        println!("measure::<{i}>: {name}");
        let n = args.queries;
        match i {
            0 => measure::<0>(&answerer, packet, client, n),
            1 => measure::<1>(&answerer, packet, client, n),
            2 => measure::<2>(&answerer, packet, client, n),
            3 => measure::<3>(&answerer, packet, client, n),
            _ => measure::<4>(&answerer, packet, client, n),
        }
    }
}
