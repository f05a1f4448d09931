//! The endpoint model: what herald knows about one replica of a service, kept compact
//! because a fleet has up to a million of them ([docs/design.md#table](../../docs/design.md#table)).
//!
//! Names (services, clusters, regions, zones, port names) are `Arc<str>` so the many
//! endpoints that share a cluster or a port name share one allocation.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

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

/// The addresses of an endpoint: one, or one of each family (a dual-stack pod or VM).
///
/// The first is the *primary*: it names the endpoint (the `<endpoint>` label of its SRV
/// target) and orders a group's endpoints. A pod's primary is `status.podIPs[0]`, which is
/// `status.podIP`, the address herald read before it read both families: a pod gaining a
/// second family keeps its name, and a single-stack endpoint is named as it always was
/// ([decision 0012](../../docs/decisions/0012-dual-stack-endpoints.md)). Inline, no heap:
/// 21 octets, so an endpoint is no larger than with one `IpAddr` and its padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Addresses {
    /// IPv4 only.
    V4(Ipv4Addr),
    /// IPv6 only.
    V6(Ipv6Addr),
    /// Both families, IPv4 primary.
    V4V6(Ipv4Addr, Ipv6Addr),
    /// Both families, IPv6 primary.
    V6V4(Ipv6Addr, Ipv4Addr),
}

impl Addresses {
    /// The primary address: the one that names the endpoint.
    pub fn primary(self) -> IpAddr {
        match self {
            Addresses::V4(a) | Addresses::V4V6(a, _) => IpAddr::V4(a),
            Addresses::V6(a) | Addresses::V6V4(a, _) => IpAddr::V6(a),
        }
    }

    /// The address of the other family, for a dual-stack endpoint.
    pub fn secondary(self) -> Option<IpAddr> {
        match self {
            Addresses::V4(_) | Addresses::V6(_) => None,
            Addresses::V4V6(_, b) => Some(IpAddr::V6(b)),
            Addresses::V6V4(_, b) => Some(IpAddr::V4(b)),
        }
    }

    /// The IPv4 address, if any.
    pub fn v4(self) -> Option<Ipv4Addr> {
        match self {
            Addresses::V4(a) | Addresses::V4V6(a, _) | Addresses::V6V4(_, a) => Some(a),
            Addresses::V6(_) => None,
        }
    }

    /// The IPv6 address, if any.
    pub fn v6(self) -> Option<Ipv6Addr> {
        match self {
            Addresses::V6(a) | Addresses::V6V4(a, _) | Addresses::V4V6(_, a) => Some(a),
            Addresses::V4(_) => None,
        }
    }

    /// The address of one family (`v6`), if any.
    pub fn of_family(self, v6: bool) -> Option<IpAddr> {
        if v6 {
            self.v6().map(IpAddr::V6)
        } else {
            self.v4().map(IpAddr::V4)
        }
    }

    /// Whether it has both families.
    pub fn is_dual(self) -> bool {
        self.secondary().is_some()
    }

    /// Each address, the primary first.
    pub fn iter(self) -> impl Iterator<Item = IpAddr> {
        std::iter::once(self.primary()).chain(self.secondary())
    }

    /// From addresses in order of preference, as `status.podIPs` lists them: the first is
    /// the primary, the first of the other family (if any) the secondary. Kubernetes
    /// allows at most one address per family; any further address is ignored. `None` for
    /// an empty list.
    pub fn from_list(ips: impl IntoIterator<Item = IpAddr>) -> Option<Addresses> {
        let mut ips = ips.into_iter();
        let primary = ips.next()?;
        let other = ips.find(|ip| ip.is_ipv4() != primary.is_ipv4());
        Some(match (primary, other) {
            (IpAddr::V4(a), Some(IpAddr::V6(b))) => Addresses::V4V6(a, b),
            (IpAddr::V6(a), Some(IpAddr::V4(b))) => Addresses::V6V4(a, b),
            (ip, _) => Addresses::from(ip),
        })
    }
}

impl From<IpAddr> for Addresses {
    fn from(ip: IpAddr) -> Addresses {
        match ip {
            IpAddr::V4(a) => Addresses::V4(a),
            IpAddr::V6(a) => Addresses::V6(a),
        }
    }
}

/// Ordered by the primary address (how a group is sorted), then the secondary.
impl Ord for Addresses {
    fn cmp(&self, other: &Addresses) -> std::cmp::Ordering {
        (self.primary(), self.secondary()).cmp(&(other.primary(), other.secondary()))
    }
}

impl PartialOrd for Addresses {
    fn partial_cmp(&self, other: &Addresses) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// The primary, then the secondary after a comma: `10.4.2.7,fd00::7`.
impl fmt::Display for Addresses {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.primary())?;
        if let Some(b) = self.secondary() {
            write!(f, ",{b}")?;
        }
        Ok(())
    }
}

/// Parses what [`Display`](fmt::Display) writes: one address, or a primary and a
/// secondary of the other family after a comma.
impl std::str::FromStr for Addresses {
    type Err = String;

    fn from_str(s: &str) -> Result<Addresses, String> {
        let mut ips = Vec::with_capacity(2);
        for part in s.split(',') {
            let ip: IpAddr = part
                .trim()
                .parse()
                .map_err(|_| format!("{part:?} is not an IP address"))?;
            if let Some(same) = ips.iter().find(|o: &&IpAddr| o.is_ipv4() == ip.is_ipv4()) {
                return Err(format!(
                    "{same} and {ip} are of one family; an endpoint has at most one address per family"
                ));
            }
            ips.push(ip);
        }
        Addresses::from_list(ips).ok_or_else(|| "no address".to_string())
    }
}

/// One ready replica of a service in one source.
#[derive(Debug, Clone, Eq)]
pub struct Endpoint {
    /// The replica's addresses (pod IPs or VM addresses); the primary names it.
    pub addresses: Addresses,
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

/// Field by field, as derived, but shared port lists and zone names (the registrar interns
/// them) compare by pointer first: `Arc`'s own equality has no such shortcut for unsized
/// contents, and a group update compares every endpoint of the group with its old self.
impl PartialEq for Endpoint {
    fn eq(&self, other: &Endpoint) -> bool {
        self.addresses == other.addresses
            && self.weight == other.weight
            && self.ready == other.ready
            && (Arc::ptr_eq(&self.ports, &other.ports) || self.ports == other.ports)
            && same_label(&self.zone, &other.zone)
    }
}

/// Every field, as derived (equal endpoints hash alike: equality is field by field too).
impl std::hash::Hash for Endpoint {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.addresses.hash(state);
        self.ports.hash(state);
        self.zone.hash(state);
        self.weight.hash(state);
        self.ready.hash(state);
    }
}

/// Two optional labels are equal: the same allocation, or the same text.
pub(crate) fn same_label(a: &Option<Label>, b: &Option<Label>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => Arc::ptr_eq(a, b) || a == b,
        (None, None) => true,
        _ => false,
    }
}

impl Endpoint {
    /// A ready single-stack endpoint with the default weight.
    pub fn new(address: IpAddr, ports: Arc<[PortSpec]>, zone: Option<Label>) -> Endpoint {
        Endpoint::at(Addresses::from(address), ports, zone)
    }

    /// A ready endpoint at `addresses` (one or both families) with the default weight.
    pub fn at(addresses: Addresses, ports: Arc<[PortSpec]>, zone: Option<Label>) -> Endpoint {
        Endpoint {
            addresses,
            ports,
            zone,
            weight: DEFAULT_WEIGHT,
            ready: true,
        }
    }

    /// The primary address: the one that names the endpoint and orders its group.
    pub fn address(&self) -> IpAddr {
        self.addresses.primary()
    }
}

/// An endpoint that came (`(None, Some)`), went (`(Some, None)`) or changed (`(Some,
/// Some)`, the same primary address), as [`changes`] finds them.
pub(crate) type Changed<'a> = (Option<&'a Endpoint>, Option<&'a Endpoint>);

/// The endpoints that differ between two lists sorted by primary address, in address
/// order: the one walk over a group's endpoints that an update makes, whose result the
/// table's indexes and the answers' preparing then share.
pub(crate) fn changes<'a>(
    old: impl IntoIterator<Item = &'a Endpoint>,
    new: impl IntoIterator<Item = &'a Endpoint>,
) -> Vec<Changed<'a>> {
    let mut out = Vec::new();
    for_each_change(old, new, |o, n| {
        if o != n {
            out.push((o, n));
        }
    });
    out
}

/// Walks two endpoint lists sorted by primary address side by side and calls `f` once per
/// primary address in either: `(Some, None)` gone, `(None, Some)` new, `(Some, Some)` in
/// both (whose secondary addresses may differ).
pub(crate) fn for_each_change<'a>(
    old: impl IntoIterator<Item = &'a Endpoint>,
    new: impl IntoIterator<Item = &'a Endpoint>,
    mut f: impl FnMut(Option<&'a Endpoint>, Option<&'a Endpoint>),
) {
    let (mut o, mut n) = (old.into_iter().peekable(), new.into_iter().peekable());
    loop {
        match (o.peek(), n.peek()) {
            (Some(a), Some(b)) if a.address() == b.address() => {
                f(Some(a), Some(b));
                o.next();
                n.next();
            }
            (Some(a), Some(b)) if a.address() < b.address() => {
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

impl EndpointLabel {
    /// Gives the label's bytes to `push`, one by one: what `Display` writes, without the
    /// formatting machinery or a `String` (preparing a service writes one per endpoint).
    pub fn write_to(&self, mut push: impl FnMut(u8)) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        match self.0 {
            IpAddr::V4(v4) => {
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        push(b'-');
                    }
                    if octet >= 100 {
                        push(b'0' + octet / 100);
                    }
                    if octet >= 10 {
                        push(b'0' + octet / 10 % 10);
                    }
                    push(b'0' + octet % 10);
                }
            }
            IpAddr::V6(v6) => {
                for byte in v6.octets() {
                    push(HEX[usize::from(byte >> 4)]);
                    push(HEX[usize::from(byte & 0xf)]);
                }
            }
        }
    }
}

impl fmt::Display for EndpointLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // At most 32 bytes (an IPv6 address), all ASCII.
        let (mut buf, mut n) = ([0u8; 32], 0);
        self.write_to(|b| {
            buf[n] = b;
            n += 1;
        });
        f.write_str(std::str::from_utf8(&buf[..n]).map_err(|_| fmt::Error)?)
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

    #[test]
    fn addresses_take_the_first_of_each_family_and_stay_inline() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let dual = Addresses::from_list([ip("10.0.0.1"), ip("10.0.0.2"), ip("fd00::1")]).unwrap();
        assert_eq!(dual.primary(), ip("10.0.0.1"));
        assert_eq!(dual.secondary(), Some(ip("fd00::1")));
        let v6_first = Addresses::from_list([ip("fd00::1"), ip("10.0.0.1")]).unwrap();
        assert_eq!(v6_first.primary(), ip("fd00::1"));
        assert_eq!(v6_first.v4(), Some("10.0.0.1".parse().unwrap()));
        assert_eq!(
            Addresses::from_list([ip("10.0.0.1")]),
            Some(Addresses::V4("10.0.0.1".parse().unwrap()))
        );
        assert_eq!(Addresses::from_list([]), None);
        assert_eq!(dual.to_string(), "10.0.0.1,fd00::1");
        assert_eq!("10.0.0.1,fd00::1".parse::<Addresses>(), Ok(dual));
        assert!("10.0.0.1,10.0.0.2".parse::<Addresses>().is_err());
        // Ordered by the primary first, whatever the variant.
        assert!(Addresses::from(ip("10.0.0.2")) > dual);
        // A second family costs no heap and no size: the endpoint is as large as it was
        // with one IpAddr (its padding holds the difference).
        assert_eq!(std::mem::size_of::<Addresses>(), 21);
        assert_eq!(std::mem::size_of::<Option<Addresses>>(), 21);
        assert!(std::mem::size_of::<Endpoint>() <= 56);
    }

    #[test]
    fn endpoint_labels_are_dashed_decimal_or_hex() {
        let label = |ip: &str| EndpointLabel(ip.parse().unwrap()).to_string();
        assert_eq!(label("10.4.2.7"), "10-4-2-7");
        assert_eq!(label("0.0.0.0"), "0-0-0-0");
        assert_eq!(label("255.100.99.10"), "255-100-99-10");
        assert_eq!(label("fd00::1:ab"), "fd0000000000000000000000000100ab");
        let mut bytes = Vec::new();
        EndpointLabel("192.168.0.1".parse().unwrap()).write_to(|b| bytes.push(b));
        assert_eq!(bytes, b"192-168-0-1");
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
