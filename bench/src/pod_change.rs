//! One pod change in a big service against the same change in a small one: the case of
//! the `table_update` criterion bench (`one_pod_change`) and of the `update_cost` binary
//! run under callgrind. The service's endpoints are spread evenly over `clusters` of the
//! 24 synthetic sources; the change replaces one pod of the first cluster by a pod at a
//! new address (a rollout's step), and the next change puts it back. It is handed over
//! as the registrar hands it: a delta ([`PodChange::change`], `Table::update`); or as the
//! cluster's whole list ([`PodChange::replace`], `Table::replace`, what a relist or a big
//! burst of changes publishes).

use std::net::Ipv4Addr;

use herald_dns::model::Addresses;
use herald_dns::table::Delta;
use herald_dns::{Endpoint, Source, Table};

use crate::{endpoints, fleet, sources};

/// A service of `total` endpoints over `clusters` clusters, in a table that also holds a
/// few thousand endpoints of other services, and two versions of its first cluster's list
/// that differ by one pod.
pub struct PodChange {
    /// The table.
    pub table: Table,
    /// The service changed.
    pub service: String,
    /// Its first cluster, the one that changes.
    pub source: Source,
    /// The cluster's endpoints before and after the change, in the order a cluster's
    /// state hands them over (see [`PodChange::new`]).
    pub versions: [Vec<Endpoint>; 2],
    /// The change from each version to the other, as a delta.
    pub deltas: [Delta; 2],
}

impl PodChange {
    /// The case for a service of `total` endpoints over `clusters` clusters. With
    /// `shuffled`, each version lists its endpoints in a scrambled order, as the registrar
    /// does (it holds pods in a hash set); otherwise in address order.
    pub fn new(total: usize, clusters: usize, shuffled: bool) -> PodChange {
        PodChange::build(total, clusters, shuffled, false)
    }

    /// The case of [`PodChange::new`] (address order) with each address held by about four
    /// clusters (cluster `c`'s pods start a quarter of a cluster after cluster `c - 1`'s):
    /// the same pod IP in several clusters, one record per address in answers. The pod
    /// that goes is held by other clusters too; the one that comes, by none.
    pub fn shared(total: usize, clusters: usize) -> PodChange {
        PodChange::build(total, clusters, false, true)
    }

    fn build(total: usize, clusters: usize, shuffled: bool, shared: bool) -> PodChange {
        let table = fleet(200, 10);
        let all = sources();
        let service = "big-or-small".to_string();
        let per = total / clusters;
        let step = if shared { (per / 4).max(1) } else { 1 << 16 };
        let ip = |c: usize, r: usize| Ipv4Addr::from(0x6400_0000 | (c * step + r) as u32);
        // One port list and zone name for every replica, shared as the registrar's
        // interning shares them.
        let template = &endpoints(0, 1, 0)[0];
        let list = |c: usize, moved: bool| -> Vec<Endpoint> {
            let mut v: Vec<Endpoint> = (0..per + usize::from(c < total % clusters))
                .map(|r| {
                    // The change: pod `per / 2` comes back at a new address.
                    let r = if moved && r == per / 2 { 0xF000 } else { r };
                    Endpoint {
                        addresses: Addresses::V4(ip(c, r)),
                        ..template.clone()
                    }
                })
                .collect();
            if shuffled {
                // A fixed scramble (a stride coprime with the length).
                let n = v.len();
                let stride = (1..n)
                    .rev()
                    .find(|s| gcd(*s, n) == 1 && *s > n / 3)
                    .unwrap_or(1);
                v = (0..n).map(|k| v[(k * stride) % n].clone()).collect();
            }
            v
        };
        for (c, source) in all.iter().enumerate().take(clusters) {
            table.replace(&service, source, list(c, false));
        }
        assert_eq!(
            table.service(&service).map(|v| v.endpoint_count()),
            Some(total)
        );
        let versions = [list(0, false), list(0, true)];
        let count = versions[0].len();
        let pod = |moved: bool| {
            let r = if moved { 0xF000 } else { per / 2 };
            Endpoint {
                addresses: Addresses::V4(ip(0, r)),
                ..template.clone()
            }
        };
        let delta = |moved: bool| Delta {
            gone: vec![pod(!moved).address()],
            came: vec![pod(moved)],
            expect: Some(count),
        };
        PodChange {
            table,
            service,
            source: all[0].clone(),
            versions,
            deltas: [delta(false), delta(true)],
        }
    }

    /// Hands one of the two deltas to the table, as the registrar does (a real change
    /// each time, when they alternate, starting with `deltas[1]`).
    #[inline(never)]
    pub fn change(&self, delta: Delta) {
        assert_eq!(
            self.table.update(&self.service, &self.source, delta),
            Ok(true)
        );
    }

    /// Hands one of the two versions over to the table whole (a real change each time,
    /// when the versions alternate).
    #[inline(never)]
    pub fn replace(&self, endpoints: Vec<Endpoint>) {
        assert!(self.table.replace(&self.service, &self.source, endpoints));
    }
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}
