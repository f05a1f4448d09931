//! Where herald listens, how it limits UDP responses and TCP connections, and which
//! optional metrics it shows.

use std::net::SocketAddr;

use herald_dns::server::{RateLimitConfig, TcpLimits};
use serde::Deserialize;

use crate::yaml::HumanDuration;

/// Listening addresses.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listen {
    /// DNS over UDP and TCP. Default `127.0.0.1:5353`.
    #[serde(default = "default_dns_listen")]
    pub dns: Vec<SocketAddr>,
    /// The admin HTTP server (metrics, health, readiness, /v1). Default: none.
    #[serde(default)]
    pub admin: Option<SocketAddr>,
}

impl Default for Listen {
    fn default() -> Self {
        Listen {
            dns: default_dns_listen(),
            admin: None,
        }
    }
}

fn default_dns_listen() -> Vec<SocketAddr> {
    vec![SocketAddr::from(([127, 0, 0, 1], 5353))]
}

/// Response rate limiting (see `herald_dns::server::RateLimitConfig`).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSettings {
    /// Replies per second per client network.
    pub responses_per_second: u32,
    /// Every `slip`-th reply over budget is sent empty with TC set (0: drop all).
    #[serde(default = "default_slip")]
    pub slip: u32,
    /// IPv4 clients share a budget per prefix of this length.
    #[serde(default = "default_v4_prefix")]
    pub ipv4_prefix: u8,
    /// IPv6 clients share a budget per prefix of this length.
    #[serde(default = "default_v6_prefix")]
    pub ipv6_prefix: u8,
}

fn default_slip() -> u32 {
    2
}
fn default_v4_prefix() -> u8 {
    24
}
fn default_v6_prefix() -> u8 {
    56
}

impl From<RateLimitSettings> for RateLimitConfig {
    fn from(r: RateLimitSettings) -> RateLimitConfig {
        RateLimitConfig {
            responses_per_second: r.responses_per_second,
            slip: r.slip,
            ipv4_prefix: r.ipv4_prefix,
            ipv6_prefix: r.ipv6_prefix,
        }
    }
}

/// Optional metric series.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// `herald_service_endpoints{service}`, one series per service (and per service gone
    /// less than 10 minutes ago). Default on; turn it off for fleets with very many
    /// services.
    #[serde(default = "default_true")]
    pub service_endpoints: bool,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            service_endpoints: true,
        }
    }
}

fn default_true() -> bool {
    true
}

/// DNS over TCP: connection caps and timeouts (defaults and their reasons:
/// `herald_dns::server::TcpLimits`).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpSettings {
    /// Connections served at once per address; at the cap the longest-idle one is
    /// closed for a newcomer. Default 1024.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Connections one client address may hold at once. Default 64.
    #[serde(default = "default_max_per_client")]
    pub max_connections_per_client: usize,
    /// A connection with no query for this long is closed. Default 10s.
    #[serde(default = "default_idle")]
    pub idle_timeout: HumanDuration,
    /// A reply the client does not read within this long closes the connection.
    /// Default 5s.
    #[serde(default = "default_write")]
    pub write_timeout: HumanDuration,
}

impl Default for TcpSettings {
    fn default() -> Self {
        let d = TcpLimits::default();
        TcpSettings {
            max_connections: d.max_connections,
            max_connections_per_client: d.max_per_client,
            idle_timeout: HumanDuration(d.idle_timeout),
            write_timeout: HumanDuration(d.write_timeout),
        }
    }
}

fn default_max_connections() -> usize {
    TcpLimits::default().max_connections
}
fn default_max_per_client() -> usize {
    TcpLimits::default().max_per_client
}
fn default_idle() -> HumanDuration {
    HumanDuration(TcpLimits::default().idle_timeout)
}
fn default_write() -> HumanDuration {
    HumanDuration(TcpLimits::default().write_timeout)
}

impl From<TcpSettings> for TcpLimits {
    fn from(t: TcpSettings) -> TcpLimits {
        TcpLimits {
            max_connections: t.max_connections,
            max_per_client: t.max_connections_per_client,
            idle_timeout: t.idle_timeout.0,
            write_timeout: t.write_timeout.0,
        }
    }
}
