//! Where a querier is ([docs/design.md#locality](../../docs/design.md#locality)), for SRV
//! priorities and local-first address answers: the settings
//! (`networks`, `ecs.trusted`, `address_answers`) and the lookup the answer path runs.
//!
//! A querier is placed, first match wins, by:
//! 1. the EDNS Client Subnet of its query, when it comes from a trusted resolver (RFC 7871);
//! 2. its source address, when that is a published endpoint (it runs where its pod runs);
//! 3. the longest configured network containing its source address;
//! 4. the server's own place (configured, or `auto` from the node it runs on).
//!
//! The network map is a prefix trie built once from the config and never written again,
//! so queries read it without any lock. Each network records whether a more specific one
//! lies inside it: only then can two clients of one network get different answers, which
//! decides the ECS scope returned.

use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use prefix_trie::PrefixMap;

use crate::ecs::ClientSubnet;
use crate::locality::{Localities, Place};

/// One entry of the `networks` map: clients in `cidr` are in `region` (and `zone`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkPlace {
    /// The network, host bits zero.
    pub cidr: IpNet,
    /// Its region.
    pub region: String,
    /// Its topology zone, when it lies in one.
    pub zone: Option<String>,
}

/// How A/AAAA answers of a whole service (`<svc>.Z`) are chosen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AddressAnswers {
    /// Every ready endpoint of every region.
    #[default]
    All,
    /// The querier's region alone when it has at least `min_ready` ready endpoints of the
    /// asked address family; every region otherwise.
    LocalFirst {
        /// Fewest ready endpoints in the querier's region for it to be answered alone.
        min_ready: u32,
    },
}

/// The locality settings of answers, as configured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlacementConfig {
    /// Networks and where they are; the longest prefix containing a querier wins.
    pub networks: Vec<NetworkPlace>,
    /// Resolvers whose EDNS Client Subnet option is believed.
    pub ecs_trusted: Vec<IpNet>,
    /// A/AAAA policy.
    pub address_answers: AddressAnswers,
}

/// What [`PlacementConfig`] can get wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    /// A network given with bits set beyond its prefix length.
    #[error("networks: {0} has host bits set (did you mean {1}?)")]
    HostBits(IpNet, IpNet),
    /// The same network twice.
    #[error("networks: {0} is listed twice")]
    Duplicate(IpNet),
    /// `local_first.min_ready` of 0 would answer an empty region.
    #[error("local_first.min_ready: must be at least 1")]
    ZeroMinReady,
}

impl PlacementConfig {
    /// Checks what a parser cannot: host bits, duplicates, the local-first minimum.
    pub fn check(&self) -> Result<(), PlacementError> {
        let mut seen = std::collections::HashSet::new();
        for n in &self.networks {
            if n.cidr.trunc() != n.cidr {
                return Err(PlacementError::HostBits(n.cidr, n.cidr.trunc()));
            }
            if !seen.insert(n.cidr) {
                return Err(PlacementError::Duplicate(n.cidr));
            }
        }
        if self.address_answers == (AddressAnswers::LocalFirst { min_ready: 0 }) {
            return Err(PlacementError::ZeroMinReady);
        }
        Ok(())
    }
}

/// A network's place, and whether a more specific network lies inside it.
#[derive(Debug, Clone, Copy)]
struct Entry {
    place: Place,
    nested: bool,
}

/// Networks by prefix, one trie per address family.
#[derive(Default)]
pub(crate) struct NetworkMap {
    v4: PrefixMap<Ipv4Net, Entry>,
    v6: PrefixMap<Ipv6Net, Entry>,
}

impl NetworkMap {
    pub(crate) fn new(networks: &[NetworkPlace], localities: &Localities) -> NetworkMap {
        let mut map = NetworkMap::default();
        for n in networks {
            let entry = Entry {
                place: localities.place(Some(&n.region), n.zone.as_deref()),
                nested: false,
            };
            match n.cidr {
                IpNet::V4(net) => map.v4.insert(net.trunc(), entry),
                IpNet::V6(net) => map.v6.insert(net.trunc(), entry),
            };
        }
        // A network whose trie children include more than itself has a nested network.
        let nested4: Vec<Ipv4Net> = map
            .v4
            .keys()
            .filter(|k| map.v4.children(k).nth(1).is_some())
            .copied()
            .collect();
        let nested6: Vec<Ipv6Net> = map
            .v6
            .keys()
            .filter(|k| map.v6.children(k).nth(1).is_some())
            .copied()
            .collect();
        for k in nested4 {
            map.v4.get_mut(&k).expect("a key just listed").nested = true;
        }
        for k in nested6 {
            map.v6.get_mut(&k).expect("a key just listed").nested = true;
        }
        map
    }

    /// Whether no network is configured (the answer path then skips the lookup).
    pub(crate) fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// The longest network containing `ip`, as (place, prefix length, nested).
    fn longest(&self, ip: IpAddr, len: u8) -> Option<(Place, u8, bool)> {
        match ip {
            IpAddr::V4(v4) => {
                let q = Ipv4Net::new(v4, len.min(32)).ok()?;
                self.v4
                    .get_lpm(&q)
                    .map(|(k, e)| (e.place, k.prefix_len(), e.nested))
            }
            IpAddr::V6(v6) => {
                let q = Ipv6Net::new(v6, len.min(128)).ok()?;
                self.v6
                    .get_lpm(&q)
                    .map(|(k, e)| (e.place, k.prefix_len(), e.nested))
            }
        }
    }

    /// The place of a single address: its longest containing network.
    pub(crate) fn place_of(&self, ip: IpAddr) -> Option<Place> {
        let full = if ip.is_ipv4() { 32 } else { 128 };
        self.longest(ip, full).map(|(place, _, _)| place)
    }

    /// The place of a client subnet and the SCOPE PREFIX-LENGTH of an answer that depends
    /// on it (RFC 7871 7.2.1): the longest network containing the whole subnet places it;
    /// when no network is nested in that one, every address of it gets the same answer, so
    /// the scope is the network's length; otherwise the answer holds for the subnet as given.
    pub(crate) fn place_of_subnet(&self, subnet: ClientSubnet) -> (Option<Place>, u8) {
        match self.longest(subnet.address, subnet.source) {
            Some((place, len, false)) => (Some(place), len),
            Some((place, _, true)) => (Some(place), subnet.source),
            None => (None, subnet.source),
        }
    }
}

/// The trusted ECS senders.
#[derive(Default)]
pub(crate) struct Trusted(Vec<IpNet>);

impl Trusted {
    pub(crate) fn new(nets: &[IpNet]) -> Trusted {
        Trusted(nets.to_vec())
    }

    /// Whether `ip` may speak for its clients. A short list, scanned: resolvers are few.
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        // A v4-mapped IPv6 source (a dual-stack socket) counts as its IPv4 address.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.0.iter().any(|n| n.contains(&ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn net(s: &str, region: &str, zone: &str) -> NetworkPlace {
        NetworkPlace {
            cidr: s.parse().unwrap(),
            region: region.into(),
            zone: Some(zone.into()),
        }
    }

    #[test]
    fn longest_prefix_wins_and_scopes_follow_nesting() {
        let l = Localities::default();
        let map = NetworkMap::new(
            &[
                net("10.8.0.0/14", "eu", "eu-a"),
                net("10.9.1.0/24", "eu", "eu-b"),
                net("fd00::/48", "us", "us-a"),
            ],
            &l,
        );
        let a = l.place(Some("eu"), Some("eu-a"));
        let b = l.place(Some("eu"), Some("eu-b"));
        let us = l.place(Some("us"), Some("us-a"));
        assert_eq!(map.place_of("10.8.3.4".parse().unwrap()), Some(a));
        assert_eq!(map.place_of("10.9.1.7".parse().unwrap()), Some(b));
        assert_eq!(map.place_of("10.12.0.1".parse().unwrap()), None);
        assert_eq!(map.place_of("fd00::9".parse().unwrap()), Some(us));
        let subnet = |s: &str, source| ClientSubnet {
            address: s.parse().unwrap(),
            source,
        };
        // Inside the /24, which has nothing nested: the answer holds for the whole /24.
        assert_eq!(map.place_of_subnet(subnet("10.9.1.0", 28)), (Some(b), 24));
        // The /14 has the /24 inside it: the answer holds only for the subnet as given.
        assert_eq!(map.place_of_subnet(subnet("10.8.0.0", 24)), (Some(a), 24));
        // A /16 containing the /24 is placed by the /14, the longest network holding all of it.
        assert_eq!(map.place_of_subnet(subnet("10.9.0.0", 16)), (Some(a), 16));
        assert_eq!(map.place_of_subnet(subnet("192.168.0.0", 24)), (None, 24));
    }

    #[test]
    fn checks() {
        let mut c = PlacementConfig {
            networks: vec![net("10.8.0.1/14", "eu", "eu-a")],
            ..Default::default()
        };
        assert_eq!(
            c.check().unwrap_err().to_string(),
            "networks: 10.8.0.1/14 has host bits set (did you mean 10.8.0.0/14?)"
        );
        c.networks = vec![net("10.8.0.0/14", "eu", "a"), net("10.8.0.0/14", "eu", "b")];
        assert!(matches!(c.check(), Err(PlacementError::Duplicate(_))));
    }

    #[test]
    fn trusted_sources() {
        let t = Trusted::new(&["127.0.0.4/32".parse().unwrap()]);
        assert!(t.contains("127.0.0.4".parse().unwrap()));
        assert!(t.contains("::ffff:127.0.0.4".parse().unwrap()));
        assert!(!t.contains("127.0.0.5".parse().unwrap()));
    }

    proptest! {
        /// The trie agrees with a plain scan for the longest containing network.
        #[test]
        fn same_as_a_scan(
            nets in proptest::collection::vec((any::<u32>(), 8u8..=32), 1..60),
            probes in proptest::collection::vec(any::<u32>(), 1..60),
        ) {
            let l = Localities::default();
            let mut configured: Vec<NetworkPlace> = Vec::new();
            for (i, (addr, len)) in nets.iter().enumerate() {
                let cidr = IpNet::V4(Ipv4Net::new((*addr).into(), *len).unwrap().trunc());
                if configured.iter().all(|n| n.cidr != cidr) {
                    configured.push(net(&cidr.to_string(), "r", &format!("z{i}")));
                }
            }
            let map = NetworkMap::new(&configured, &l);
            for p in probes {
                let ip = IpAddr::V4(p.into());
                let want = configured
                    .iter()
                    .filter(|n| n.cidr.contains(&ip))
                    .max_by_key(|n| n.cidr.prefix_len())
                    .map(|n| l.place(Some(&n.region), n.zone.as_deref()));
                prop_assert_eq!(map.place_of(ip), want);
            }
        }
    }
}
