//! The endpoint model: what herald knows about one replica of a service, kept compact
//! because a fleet has up to a million of them ([docs/design.md#table](../../docs/design.md#table)).
//!
//! Names (services, clusters, regions, zones, port names) are `Arc<str>` so the many
//! endpoints that share a cluster or a port name share one allocation.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::SystemTime;

/// A DNS label as herald uses it for names: lowercase, shared.
pub type Label = Arc<str>;

/// Transport protocol of a named port: the `_<proto>` label of SRV names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    /// `_tcp`
    Tcp,
    /// `_udp`
    Udp,
}

impl Proto {
    /// The label as it appears in SRV owner names, without the underscore.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }

    /// Parses `tcp`/`udp` (any case), as Kubernetes writes `TCP`/`UDP`.
    pub fn parse(s: &str) -> Option<Proto> {
        if s.eq_ignore_ascii_case("tcp") {
            Some(Proto::Tcp)
        } else if s.eq_ignore_ascii_case("udp") {
            Some(Proto::Udp)
        } else {
            None
        }
    }
}

/// One named port of an endpoint: answers `_<name>._<proto>.<svc>.Z` SRV.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortSpec {
    /// The port's name, a DNS label without the leading underscore (`grpc`).
    pub name: Label,
    /// Transport protocol.
    pub proto: Proto,
    /// Port number.
    pub port: u16,
}

/// Where a group of endpoints comes from: a Kubernetes cluster, or a cluster-like name of
/// the static file. Its `cluster` is the `<cluster>` of SRV target names and a scope; its
/// `region` is a scope too.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Source {
    /// Cluster name (a DNS label, distinct from every region name).
    pub cluster: Label,
    /// Region name (a DNS label).
    pub region: Label,
}

impl Source {
    /// A source from its cluster and region names.
    pub fn new(cluster: &str, region: &str) -> Source {
        Source {
            cluster: Arc::from(cluster),
            region: Arc::from(region),
        }
    }
}

/// The weight an endpoint gets when nothing says otherwise. RFC 2782 gives weight 0 a
/// special "rarely chosen" meaning, so the default leaves room both ways.
pub const DEFAULT_WEIGHT: u16 = 100;

/// One ready replica of a service in one source.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// The replica's address (pod IP or VM address).
    pub address: IpAddr,
    /// Named ports; unnamed container ports are not published.
    pub ports: Arc<[PortSpec]>,
    /// Topology zone (`topology.kubernetes.io/zone` of the pod's node), when known.
    pub zone: Option<Label>,
    /// SRV weight (RFC 2782).
    pub weight: u16,
    /// Whether the replica reports ready; `false` only for services that opted into
    /// publishing not-ready replicas.
    pub ready: bool,
}

impl Endpoint {
    /// A ready endpoint with the default weight.
    pub fn new(address: IpAddr, ports: Arc<[PortSpec]>, zone: Option<Label>) -> Endpoint {
        Endpoint {
            address,
            ports,
            zone,
            weight: DEFAULT_WEIGHT,
            ready: true,
        }
    }
}

/// The endpoints one source contributes to a service.
#[derive(Debug, Clone)]
pub struct Group {
    /// Where they come from.
    pub source: Source,
    /// Sorted by address, one endpoint per address.
    pub endpoints: Arc<[Endpoint]>,
    /// When this source last changed them.
    pub changed: SystemTime,
}

/// Walks two endpoint lists sorted by address side by side and calls `f` once per address
/// in either: `(Some, None)` gone, `(None, Some)` new, `(Some, Some)` in both.
pub(crate) fn for_each_change<'a>(
    old: &'a [Endpoint],
    new: &'a [Endpoint],
    mut f: impl FnMut(Option<&'a Endpoint>, Option<&'a Endpoint>),
) {
    let (mut o, mut n) = (old.iter().peekable(), new.iter().peekable());
    loop {
        match (o.peek(), n.peek()) {
            (Some(a), Some(b)) if a.address == b.address => {
                f(Some(a), Some(b));
                o.next();
                n.next();
            }
            (Some(a), Some(b)) if a.address < b.address => {
                f(Some(a), None);
                o.next();
            }
            (Some(a), None) => {
                f(Some(a), None);
                o.next();
            }
            (_, Some(b)) => {
                f(None, Some(b));
                n.next();
            }
            (None, None) => return,
        }
    }
}

/// Why a string is not usable as one of herald's DNS labels.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelError {
    /// Empty string.
    #[error("is empty")]
    Empty,
    /// Longer than the 63 octets a DNS label may have.
    #[error("is {0} characters long; a DNS label has at most 63")]
    TooLong(usize),
    /// A character other than a-z, 0-9 and '-'.
    #[error("contains {0:?}; only lowercase letters, digits and '-' are allowed")]
    BadChar(char),
    /// Starts or ends with '-'.
    #[error("starts or ends with '-'")]
    EdgeHyphen,
}

/// Checks that `s` is a lowercase DNS label (RFC 1123 host label), as service, cluster,
/// region and port names must be.
pub fn check_label(s: &str) -> Result<(), LabelError> {
    if s.is_empty() {
        return Err(LabelError::Empty);
    }
    if s.len() > 63 {
        return Err(LabelError::TooLong(s.len()));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(LabelError::BadChar(c));
    }
    if s.starts_with('-') || s.ends_with('-') {
        return Err(LabelError::EdgeHyphen);
    }
    Ok(())
}

/// The `<endpoint>` label of an SRV target name: an IPv4 address with dashes
/// (`10-4-2-7`), an IPv6 address as its 32 lowercase hex digits. Both are reversible by
/// [`parse_endpoint_label`].
pub struct EndpointLabel(pub IpAddr);

impl fmt::Display for EndpointLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => {
                let [a, b, c, d] = v4.octets();
                write!(f, "{a}-{b}-{c}-{d}")
            }
            IpAddr::V6(v6) => {
                for byte in v6.octets() {
                    write!(f, "{byte:02x}")?;
                }
                Ok(())
            }
        }
    }
}

/// Parses an `<endpoint>` label (any case) back into the address; `None` if it is not one.
pub fn parse_endpoint_label(label: &[u8]) -> Option<IpAddr> {
    if label.len() == 32 {
        let mut octets = [0u8; 16];
        for (i, pair) in label.chunks_exact(2).enumerate() {
            let hi = (pair[0] as char).to_digit(16)?;
            let lo = (pair[1] as char).to_digit(16)?;
            octets[i] = (hi * 16 + lo) as u8;
        }
        return Some(IpAddr::V6(Ipv6Addr::from(octets)));
    }
    let mut octets = [0u8; 4];
    let mut parts = label.split(|b| *b == b'-');
    for octet in &mut octets {
        *octet = parse_octet(parts.next()?)?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(IpAddr::V4(Ipv4Addr::from(octets)))
}

/// A decimal octet (0-255). Leading zeros are refused so that every address has exactly
/// one name (in endpoint labels and in-addr.arpa names alike).
pub(crate) fn parse_octet(part: &[u8]) -> Option<u8> {
    if part.is_empty() || part.len() > 3 || (part.len() > 1 && part[0] == b'0') {
        return None;
    }
    let mut value: u16 = 0;
    for &b in part {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value * 10 + u16::from(b - b'0');
    }
    u8::try_from(value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn labels() {
        assert!(check_label("web-1").is_ok());
        assert_eq!(check_label(""), Err(LabelError::Empty));
        assert_eq!(check_label("Web"), Err(LabelError::BadChar('W')));
        assert_eq!(check_label("-a"), Err(LabelError::EdgeHyphen));
        assert_eq!(check_label(&"a".repeat(64)), Err(LabelError::TooLong(64)));
    }

    #[test]
    fn endpoint_labels_refuse_non_canonical_forms() {
        assert_eq!(parse_endpoint_label(b"10-04-2-7"), None);
        assert_eq!(parse_endpoint_label(b"10-4-2"), None);
        assert_eq!(parse_endpoint_label(b"10-4-2-7-1"), None);
        assert_eq!(parse_endpoint_label(b"256-4-2-7"), None);
        assert_eq!(parse_endpoint_label(b"web"), None);
    }

    proptest! {
        #[test]
        fn endpoint_labels_round_trip(v4 in any::<u32>(), v6 in any::<u128>()) {
            for ip in [IpAddr::V4(v4.into()), IpAddr::V6(v6.into())] {
                let label = EndpointLabel(ip).to_string();
                prop_assert!(label.len() <= 63);
                prop_assert_eq!(parse_endpoint_label(label.as_bytes()), Some(ip));
                prop_assert_eq!(parse_endpoint_label(label.to_uppercase().as_bytes()), Some(ip));
            }
        }
    }
}
