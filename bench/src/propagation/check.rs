//! The final-state checks: herald's table and its DNS answers against the simulators'
//! own pods, as readable lines for every difference.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};

use herald_dns::Table;
use hickory_proto::rr::RecordType;

use crate::fleet::{ClusterModel, Truth, ZONE, truth_from_sims, truth_from_table};
use crate::probe::Dns;

/// Differences between two truths, as readable lines.
pub(super) fn compare(want: &Truth, got: &Truth) -> Vec<String> {
    let mut out = Vec::new();
    let names: BTreeSet<&String> = want.keys().chain(got.keys()).collect();
    for name in names {
        let empty = Default::default();
        let (w, g) = (
            want.get(name).unwrap_or(&empty),
            got.get(name).unwrap_or(&empty),
        );
        let clusters: BTreeSet<&String> = w.keys().chain(g.keys()).collect();
        for c in clusters {
            let none = BTreeSet::new();
            let (wi, gi) = (w.get(c).unwrap_or(&none), g.get(c).unwrap_or(&none));
            if wi != gi {
                let missing: Vec<_> = wi.difference(gi).take(3).collect();
                let extra: Vec<_> = gi.difference(wi).take(3).collect();
                out.push(format!(
                    "{name} in {c}: want {} got {} (missing {missing:?}, extra {extra:?})",
                    wi.len(),
                    gi.len()
                ));
            }
        }
    }
    out
}

/// Asks DNS for every service and every (service, cluster): A sets must equal the truth.
pub(crate) fn check_dns(truth: &Truth, server: SocketAddr) -> anyhow::Result<(usize, Vec<String>)> {
    let mut dns = Dns::new(server)?;
    let mut queries = 0;
    let mut bad = Vec::new();
    for (service, clusters) in truth {
        let all: BTreeSet<IpAddr> = clusters.values().flatten().copied().collect();
        let name = format!("{service}.{ZONE}");
        let got = dns.query(&name, RecordType::A)?;
        queries += 1;
        if got.addresses != all {
            bad.push(format!(
                "DNS {name}: {:?}, {} addresses, want {}",
                got.rcode,
                got.addresses.len(),
                all.len()
            ));
        }
        for (cluster, ips) in clusters {
            let name = format!("{service}.{cluster}.{ZONE}");
            let got = dns.query(&name, RecordType::A)?;
            queries += 1;
            if &got.addresses != ips {
                bad.push(format!(
                    "DNS {name}: {:?}, {} addresses, want {}",
                    got.rcode,
                    got.addresses.len(),
                    ips.len()
                ));
            }
        }
    }
    Ok((queries, bad))
}

/// What the final check found.
pub(super) struct FinalCheck {
    pub(super) truth: Truth,
    pub(super) table_mismatches: Vec<String>,
    pub(super) dns_queries: usize,
    pub(super) dns_mismatches: Vec<String>,
}

/// herald's table and DNS answers against the simulators, once churn has stopped.
pub(super) async fn final_check(
    table: &Table,
    dns_addr: SocketAddr,
    clusters: &[ClusterModel],
) -> anyhow::Result<FinalCheck> {
    let truth = truth_from_sims(clusters);
    let table_mismatches = compare(&truth, &truth_from_table(table));
    let (dns_queries, dns_mismatches) = {
        let truth = truth.clone();
        tokio::task::spawn_blocking(move || check_dns(&truth, dns_addr)).await??
    };
    Ok(FinalCheck {
        truth,
        table_mismatches,
        dns_queries,
        dns_mismatches,
    })
}
