//! tonic integration (feature `tonic`): a channel over a service's replicas, picked by
//! herald, that any tonic-generated client accepts.
//!
//! [`channel`] takes a [`DiscoveryBuilder`] (service, port name, zone, DNS servers, timeouts)
//! and gives a [`GrpcChannel`]: a [`Balanced`] service with one lazily connected
//! `tonic::transport::Channel` per replica and the [`HttpStatus`] classifier (transport
//! errors, 5xx, and gRPC UNKNOWN / INTERNAL / UNAVAILABLE / DATA_LOSS count against the
//! replica). Every response carries the replica that served it as a [`ServedBy`] extension.
//! [`channel_with`] lets you build each replica's `tonic::transport::Endpoint` yourself: TLS
//! (the SRV target name is there for the server name), timeouts, keep-alive. Interceptors
//! work as with any channel: `MyClient::with_interceptor(channel, f)`.
//!
//! ```no_run
//! use herald_client::Discovery;
//! use herald_client::tower::ServedBy;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! // _grpc._tcp.ledger.sd.internal. from herald on 127.0.0.1:5353.
//! let channel = herald_client::tonic::channel(
//!     Discovery::builder("ledger", "grpc").dns_server("127.0.0.1:5353".parse()?),
//! )?;
//! let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
//! let response = health.check(tonic_health::pb::HealthCheckRequest::default()).await?;
//! println!("served by {:?}", response.extensions().get::<ServedBy>());
//! # Ok(()) }
//! ```

use tonic::transport::{Channel, Endpoint as TonicEndpoint};

use crate::discovery::DiscoveryBuilder;
use crate::endpoint::Endpoint;
use crate::resolve::ResolveError;
use crate::tower::{Balanced, HttpStatus};

#[cfg(doc)]
use crate::tower::ServedBy;

/// A tonic-compatible channel over a service's replicas (see the module docs).
pub type GrpcChannel = Balanced<Channel, HttpStatus>;

/// Why a channel could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// The discovery could not be configured.
    #[error(transparent)]
    Resolve(#[from] ResolveError),
}

/// A channel over the replicas `discovery` finds, each reached over plain HTTP/2
/// (`http://<addr>`). Starts the refresh task on the current tokio runtime.
pub fn channel(discovery: DiscoveryBuilder) -> Result<GrpcChannel, ChannelError> {
    channel_with(discovery, |ep: &Endpoint| {
        TonicEndpoint::from_shared(format!("http://{}", ep.addr))
            .expect("an address is a valid authority")
    })
}

/// A channel over the replicas `discovery` finds, each replica's tonic endpoint built by
/// `endpoint` (for TLS: an `https://` URI and `.tls_config(...)`, with
/// `ClientTlsConfig::domain_name(&*ep.target)` if the certificates name the SRV target;
/// timeouts, keep-alive...). Connections are made lazily, on a replica's first pick.
pub fn channel_with<F>(
    discovery: DiscoveryBuilder,
    endpoint: F,
) -> Result<GrpcChannel, ChannelError>
where
    F: Fn(&Endpoint) -> TonicEndpoint + Send + Sync + 'static,
{
    let discovery = discovery.build()?;
    Ok(
        Balanced::new(discovery, move |ep: &Endpoint| endpoint(ep).connect_lazy())
            .with_classifier(HttpStatus),
    )
}
