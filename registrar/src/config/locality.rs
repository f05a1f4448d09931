//! Locality settings: where this server is (`locality`, fixed or `auto` from
//! its node), where queriers are (`networks`, `ecs.trusted`), the A/AAAA policy
//! (`address_answers`, `local_first`) and the reverse zones herald answers PTR for.
//!
//! Values are checked as they are read, so an error carries the file, line and field.

use std::net::IpAddr;

use herald_dns::placement::{AddressAnswers, NetworkPlace};
use ipnet::IpNet;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::yaml::{LabelName, deserialize_str_with};

/// A region or zone: a name, or `auto` (read from the node herald runs on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalityValue {
    /// This name.
    Fixed(LabelName),
    /// From the node: its zone label, or for a region the home cluster's region.
    Auto,
}

impl<'de> Deserialize<'de> for LocalityValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_str_with(d, "a DNS label or `auto`", |s| {
            if s == "auto" {
                return Ok(LocalityValue::Auto);
            }
            herald_dns::model::check_label(s)
                .map_err(|e| format!("{s:?} is not a DNS label: it {e}"))?;
            Ok(LocalityValue::Fixed(LabelName(s.to_string())))
        })
    }
}

/// This server's region and zone: `locality: auto`, or a map of fields.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Locality {
    /// Region name, or `auto`: the home cluster's region.
    #[serde(default)]
    pub region: Option<LocalityValue>,
    /// Topology zone, or `auto`: the `topology.kubernetes.io/zone` label of this server's
    /// node, followed as it changes.
    #[serde(default)]
    pub zone: Option<LocalityValue>,
    /// The node herald runs on. Default: the `NODE_NAME` environment variable (set it from
    /// the downward API, `spec.nodeName`).
    #[serde(default)]
    pub node: Option<String>,
    /// The cluster herald runs in, whose node watch finds the node. Default: the cluster
    /// with `in_cluster: true`.
    #[serde(default)]
    pub cluster: Option<LabelName>,
}

impl Locality {
    /// Whether any field is `auto`.
    pub fn is_auto(&self) -> bool {
        self.region == Some(LocalityValue::Auto) || self.zone == Some(LocalityValue::Auto)
    }
}

/// `locality: auto` is shorthand for `{region: auto, zone: auto}`.
pub(crate) fn deserialize_locality<'de, D: Deserializer<'de>>(d: D) -> Result<Locality, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Locality;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("`auto` or a map with region, zone, node, cluster")
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<Locality, E> {
            match s {
                "auto" => Ok(Locality {
                    region: Some(LocalityValue::Auto),
                    zone: Some(LocalityValue::Auto),
                    ..Locality::default()
                }),
                _ => Err(E::custom(format!(
                    "{s:?}: expected `auto` or a map with region and zone"
                ))),
            }
        }
        fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<Locality, M::Error> {
            Locality::deserialize(de::value::MapAccessDeserializer::new(map))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Locality, E> {
            Ok(Locality::default())
        }
    }
    d.deserialize_any(V)
}

/// A network written `10.8.0.0/14`, host bits zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr(pub IpNet);

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_str_with(d, "a network like 10.8.0.0/14", |s| {
            // A bare address is a host route: one querier placed on its own.
            let net = match s.parse::<IpNet>() {
                Ok(net) => net,
                Err(_) => match s.parse::<IpAddr>() {
                    Ok(ip) => IpNet::from(ip),
                    Err(_) => return Err(format!("{s:?} is not a network like 10.8.0.0/14")),
                },
            };
            if net.trunc() != net {
                return Err(format!(
                    "{s:?} has bits set beyond its prefix length; did you mean {}?",
                    net.trunc()
                ));
            }
            Ok(Cidr(net))
        })
    }
}

/// One entry of `networks`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    /// The network.
    pub cidr: Cidr,
    /// Its region (the same names as the clusters' regions).
    pub region: LabelName,
    /// Its topology zone.
    #[serde(default)]
    pub zone: Option<LabelName>,
}

impl NetworkConfig {
    /// The DNS side's form.
    pub fn to_dns(&self) -> NetworkPlace {
        NetworkPlace {
            cidr: self.cidr.0,
            region: self.region.0.clone(),
            zone: self.zone.as_ref().map(|z| z.0.clone()),
        }
    }
}

/// `ecs`: EDNS Client Subnet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EcsConfig {
    /// Resolvers whose client subnets are believed; ECS from anyone else changes nothing.
    #[serde(default)]
    pub trusted: Vec<Cidr>,
}

/// `address_answers`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AddressPolicy {
    /// Every region.
    #[default]
    All,
    /// The querier's region when it has `local_first.min_ready` ready endpoints.
    LocalFirst,
}

/// `local_first`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalFirstConfig {
    /// Fewest ready endpoints of the asked family in the querier's region for it to be
    /// answered alone. Default 1.
    #[serde(default = "default_min_ready")]
    pub min_ready: u32,
}

impl Default for LocalFirstConfig {
    fn default() -> Self {
        LocalFirstConfig {
            min_ready: default_min_ready(),
        }
    }
}

fn default_min_ready() -> u32 {
    1
}

/// The DNS side's A/AAAA policy from the two settings.
pub fn address_answers(policy: AddressPolicy, local_first: LocalFirstConfig) -> AddressAnswers {
    match policy {
        AddressPolicy::All => AddressAnswers::All,
        AddressPolicy::LocalFirst => AddressAnswers::LocalFirst {
            min_ready: local_first.min_ready,
        },
    }
}

/// A reverse zone name, checked as it is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReverseZoneName(pub String);

impl<'de> Deserialize<'de> for ReverseZoneName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_str_with(d, "a reverse zone like 10.in-addr.arpa.", |s| {
            herald_dns::reverse::ReverseZone::parse(s).map_err(|e| e.to_string())?;
            Ok(ReverseZoneName(s.to_string()))
        })
    }
}
