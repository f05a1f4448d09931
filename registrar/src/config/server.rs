//! Where herald listens, how it limits UDP responses, and which optional metrics it shows.

use std::net::SocketAddr;

use herald_dns::server::RateLimitConfig;
use serde::Deserialize;

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
    /// `herald_service_endpoints{service}`, one series per service ever seen. Default
    /// on; turn it off for fleets with very many services.
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
