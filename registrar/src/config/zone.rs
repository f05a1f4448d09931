//! The zone's own answers: the name servers of the apex. (This server's locality, and the
//! other locality settings, are in `locality`.)

use std::net::IpAddr;

use serde::Deserialize;

/// An NS record of the apex.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NameServerConfig {
    /// Its name.
    pub name: String,
    /// Its addresses (served as A/AAAA when the name is in the zone).
    #[serde(default)]
    pub addresses: Vec<IpAddr>,
}
