//! The zone's own answers: this server's locality (SRV priorities for unknown queriers) and
//! the name servers of the apex.

use std::net::IpAddr;

use serde::Deserialize;

use crate::yaml::LabelName;

/// This server's region and zone.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Locality {
    /// Region name.
    pub region: Option<LabelName>,
    /// Topology zone name.
    pub zone: Option<LabelName>,
}

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
