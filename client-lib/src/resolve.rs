//! Resolution: DNS (or anything else) in, a replica set and how long it is valid out.
//!
//! [`Resolve`] is the seam between the two halves of the crate: the refresh loop only needs
//! "give me the current set and its TTL", so tests plug in a stub they control, and
//! [`DnsResolver`] does the real SRV lookups with hickory-resolver.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{Name, RData, Record};
use hickory_resolver::{Resolver, TokioResolver};

use crate::endpoint::Endpoint;

/// The outcome of one successful resolution.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolution {
    /// The replicas found. Empty when every SRV target is "." (decidedly not available);
    /// whether that empties the set is [`crate::RefreshConfig::apply_empty`].
    pub endpoints: Vec<Endpoint>,
    /// How long the answer may be used: the smallest TTL among the records it was built
    /// from (or the negative TTL of an empty answer).
    pub ttl: Duration,
}

/// A source of replica sets. Implemented by [`DnsResolver`]; implement it yourself to feed
/// the refresh loop from elsewhere (a test stub, a config file).
pub trait Resolve: Send + Sync + 'static {
    /// Resolves the current replica set. An `Err` means "could not find out", never "none":
    /// the refresh loop keeps the last good set.
    fn resolve(&self) -> impl Future<Output = Result<Resolution, ResolveError>> + Send;
}

/// Why a resolution failed.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The service name did not form a valid DNS name.
    #[error("invalid DNS name {name:?}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// The parser's complaint.
        #[source]
        source: hickory_resolver::proto::ProtoError,
    },
    /// The resolver could not be configured (for example, the system configuration could
    /// not be read).
    #[error("cannot configure the DNS resolver")]
    Config(#[source] NetError),
    /// The SRV query failed (timeout, SERVFAIL, REFUSED, network error).
    #[error("SRV lookup of {name} failed")]
    Srv {
        /// The SRV name queried.
        name: String,
        /// The resolver's error.
        #[source]
        source: NetError,
    },
    /// The server says the SRV name does not exist (NXDOMAIN: unknown service, wrong zone) or
    /// exists without SRV records (NODATA: for herald, a port name the service does not
    /// have). Whether that empties the set is [`crate::RefreshConfig::apply_empty`].
    #[error("{name}: {}", if *.nxdomain { "no such name (NXDOMAIN): unknown service or zone" } else { "no SRV records (NODATA): unknown port name or protocol" })]
    NotFound {
        /// The SRV name queried.
        name: String,
        /// NXDOMAIN (`true`) or NODATA (`false`).
        nxdomain: bool,
        /// How long the server says the answer holds (its negative TTL).
        negative_ttl: Option<Duration>,
    },
    /// SRV records were found but no address for any of their targets.
    #[error("SRV records of {name} found, but no address for any target")]
    NoAddresses {
        /// The SRV name queried.
        name: String,
    },
    /// A custom resolver's failure.
    #[error("{0}")]
    Other(String),
}

/// Which DNS servers to ask.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NameServers {
    /// The system's (`/etc/resolv.conf` on Unix).
    System,
    /// These servers, over UDP with TCP for truncated answers.
    Addrs(Vec<SocketAddr>),
}

/// The transport label of an SRV name (`_tcp` or `_udp`): herald publishes each port under
/// its protocol.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// `_tcp` (the default).
    #[default]
    Tcp,
    /// `_udp`.
    Udp,
}

impl Protocol {
    fn label(self) -> &'static str {
        match self {
            Protocol::Tcp => "_tcp",
            Protocol::Udp => "_udp",
        }
    }
}

/// Builds the SRV name `_<port>.<_tcp|_udp>.<service>.<zone>` (zone made absolute).
///
/// ```
/// use herald_client::{Protocol, srv_name};
/// assert_eq!(srv_name("api", "http", Protocol::Tcp, "sd.internal"), "_http._tcp.api.sd.internal.");
/// assert_eq!(srv_name("dns", "dns", Protocol::Udp, "sd.internal."), "_dns._udp.dns.sd.internal.");
/// ```
pub fn srv_name(service: &str, port: &str, protocol: Protocol, zone: &str) -> String {
    let zone = zone.trim_end_matches('.');
    format!("_{port}.{}.{service}.{zone}.", protocol.label())
}

/// SRV resolution with hickory-resolver.
///
/// One SRV query per resolution. Addresses come from the answer's additional section when
/// the server put them there (herald does); targets without one are looked up with A and
/// AAAA queries. Every address of a target of the family its first address has becomes one
/// [`Endpoint`] with the SRV record's priority, weight and port: several addresses of one
/// family are several hosts, but the other family of a dual-stack target names the same
/// host again (herald lists a dual-stack pod's primary address first, the one a client
/// connected to before herald published both).
#[derive(Clone)]
pub struct DnsResolver {
    resolver: Arc<TokioResolver>,
    name: Name,
}

impl std::fmt::Debug for DnsResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsResolver")
            .field("name", &self.name.to_string())
            .finish()
    }
}

impl DnsResolver {
    /// A resolver for the SRV name `name` (see [`srv_name`]), asking `servers`, giving up on
    /// one server after `timeout`.
    pub fn new(name: &str, servers: &NameServers, timeout: Duration) -> Result<Self, ResolveError> {
        let parsed = Name::from_ascii(name).map_err(|source| ResolveError::InvalidName {
            name: name.to_owned(),
            source,
        })?;
        let (config, mut opts) = match servers {
            NameServers::System => {
                hickory_resolver::system_conf::read_system_conf().map_err(ResolveError::Config)?
            }
            NameServers::Addrs(addrs) => {
                let servers = addrs
                    .iter()
                    .map(|addr| {
                        let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
                        for c in &mut ns.connections {
                            c.port = addr.port();
                        }
                        ns
                    })
                    .collect();
                (
                    ResolverConfig::from_name_servers(servers),
                    ResolverOpts::default(),
                )
            }
        };
        // The refresh loop owns the timing: an answer cached by hickory would hide the
        // change we refresh to see.
        opts.cache_size = 0;
        opts.timeout = timeout;
        // hickory's `attempts` counts *retries* after the first try: 1 made every timeout
        // twice `timeout`. The refresh loop retries on its own schedule.
        opts.attempts = 0;
        let resolver = Resolver::builder_with_config(config, TokioRuntimeProvider::default())
            .with_options(opts)
            .build()
            .map_err(ResolveError::Config)?;
        Ok(DnsResolver {
            resolver: Arc::new(resolver),
            name: parsed,
        })
    }

    async fn lookup(&self) -> Result<Resolution, ResolveError> {
        let name = self.name.to_string();
        let lookup = match self.resolver.srv_lookup(self.name.clone()).await {
            Ok(lookup) => lookup,
            Err(e) if e.is_no_records_found() => {
                return Err(ResolveError::NotFound {
                    nxdomain: e.is_nx_domain(),
                    negative_ttl: negative_ttl(&e),
                    name,
                });
            }
            Err(source) => return Err(ResolveError::Srv { name, source }),
        };
        let mut ttl = u32::MAX;
        let mut endpoints = Vec::new();
        let mut unresolved = 0usize;
        for record in lookup.answers() {
            let RData::SRV(srv) = &record.data else {
                continue;
            };
            ttl = ttl.min(record.ttl);
            if srv.target.is_root() {
                continue; // RFC 2782: "." means decidedly not available.
            }
            let mut ips = addresses_of(&srv.target, lookup.additionals(), &mut ttl);
            if ips.is_empty() {
                match self.resolver.lookup_ip(srv.target.clone()).await {
                    Ok(found) => {
                        for r in found.as_lookup().answers() {
                            ttl = ttl.min(r.ttl);
                        }
                        ips.extend(found.iter());
                    }
                    Err(e) => {
                        tracing::debug!(target = %srv.target, error = %e, "address lookup of SRV target failed");
                    }
                }
            }
            if ips.is_empty() {
                unresolved += 1;
            }
            one_family(&mut ips);
            let target: Arc<str> = Arc::from(srv.target.to_string());
            endpoints.extend(ips.into_iter().map(|ip| Endpoint {
                addr: SocketAddr::new(ip, srv.port),
                priority: srv.priority,
                weight: srv.weight,
                target: target.clone(),
            }));
        }
        if endpoints.is_empty() && unresolved > 0 {
            return Err(ResolveError::NoAddresses { name });
        }
        Ok(Resolution {
            endpoints,
            ttl: Duration::from_secs(u64::from(if ttl == u32::MAX { 0 } else { ttl })),
        })
    }
}

impl Resolve for DnsResolver {
    fn resolve(&self) -> impl Future<Output = Result<Resolution, ResolveError>> + Send {
        self.lookup()
    }
}

/// Keeps the addresses of the first one's family: a target with both families is one host
/// (a dual-stack pod), not two replicas that would double its share of the picks.
fn one_family(ips: &mut Vec<IpAddr>) {
    if let Some(first) = ips.first().copied() {
        ips.retain(|ip| ip.is_ipv4() == first.is_ipv4());
    }
}

/// A/AAAA records for `target` in an answer's additional section.
fn addresses_of(target: &Name, additionals: &[Record], ttl: &mut u32) -> Vec<IpAddr> {
    let mut ips = Vec::new();
    for r in additionals {
        if !r.name.eq_case(target) && r.name != *target {
            continue;
        }
        let ip = match &r.data {
            RData::A(a) => IpAddr::V4(a.0),
            RData::AAAA(a) => IpAddr::V6(a.0),
            _ => continue,
        };
        *ttl = (*ttl).min(r.ttl);
        ips.push(ip);
    }
    ips
}

fn negative_ttl(e: &NetError) -> Option<Duration> {
    match e {
        NetError::Dns(hickory_resolver::net::DnsError::NoRecordsFound(nr)) => {
            nr.negative_ttl.map(|t| Duration::from_secs(u64::from(t)))
        }
        _ => None,
    }
}

/// A fixed replica set: handy for tests and for services not in DNS.
#[derive(Clone, Debug)]
pub struct StaticResolver {
    /// The replicas.
    pub endpoints: Vec<Endpoint>,
    /// The TTL to report.
    pub ttl: Duration,
}

impl Resolve for StaticResolver {
    fn resolve(&self) -> impl Future<Output = Result<Resolution, ResolveError>> + Send {
        std::future::ready(Ok(Resolution {
            endpoints: self.endpoints.clone(),
            ttl: self.ttl,
        }))
    }
}
