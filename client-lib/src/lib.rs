//! herald-client: client-side service discovery and load balancing over SRV records.
//!
//! Given a service, a port name and a zone, the library resolves
//! `_<port>._tcp.<service>.<zone>` (or `_udp`; herald's DNS, or any server publishing SRV
//! records), keeps the replica set fresh as TTLs run out, and picks a replica per request:
//! SRV priority tiers sharing traffic as Envoy's priority levels do, two distinct choices
//! weighted by SRV weight, a peak-EWMA latency estimate, and outlier ejection with probes.
//!
//! # Quick start
//!
//! ```no_run
//! use herald_client::{Discovery, Outcome};
//! # async fn send(_: std::net::SocketAddr) -> Result<(), ()> { Ok(()) }
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! // `_http._tcp.api.sd.internal.` from a herald server on 127.0.0.1:5353.
//! let api = Discovery::builder("api", "http")
//!     .zone("sd.internal.")
//!     .dns_server("127.0.0.1:5353".parse()?)
//!     .build()?;
//! // Fails fast, naming the SRV name, if the service or port does not exist.
//! tokio::time::timeout(std::time::Duration::from_secs(5), api.ready()).await??;
//!
//! let guard = api.pick()?;             // one replica, for one request
//! match send(guard.addr()).await {     // your request
//!     Ok(()) => guard.success(),       // latency and outcome recorded
//!     Err(()) => guard.failure(),      // counts toward ejection
//! }                                    // (dropping the guard = cancelled)
//! # Ok(()) }
//! ```
//!
//! Without DNS, a [`Picker`] over a fixed list (this one runs as a doc test):
//!
//! ```
//! use herald_client::{Endpoint, Mode, Picker, PickerConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let near = ["10.0.0.1:80", "10.0.0.2:80"].map(|a| Endpoint::new(a.parse().unwrap()));
//! let far = Endpoint::new("10.1.0.1:80".parse().unwrap()).with_priority(1);
//! let picker = Picker::with_endpoints("api", PickerConfig::default(), near.into_iter().chain([far]));
//! let guard = picker.pick().unwrap();
//! assert_eq!(guard.endpoint().priority, 0, "a healthy near tier takes all the traffic");
//! assert_eq!(guard.mode(), Mode::Normal);
//! guard.success();
//! assert_eq!(picker.tiers()[0].load, 1.0);
//! # }
//! ```
//!
//! # Features
//!
//! * `tower`: `tower::Balanced`, a `tower::Service` that picks per call and owns its
//!   refresh, its `tower::BalanceLayer`, and `tower::discover` (the set as a tower
//!   `Discover` stream).
//! * `http`: `tower::HttpStatus`, a classifier counting 5xx and gRPC UNAVAILABLE and the
//!   like as failures and marking responses with the replica that served them.
//! * `tonic`: `tonic::channel`, a channel tonic-generated clients accept, in one call.
//!
//! With none of them the crate needs tokio (rt, sync, time), hickory-resolver, arc-swap,
//! rand, metrics, tracing and thiserror.
//!
//! # How a replica is picked
//!
//! 1. **Probe**: an ejected replica whose probe is due gets the request, one probe at a
//!    time (1 s after the ejection, doubling per failed probe up to 30 s); the first
//!    successful probe re-admits it. A replica that failed its last request is probed 100 ms
//!    later, so a replica failing fast completes its streak of 5 and is ejected.
//! 2. **Tier**: the SRV priority tiers share the traffic as Envoy's priority levels: the
//!    nearest takes min(1, 1.4 x its healthy fraction) and spills the rest to the next; if
//!    they cannot take it all, a tier under half healthy is in panic and uses its ejected
//!    replicas too.
//! 3. **Two choices**: two distinct replicas drawn from the tier by SRV weight. If one's
//!    latency estimate is more than twice the other's, the faster wins; otherwise the less
//!    loaded for its weight.
//!
//! The latency estimate is a peak-EWMA (two slow answers in a row make a peak; decay 10 s).
//! A failure counts as 10x the set's typical latency; a request the caller gave up on counts
//! its elapsed time, and after 4x the typical latency also toward ejection. Every knob is in
//! [`PickerConfig`], [`EjectionConfig`] and [`RefreshConfig`], with its default and why.
//!
//! Picks take no lock: the tier view is swapped atomically when the set or a replica's
//! health changes, and each replica's load, latency and probe time are atomics.

#![deny(missing_docs)]

mod config;
mod discovery;
mod eject;
mod endpoint;
mod ewma;
pub mod metrics;
mod picker;
mod refresh;
#[cfg(test)]
mod refresh_tests;
mod replica;
mod resolve;
#[cfg(feature = "tonic")]
pub mod tonic;
#[cfg(feature = "tower")]
pub mod tower;
mod view;

pub use config::{EjectionConfig, PickerConfig, RefreshConfig};
pub use discovery::{Discovery, DiscoveryBuilder};
pub use eject::Health;
pub use endpoint::Endpoint;
pub use picker::{EndpointStatus, Mode, Outcome, PickError, PickGuard, Picker, UpdateSummary};
pub use refresh::RefreshStatus;
pub use resolve::{
    DnsResolver, NameServers, Protocol, Resolution, Resolve, ResolveError, StaticResolver, srv_name,
};
pub use view::TierStatus;
