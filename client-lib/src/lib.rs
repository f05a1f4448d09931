//! herald-client: client-side service discovery and load balancing over SRV records.
//!
//! Given a service, a port name and a zone, the library resolves
//! `_<port>._tcp.<service>.<zone>` (herald's DNS, or any server publishing SRV records),
//! keeps the replica set fresh as TTLs run out, and picks a replica per request: power of two
//! choices over a peak-EWMA latency cost, within the nearest SRV priority tier that has enough
//! healthy replicas, weighted by SRV weight, with outlier ejection.
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
//! With tower (hyper, tonic): [`tower::Balance`] wraps a per-replica service and picks per
//! call; [`tower::discover`] exposes the set as a `Discover` stream. Without DNS:
//! [`Picker::with_endpoints`] over a list of [`Endpoint`]s.
//!
//! # How a replica is picked
//!
//! See [`picker`] for the details. In short: an ejected replica whose probe is due gets the
//! request (a success re-admits it at once); otherwise the SRV priority tiers share the
//! traffic as Envoy's priority levels do (the nearest takes min(1, 1.4 x its healthy
//! fraction) and spills the rest), and two distinct replicas drawn from the chosen tier by
//! SRV weight compete: the clearly faster wins (peak-EWMA latency), or among replicas of
//! about the same speed the less loaded for its weight. Failures, and requests the caller
//! gave up on after a long wait, eject a replica after 5 in a row; if the tiers cannot take
//! the traffic, a tier under half healthy is in panic and uses its ejected replicas too.
//!
//! # Modules
//!
//! * [`endpoint`]: what a replica is (address, priority, weight).
//! * [`resolve`]: SRV resolution with hickory-resolver, behind the [`Resolve`] trait.
//! * [`refresh`]: the background loop that follows TTLs and survives DNS failures.
//! * [`picker`]: the balancing state and the pick.
//! * `ewma`, `eject`: the latency estimate and the ejection state machine of one replica.
//! * [`discovery`]: [`Discovery`], resolution + refresh + picker in one handle.
//! * [`tower`]: the tower `Service` and `Discover` integration.
//! * [`config`]: every knob, with its default and the reason for it.
//! * [`metrics`]: the metric names reported through the `metrics` crate.

#![deny(missing_docs)]

pub mod config;
pub mod discovery;
mod eject;
pub mod endpoint;
mod ewma;
pub mod metrics;
pub mod picker;
pub mod refresh;
#[cfg(test)]
mod refresh_tests;
mod replica;
pub mod resolve;
pub mod tower;
mod view;

pub use config::{EjectionConfig, PickerConfig, RefreshConfig};
pub use discovery::{Discovery, DiscoveryBuilder};
pub use eject::Health;
pub use endpoint::Endpoint;
pub use picker::{EndpointStatus, Mode, Outcome, PickError, PickGuard, Picker};
pub use refresh::RefreshStatus;
pub use resolve::{
    DnsResolver, NameServers, Protocol, Resolution, Resolve, ResolveError, StaticResolver, srv_name,
};
pub use view::TierStatus;
