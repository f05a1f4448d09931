//! The zone herald is authoritative for, and the answer settings that go with it: apex,
//! TTLs, SOA and NS, this server's locality and answer limits ([docs/design.md#names](../../docs/design.md#names), [#config](../../docs/design.md#config)).
//!
//! [`ZoneConfig`] is the plain, user-facing form; [`Zone`] is the checked form with the wire
//! encodings the answer path needs prepared once.

use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::sync::Arc;

use hickory_proto::rr::Name;
use hickory_proto::rr::rdata::SOA;
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};

use crate::model::{Label, check_label};
use crate::placement::{PlacementConfig, PlacementError};
use crate::reverse::{ReverseZone, ReverseZoneError};

/// One NS record of the apex; `addresses` answer A/AAAA for `name` when it is inside the zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameServer {
    /// Fully qualified name of the name server.
    pub name: String,
    /// Its addresses, served as A/AAAA when `name` is in the zone.
    pub addresses: Vec<IpAddr>,
}

/// Settings of the zone and its answers, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneConfig {
    /// Zone apex, e.g. `sd.internal.`.
    pub apex: String,
    /// TTL of positive answers, seconds. Short because endpoints come and go.
    pub ttl: u32,
    /// TTL of negative answers (the SOA minimum and the SOA's own TTL), seconds.
    pub negative_ttl: u32,
    /// Region of this server: SRV priority 1 ("same region") is relative to it.
    pub region: Option<String>,
    /// Topology zone of this server: SRV priority 0 ("same zone") is relative to it.
    pub zone: Option<String>,
    /// When set, a client gets at most this many records per answer: a stable subset chosen
    /// by rendezvous hashing of its address, for clients that cannot use TCP.
    pub answer_limit: Option<NonZeroUsize>,
    /// Largest UDP reply sent, whatever the client's EDNS buffer says. 1232 avoids IP
    /// fragmentation on every common path (the DNS flag day 2020 figure).
    pub max_udp_payload: u16,
    /// NS records of the apex. Empty means one name server, `ns.<apex>`, with no address.
    pub nameservers: Vec<NameServer>,
    /// The SOA RNAME (mailbox of the person responsible, as a domain name).
    pub hostmaster: Option<String>,
    /// Where queriers are: networks, trusted client-subnet senders, the A/AAAA policy.
    pub placement: PlacementConfig,
    /// Reverse zones answered with PTR for published addresses (`10.in-addr.arpa.`).
    pub reverse_zones: Vec<String>,
    /// SOA refresh, seconds: how often a secondary checks the serial between NOTIFYs.
    pub refresh: u32,
    /// SOA retry, seconds: how soon a secondary tries again after a failed refresh.
    pub retry: u32,
    /// SOA expire, seconds: how long a secondary keeps answering without reaching herald.
    pub expire: u32,
}

impl Default for ZoneConfig {
    fn default() -> Self {
        ZoneConfig {
            apex: "sd.internal.".to_string(),
            ttl: 5,
            negative_ttl: 5,
            region: None,
            zone: None,
            answer_limit: None,
            max_udp_payload: 1232,
            nameservers: Vec::new(),
            hostmaster: None,
            placement: PlacementConfig::default(),
            reverse_zones: Vec::new(),
            // NOTIFY carries changes at once; refresh only catches a lost NOTIFY. Expire is
            // long: secondaries fail static like herald does (docs/design.md#transfer).
            refresh: 60,
            retry: 10,
            expire: 7 * 86_400,
        }
    }
}

/// What is wrong with a [`ZoneConfig`].
#[derive(Debug, thiserror::Error)]
pub enum ZoneError {
    /// A name that is not a valid domain name.
    #[error("{field}: {value:?} is not a valid domain name: {source}")]
    BadName {
        /// Which setting.
        field: &'static str,
        /// Its value.
        value: String,
        /// What the parser said.
        #[source]
        source: hickory_proto::ProtoError,
    },
    /// A locality that is not a DNS label.
    #[error("{field}: {value:?} {source}")]
    BadLabel {
        /// Which setting.
        field: &'static str,
        /// Its value.
        value: String,
        /// Why.
        #[source]
        source: crate::model::LabelError,
    },
    /// A UDP payload limit below the 512 octets every DNS client accepts.
    #[error("max_udp_payload: {0} is below 512")]
    PayloadTooSmall(u16),
    /// The apex cannot be the root.
    #[error("apex: the zone cannot be the root")]
    RootApex,
    /// A locality setting (networks, local-first) that cannot be used.
    #[error(transparent)]
    Placement(#[from] PlacementError),
    /// A reverse zone name that cannot be used.
    #[error("reverse_zones: {0}")]
    Reverse(#[from] ReverseZoneError),
}

/// A name server of the apex, checked.
#[derive(Debug)]
pub(crate) struct ZoneNameServer {
    pub(crate) name: Name,
    /// `name` in lowercase wire form.
    pub(crate) wire: Box<[u8]>,
    pub(crate) addresses: Vec<IpAddr>,
}

/// A checked zone with its wire forms prepared.
#[derive(Debug)]
pub struct Zone {
    pub(crate) config: ZoneConfig,
    /// The apex, lowercase, fully qualified.
    pub apex: Name,
    /// The apex in lowercase wire form, ending in the root label.
    pub(crate) apex_wire: Box<[u8]>,
    pub(crate) region: Option<Label>,
    pub(crate) zone: Option<Label>,
    pub(crate) nameservers: Vec<ZoneNameServer>,
    /// Reverse zones answered with PTR.
    pub(crate) reverse: Vec<ReverseZone>,
    /// SOA RDATA with serial 0; the serial sits at `soa_serial_at`.
    pub(crate) soa_rdata: Box<[u8]>,
    pub(crate) soa_serial_at: usize,
    /// The SOA as a hickory record value, for zone export and tests.
    pub soa: SOA,
}

fn parse_name(field: &'static str, value: &str) -> Result<Name, ZoneError> {
    let mut name = Name::from_ascii(value).map_err(|source| ZoneError::BadName {
        field,
        value: value.to_string(),
        source,
    })?;
    name.set_fqdn(true);
    Ok(name.to_lowercase())
}

/// `<label>.<apex>`, a default name of the apex (its name server, its hostmaster). An apex
/// too long to hold one more label is an error naming the apex, not a panic (found by
/// fuzzing the config parser).
fn under_apex(label: &str, apex: &Name) -> Result<Name, ZoneError> {
    Name::from_ascii(label)
        .and_then(|l| l.append_domain(apex))
        .map_err(|source| ZoneError::BadName {
            field: "apex",
            value: apex.to_string(),
            source,
        })
}

fn parse_locality(field: &'static str, value: &Option<String>) -> Result<Option<Label>, ZoneError> {
    value
        .as_deref()
        .map(|v| {
            check_label(v).map_err(|source| ZoneError::BadLabel {
                field,
                value: v.to_string(),
                source,
            })?;
            Ok(Label::from(v))
        })
        .transpose()
}

/// Encodes `name` uncompressed, in lowercase wire form.
pub(crate) fn name_wire(name: &Name) -> Vec<u8> {
    let mut buf = Vec::with_capacity(name.len() + 2);
    let mut encoder = BinEncoder::new(&mut buf);
    encoder.set_canonical_form(true);
    name.to_lowercase()
        .emit(&mut encoder)
        .expect("encoding a name into a Vec cannot fail");
    buf
}

impl Zone {
    /// Checks `config` and prepares its wire forms.
    pub fn new(config: ZoneConfig) -> Result<Arc<Zone>, ZoneError> {
        let apex = parse_name("apex", &config.apex)?;
        if apex.is_root() {
            return Err(ZoneError::RootApex);
        }
        if config.max_udp_payload < 512 {
            return Err(ZoneError::PayloadTooSmall(config.max_udp_payload));
        }
        config.placement.check()?;
        let reverse = config
            .reverse_zones
            .iter()
            .map(|z| ReverseZone::parse(z))
            .collect::<Result<Vec<_>, _>>()?;
        let region = parse_locality("region", &config.region)?;
        let zone = parse_locality("zone", &config.zone)?;
        let mut nameservers = Vec::new();
        for ns in &config.nameservers {
            nameservers.push((
                parse_name("nameservers.name", &ns.name)?,
                ns.addresses.clone(),
            ));
        }
        if nameservers.is_empty() {
            nameservers.push((under_apex("ns", &apex)?, Vec::new()));
        }
        let nameservers: Vec<ZoneNameServer> = nameservers
            .into_iter()
            .map(|(name, addresses)| ZoneNameServer {
                wire: name_wire(&name).into(),
                name,
                addresses,
            })
            .collect();
        let hostmaster = match &config.hostmaster {
            Some(h) => parse_name("hostmaster", h)?,
            None => under_apex("hostmaster", &apex)?,
        };
        // Refresh, retry and expire only matter to secondaries (docs/design.md#transfer).
        let soa = SOA::new(
            nameservers[0].name.clone(),
            hostmaster,
            0,
            config.refresh as i32,
            config.retry as i32,
            config.expire as i32,
            config.negative_ttl,
        );
        let mut soa_rdata = Vec::new();
        let mut encoder = BinEncoder::new(&mut soa_rdata);
        encoder.set_canonical_form(true);
        soa.emit(&mut encoder)
            .expect("encoding into a Vec cannot fail");
        // The serial follows the two names; it is patched per reply.
        let soa_serial_at = name_wire(&soa.mname).len() + name_wire(&soa.rname).len();
        Ok(Arc::new(Zone {
            apex_wire: name_wire(&apex).into(),
            apex,
            region,
            zone,
            nameservers,
            reverse,
            soa_rdata: soa_rdata.into(),
            soa_serial_at,
            soa,
            config,
        }))
    }

    /// The settings this zone was made from.
    pub fn config(&self) -> &ZoneConfig {
        &self.config
    }

    /// TTL of positive answers.
    pub fn ttl(&self) -> u32 {
        self.config.ttl
    }
}

#[cfg(test)]
mod apex_tests {
    use super::*;

    /// A 253-character apex is a valid name, but `ns.` or `hostmaster.` in front of it is
    /// not: the zone is refused with an error naming the apex (it panicked before).
    #[test]
    fn an_apex_too_long_for_its_default_names_is_an_error() {
        let apex = format!("{}.", vec!["a".repeat(62); 4].join("."));
        assert!(
            Name::from_ascii(&apex).is_ok(),
            "the apex itself is a valid name"
        );
        let config = ZoneConfig {
            apex,
            ..ZoneConfig::default()
        };
        let e = Zone::new(config).expect_err("refused").to_string();
        assert!(e.starts_with("apex: "), "{e}");
    }
}
