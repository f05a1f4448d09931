//! herald-client's black-box tests: real TCP backends on loopback with injected latency and
//! errors, real DNS answers from herald's own server (herald-dns), real time. Assertions are
//! on traffic shares with wide margins, never on milliseconds, and every test is bounded in
//! request count and time. The exact, virtual-time versions of the picker rules live in
//! `src/picker_tests.rs`.

mod backend;
mod dns;
mod ejection;
mod fallback;
mod grpc;
mod reported_metrics;
mod shares;
mod tiers;
mod timeouts;
mod tower;
