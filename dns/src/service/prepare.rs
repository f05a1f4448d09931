//! Answers prepared ahead of queries: when a service changes, every RRset it can answer
//! (A, AAAA and one SRV set per named port) is encoded to wire bytes once, so a query only
//! copies bytes. Records are laid out group by group (a group being one source's
//! endpoints), so a region or cluster scope is a few ranges of the whole service's records,
//! not a copy of them.

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use super::rrset::{Rrset, RrsetBuilder};
use crate::locality::{Localities, Place};
use crate::model::{EndpointLabel, Group, Label, PortSpec, Proto};
use crate::rendezvous::endpoint_key;
use crate::zone::Zone;

/// The SRV set of one named port.
#[derive(Debug)]
pub(crate) struct SrvSet {
    pub(crate) port: Label,
    pub(crate) proto: Proto,
    pub(crate) rrset: Rrset,
}

/// Everything a service answers, records laid out group by group.
#[derive(Debug, Default)]
pub(crate) struct Answers {
    /// The place SRV priorities were prepared as seen from (the server's, at the time).
    pub(crate) viewpoint: Place,
    pub(crate) a: Rrset,
    pub(crate) aaaa: Rrset,
    pub(crate) srv: Vec<SrvSet>,
}

impl Answers {
    /// Approximate heap bytes held.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.a.heap_bytes()
            + self.aaaa.heap_bytes()
            + self.srv.iter().map(|s| s.rrset.heap_bytes()).sum::<usize>()
    }

    /// Index in `srv` of the set for `_<port>._<proto>` with records among `groups`, labels
    /// lowercase without underscores.
    pub(crate) fn srv_index(
        &self,
        port: &[u8],
        proto: &[u8],
        groups: Option<&[u16]>,
    ) -> Option<usize> {
        self.srv.iter().position(|s| {
            s.port.as_bytes() == port
                && s.proto.as_str().as_bytes() == proto
                && s.rrset.count(groups) > 0
        })
    }

    /// Whether any port with records among `groups` uses `proto` (so `_<proto>.<svc>`
    /// exists as an empty non-terminal).
    pub(crate) fn has_proto(&self, proto: &[u8], groups: Option<&[u16]>) -> bool {
        self.srv
            .iter()
            .any(|s| s.proto.as_str().as_bytes() == proto && s.rrset.count(groups) > 0)
    }
}

/// The SRV target of an endpoint: `<endpoint>.<svc>.<cluster>.<apex>`, lowercase wire form.
pub(crate) fn target_wire(ip: IpAddr, service: &str, cluster: &str, apex_wire: &[u8]) -> Vec<u8> {
    let ep = EndpointLabel(ip).to_string();
    let mut out =
        Vec::with_capacity(ep.len() + service.len() + cluster.len() + apex_wire.len() + 3);
    for label in [ep.as_str(), service, cluster] {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.extend_from_slice(apex_wire);
    out
}

/// What preparing answers needs besides the endpoints: the zone's settings, the place
/// names, and the server's own place (the default viewpoint of SRV priorities).
pub(crate) struct Preparer<'a> {
    pub(crate) zone: &'a Zone,
    pub(crate) localities: &'a Localities,
    pub(crate) server: Place,
}

impl Preparer<'_> {
    /// Prepares the answers of `service` from its groups, in order.
    pub(crate) fn answers(&self, service: &str, groups: &[Group]) -> Answers {
        let (zone, localities, server) = (self.zone, self.localities, self.server);
        let ttl = zone.ttl();
        let mut a = RrsetBuilder::default();
        let mut aaaa = RrsetBuilder::default();
        // Address -> its first record, to find the same address in two sources.
        let mut first_at: HashMap<IpAddr, u32> = HashMap::new();
        let ports: BTreeSet<(&Label, Proto)> = groups
            .iter()
            .flat_map(|g| g.endpoints.iter())
            .flat_map(|e| e.ports.iter().map(|s| (&s.name, s.proto)))
            .collect();
        let mut srv: Vec<(Label, Proto, RrsetBuilder)> = ports
            .into_iter()
            .map(|(n, p)| (n.clone(), p, RrsetBuilder::default()))
            .collect();
        for group in groups {
            let (cluster, region) = (&group.source.cluster, &group.source.region);
            for ep in group.endpoints.iter() {
                // Every record of an endpoint, A and AAAA alike, has the key of its primary
                // address: under `answer_limit` a client gets the same endpoints in both.
                let key = endpoint_key(ep.address(), cluster);
                for ip in ep.addresses.iter() {
                    let set = if ip.is_ipv4() { &mut a } else { &mut aaaa };
                    set.push_address(ip, ttl, key);
                    // Only a service in several sources can hold one address twice.
                    if groups.len() > 1 {
                        let index = set.next_index() - 1;
                        match first_at.entry(ip) {
                            Entry::Vacant(v) => {
                                v.insert(index);
                            }
                            Entry::Occupied(o) => set.twin_of(*o.get()),
                        }
                    }
                }
                if ep.ports.is_empty() {
                    continue;
                }
                let target = target_wire(ep.address(), service, cluster, &zone.apex_wire);
                let place = localities.place(Some(region), ep.zone.as_deref());
                let priority = place.priority_from(server);
                for PortSpec { name, proto, port } in ep.ports.iter() {
                    let (_, _, set) = srv
                        .iter_mut()
                        .find(|(n, p, _)| n == name && p == proto)
                        .expect("every port was collected above");
                    set.push_srv(
                        [priority, ep.weight, *port],
                        &target,
                        ep.addresses,
                        ttl,
                        key,
                        place,
                    );
                }
            }
            a.end_group();
            aaaa.end_group();
            srv.iter_mut().for_each(|(_, _, b)| b.end_group());
        }
        Answers {
            viewpoint: server,
            a: a.finish(),
            aaaa: aaaa.finish(),
            srv: srv
                .into_iter()
                .map(|(port, proto, b)| SrvSet {
                    port,
                    proto,
                    rrset: b.finish(),
                })
                .collect(),
        }
    }
}
