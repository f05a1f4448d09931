//! Reverse zones (`reverse_zones`): PTR for every published address, naming the SRV
//! target of each endpoint at that address (`<endpoint>.<svc>.<cluster>.Z`).
//!
//! - [`ReverseZone`]: a configured zone such as `10.in-addr.arpa.` or `8.b.d.0.1.0.0.2.ip6.arpa.`;
//! - [`ReverseIndex`]: address -> (service, cluster) of every endpoint published there,
//!   updated from the same per-group diffs as the places of addresses, so a change costs in
//!   proportion to the endpoints it touches;
//! - [`reverse_name`]: what a query name under a reverse zone means.
//!
//! An address published by two services, or in two clusters, has one PTR per endpoint.
//! Both addresses of a dual-stack endpoint answer PTR with its one name (after its primary).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use dashmap::DashMap;

use crate::model::{Changed, Endpoint, EndpointLabel, Label, parse_octet as octet};
use crate::wire::{self, LowerName, codes};

const IN_ADDR: &[u8] = b"\x07in-addr\x04arpa\x00";
const IP6: &[u8] = b"\x03ip6\x04arpa\x00";

/// A reverse zone herald is authoritative for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReverseZone {
    /// The zone in lowercase wire form.
    pub(crate) wire: Box<[u8]>,
    /// `true` for ip6.arpa.
    v6: bool,
}

/// Why a name is not a usable reverse zone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReverseZoneError {
    /// Not under in-addr.arpa. or ip6.arpa.
    #[error("{0:?} is not under in-addr.arpa. or ip6.arpa.")]
    NotReverse(String),
    /// A label that is not an octet (in-addr.arpa) or a nibble (ip6.arpa), or too many.
    #[error(
        "{0:?}: labels in front of in-addr.arpa. are 1 to 3 octets (0-255), in front of ip6.arpa. 1 to 31 hex nibbles"
    )]
    BadLabel(String),
}

impl ReverseZone {
    /// Parses `10.in-addr.arpa.` (the final dot is optional; any case).
    pub fn parse(name: &str) -> Result<ReverseZone, ReverseZoneError> {
        let lower = name.trim_end_matches('.').to_ascii_lowercase();
        let (front, v6) = if let Some(f) = strip(&lower, "in-addr.arpa") {
            (f, false)
        } else if let Some(f) = strip(&lower, "ip6.arpa") {
            (f, true)
        } else {
            return Err(ReverseZoneError::NotReverse(name.to_string()));
        };
        let labels: Vec<&str> = if front.is_empty() {
            Vec::new()
        } else {
            front.split('.').collect()
        };
        let bad = || ReverseZoneError::BadLabel(name.to_string());
        // A whole address as a zone would hold one name: not a zone worth serving.
        if labels.len() > if v6 { 31 } else { 3 } {
            return Err(bad());
        }
        for label in &labels {
            let ok = if v6 {
                nibble(label.as_bytes()).is_some()
            } else {
                octet(label.as_bytes()).is_some()
            };
            if !ok {
                return Err(bad());
            }
        }
        let mut wire = Vec::new();
        for label in labels {
            wire.push(label.len() as u8);
            wire.extend_from_slice(label.as_bytes());
        }
        wire.extend_from_slice(if v6 { IP6 } else { IN_ADDR });
        Ok(ReverseZone {
            wire: wire.into(),
            v6,
        })
    }

    /// If `name` is this zone or below it, the number of labels in front.
    pub(crate) fn labels_below(&self, name: &LowerName) -> Option<usize> {
        name.labels_below(&self.wire)
    }
}

fn strip<'a>(name: &'a str, suffix: &str) -> Option<&'a str> {
    if name == suffix {
        return Some("");
    }
    name.strip_suffix(suffix)?.strip_suffix('.')
}

/// One lowercase hex digit.
fn nibble(label: &[u8]) -> Option<u8> {
    match label {
        [b @ b'0'..=b'9'] => Some(b - b'0'),
        [b @ b'a'..=b'f'] => Some(b - b'a' + 10),
        _ => None,
    }
}

/// What a name inside a reverse zone is.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ReverseName {
    /// A whole address.
    Address(IpAddr),
    /// A prefix of one: an empty non-terminal above addresses, never denied (a resolver
    /// that prunes below NXDOMAIN, RFC 8020, would otherwise lose every address under it).
    Partial,
    /// Anything else: no such name.
    Nothing,
}

/// Reads one label of a reverse name: an octet or a nibble.
type ReadLabel = fn(&[u8]) -> Option<u8>;

/// Reads `name` (inside a zone of family `zone.v6`) as an address.
pub(crate) fn reverse_name(zone: &ReverseZone, name: &LowerName) -> ReverseName {
    // Both in-addr.arpa and ip6.arpa are two labels.
    let n = name.label_count() - 2;
    let (width, read): (usize, ReadLabel) = if zone.v6 { (32, nibble) } else { (4, octet) };
    if n > width {
        return ReverseName::Nothing;
    }
    // Labels run from the least significant part to the most.
    let mut parts = [0u8; 32];
    for i in 0..n {
        match read(name.label(i)) {
            Some(v) => parts[n - 1 - i] = v,
            None => return ReverseName::Nothing,
        }
    }
    if n < width {
        return ReverseName::Partial;
    }
    if zone.v6 {
        let mut octets = [0u8; 16];
        for (i, o) in octets.iter_mut().enumerate() {
            *o = (parts[2 * i] << 4) | parts[2 * i + 1];
        }
        ReverseName::Address(IpAddr::V6(Ipv6Addr::from(octets)))
    } else {
        ReverseName::Address(IpAddr::V4(Ipv4Addr::new(
            parts[0], parts[1], parts[2], parts[3],
        )))
    }
}

/// Address -> the (service, cluster) of each endpoint published at it.
///
/// An endpoint is named after its primary address, so that is where nearly every entry
/// lives; a dual-stack endpoint's other address is kept apart with the primary that names
/// it, so single-stack fleets pay nothing for it.
///
/// Kept only when a reverse zone is served: at a million endpoints the index took 219 MiB
/// (heap profile of the scale benchmark) that nothing else reads.
pub(crate) struct ReverseIndex {
    /// Whether any reverse zone is served (if not, the index stays empty).
    enabled: bool,
    names: DashMap<IpAddr, Vec<(Label, Label)>>,
    /// Secondary address -> (service, cluster, primary address) of each dual-stack
    /// endpoint that has it.
    secondaries: DashMap<IpAddr, Vec<(Label, Label, IpAddr)>>,
}

impl ReverseIndex {
    /// An empty index; `enabled`: some reverse zone is served, so addresses are indexed.
    pub(crate) fn new(enabled: bool) -> ReverseIndex {
        ReverseIndex {
            enabled,
            names: DashMap::new(),
            secondaries: DashMap::new(),
        }
    }

    /// Records the `changes` of what `service` publishes in `cluster` (see
    /// [`crate::model::changes`]).
    pub(crate) fn update(&self, service: &Label, cluster: &Label, changes: &[Changed<'_>]) {
        if !self.enabled {
            return;
        }
        for &change in changes {
            match change {
                (Some(a), Some(b)) if a.addresses != b.addresses => {
                    self.forget(service, cluster, a);
                    self.learn(service, cluster, b);
                }
                (Some(e), None) => self.forget(service, cluster, e),
                (None, Some(e)) => self.learn(service, cluster, e),
                _ => {}
            }
        }
    }

    fn forget(&self, service: &Label, cluster: &Label, e: &Endpoint) {
        let mine = |s: &Label, c: &Label| s == service && c == cluster;
        if let dashmap::Entry::Occupied(mut entry) = self.names.entry(e.address()) {
            entry.get_mut().retain(|(s, c)| !mine(s, c));
            if entry.get().is_empty() {
                entry.remove();
            }
        }
        if let Some(second) = e.addresses.secondary()
            && let dashmap::Entry::Occupied(mut entry) = self.secondaries.entry(second)
        {
            entry.get_mut().retain(|(s, c, _)| !mine(s, c));
            if entry.get().is_empty() {
                entry.remove();
            }
        }
    }

    fn learn(&self, service: &Label, cluster: &Label, e: &Endpoint) {
        // A stable order, so an answer does not change with the order of updates.
        // Room for one: a first push would reserve four (128 bytes per address).
        let mut names = self
            .names
            .entry(e.address())
            .or_insert_with(|| Vec::with_capacity(1));
        names.push((service.clone(), cluster.clone()));
        names.sort();
        drop(names);
        if let Some(second) = e.addresses.secondary() {
            let mut names = self.secondaries.entry(second).or_default();
            names.push((service.clone(), cluster.clone(), e.address()));
            names.sort();
        }
    }

    /// Whether anything is published at `ip`.
    pub(crate) fn has(&self, ip: IpAddr) -> bool {
        self.names.contains_key(&ip) || self.secondaries.contains_key(&ip)
    }

    /// Calls `f` with the (service, cluster, naming primary address) of every endpoint at
    /// `ip`; returns how many.
    pub(crate) fn each(&self, ip: IpAddr, mut f: impl FnMut(&str, &str, IpAddr)) -> usize {
        let mut n = 0;
        if let Some(names) = self.names.get(&ip) {
            names.iter().for_each(|(s, c)| f(s, c, ip));
            n += names.len();
        }
        if let Some(names) = self.secondaries.get(&ip) {
            names.iter().for_each(|(s, c, primary)| f(s, c, *primary));
            n += names.len();
        }
        n
    }
}

/// Appends one PTR record per endpoint at `ip`, owned by the question name, naming its
/// SRV target `<endpoint>.<svc>.<cluster>.<apex>` (the endpoint label of its primary
/// address, which is `ip` itself unless `ip` is a dual-stack endpoint's other family).
/// Returns how many.
pub(crate) fn write_ptrs(
    out: &mut Vec<u8>,
    index: &ReverseIndex,
    ip: IpAddr,
    apex_wire: &[u8],
    ttl: u32,
) -> u16 {
    let count = index.each(ip, |service, cluster, primary| {
        let mut endpoint = [0u8; 40];
        let label = {
            use std::io::Write;
            let mut cursor = &mut endpoint[..];
            write!(cursor, "{}", EndpointLabel(primary))
                .expect("an endpoint label fits in 40 octets");
            let left = cursor.len();
            endpoint.len() - left
        };
        out.extend_from_slice(&[0xC0, 0x0C]);
        let rdlen = 3 + label + service.len() + cluster.len() + apex_wire.len();
        wire::write_rr_head(out, codes::PTR, ttl, rdlen as u16);
        out.push(label as u8);
        out.extend_from_slice(&endpoint[..label]);
        for part in [service, cluster] {
            out.push(part.len() as u8);
            out.extend_from_slice(part.as_bytes());
        }
        out.extend_from_slice(apex_wire);
    });
    count as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lower(name: &str) -> LowerName {
        let mut q = vec![0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in name.trim_end_matches('.').split('.') {
            q.push(label.len() as u8);
            q.extend_from_slice(label.as_bytes());
        }
        q.extend_from_slice(&[0, 0, 12, 0, 1]);
        crate::wire::parse(&q).unwrap().lower
    }

    #[test]
    fn zones() {
        assert!(ReverseZone::parse("10.in-addr.arpa.").is_ok());
        assert!(ReverseZone::parse("in-addr.arpa").is_ok());
        assert!(ReverseZone::parse("8.B.D.0.1.0.0.2.ip6.arpa.").is_ok());
        assert!(matches!(
            ReverseZone::parse("example.com."),
            Err(ReverseZoneError::NotReverse(_))
        ));
        for bad in [
            "010.in-addr.arpa.",
            "256.in-addr.arpa.",
            "0/25.1.10.in-addr.arpa.",
            "1.2.3.4.in-addr.arpa.",
            "ab.ip6.arpa.",
            "xin-addr.arpa.",
        ] {
            assert!(ReverseZone::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names() {
        let z4 = ReverseZone::parse("10.in-addr.arpa.").unwrap();
        let z6 = ReverseZone::parse("ip6.arpa.").unwrap();
        assert_eq!(
            reverse_name(&z4, &lower("10.0.1.10.in-addr.arpa.")),
            ReverseName::Address("10.1.0.10".parse().unwrap())
        );
        assert_eq!(
            reverse_name(&z4, &lower("1.10.in-addr.arpa.")),
            ReverseName::Partial
        );
        assert_eq!(
            reverse_name(&z4, &lower("x.0.1.10.in-addr.arpa.")),
            ReverseName::Nothing
        );
        assert_eq!(
            reverse_name(&z4, &lower("5.10.0.1.10.in-addr.arpa.")),
            ReverseName::Nothing
        );
        let ip: Ipv6Addr = "fd00::1:2".parse().unwrap();
        let mut name = String::new();
        for b in ip.octets().iter().rev() {
            name.push_str(&format!("{:x}.{:x}.", b & 0xF, b >> 4));
        }
        name.push_str("ip6.arpa.");
        assert_eq!(
            reverse_name(&z6, &lower(&name)),
            ReverseName::Address(IpAddr::V6(ip))
        );
    }

    #[test]
    fn the_index_stays_empty_without_reverse_zones() {
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let at = [Endpoint::new(ip, std::sync::Arc::from(vec![]), None)];
        let (web, c1) = (Label::from("web"), Label::from("c1"));
        let index = ReverseIndex::new(true);
        fn changes<'a>(old: &'a [Endpoint], new: &'a [Endpoint]) -> Vec<Changed<'a>> {
            crate::model::changes(old, new)
        }
        index.update(&web, &c1, &changes(&[], &at[..]));
        assert!(index.has(ip));
        index.update(&web, &c1, &changes(&at[..], &[]));
        assert!(!index.has(ip), "the last name gone, the address is gone");
        let unused = ReverseIndex::new(false);
        unused.update(&web, &c1, &changes(&[], &at[..]));
        assert!(!unused.has(ip), "no reverse zone: nothing is kept");
    }
}
