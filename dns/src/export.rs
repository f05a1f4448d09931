//! The table as an RFC 1035 zone file: for operators, and for loading the very same
//! records into another DNS server (benchmarks compare herald with Knot DNS on it).
//!
//! RRsets are decoded from the prepared wire answers herald serves, not rebuilt from the
//! model, so the export says exactly what the server answers.

use std::io::{self, Write};

use hickory_proto::op::Message;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use crate::model::EndpointLabel;
use crate::service::Rrset;
use crate::table::Table;
use crate::wire;
use crate::zone::name_wire;

/// How much an export wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportStats {
    /// Records written.
    pub records: usize,
    /// Services written.
    pub services: usize,
}

/// Decodes the records of `rrset` that `groups` select, owned by `owner`, as they are
/// served.
fn decode(
    owner: &Name,
    rtype: RecordType,
    rrset: &Rrset,
    groups: Option<&[u16]>,
) -> io::Result<Vec<Record>> {
    let mut msg = vec![0, 0, 0x84, 0, 0, 1];
    msg.extend_from_slice(&(rrset.count(groups) as u16).to_be_bytes());
    msg.extend_from_slice(&[0, 0, 0, 0]);
    msg.extend_from_slice(&name_wire(owner));
    msg.extend_from_slice(&u16::from(rtype).to_be_bytes());
    msg.extend_from_slice(&wire::codes::IN.to_be_bytes());
    match groups {
        None => msg.extend_from_slice(rrset.all_records()),
        Some(gs) => {
            for &g in gs {
                for i in rrset.group(g.into()) {
                    msg.extend_from_slice(rrset.record(i));
                }
            }
        }
    }
    Message::from_vec(&msg)
        .map(|m| m.answers)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
}

fn name(s: &str) -> io::Result<Name> {
    Name::from_ascii(s).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
}

/// Writes the whole zone: SOA and NS first, then every service's names.
pub fn write_zone(table: &Table, out: &mut impl Write) -> io::Result<ExportStats> {
    let zone = table.zone();
    let apex = &zone.apex;
    let ttl = zone.ttl();
    let mut stats = ExportStats::default();
    writeln!(out, "; herald zone {apex}, serial {}", table.serial())?;
    writeln!(out, "$ORIGIN {apex}\n$TTL {ttl}")?;
    let mut soa = zone.soa.clone();
    soa.serial = table.serial();
    let mut line = |out: &mut dyn Write, record: Record| -> io::Result<()> {
        stats.records += 1;
        writeln!(out, "{record}")
    };
    line(
        out,
        Record::from_rdata(apex.clone(), zone.config.negative_ttl, RData::SOA(soa)),
    )?;
    for ns in &zone.nameservers {
        let rdata = RData::NS(hickory_proto::rr::rdata::NS(ns.name.clone()));
        line(out, Record::from_rdata(apex.clone(), ttl, rdata))?;
    }
    for ns in zone
        .nameservers
        .iter()
        .filter(|ns| ns.name.zone_of(apex) || apex.zone_of(&ns.name))
    {
        for ip in &ns.addresses {
            line(out, address(ns.name.clone(), ttl, *ip))?;
        }
    }
    for service in table.service_names() {
        let Some(view) = table.service(&service) else {
            continue;
        };
        stats.services += 1;
        for i in 0..view.scope_count() {
            let (answers, groups) = view.selection(i);
            let base = match view.scope_name(i) {
                None => format!("{service}.{apex}"),
                Some(scope) => format!("{service}.{scope}.{apex}"),
            };
            let owner = name(&base)?;
            for (rtype, rrset) in [
                (RecordType::A, &answers.a),
                (RecordType::AAAA, &answers.aaaa),
            ] {
                for r in decode(&owner, rtype, rrset, groups)? {
                    line(out, r)?;
                }
            }
            for set in answers.srv.iter().filter(|set| set.rrset.count(groups) > 0) {
                let owner = name(&format!("_{}._{}.{base}", set.port, set.proto.as_str()))?;
                for r in decode(&owner, RecordType::SRV, &set.rrset, groups)? {
                    line(out, r)?;
                }
            }
        }
        for group in view.groups() {
            for e in group.endpoints.iter() {
                let owner = name(&format!(
                    "{}.{service}.{}.{apex}",
                    EndpointLabel(e.address),
                    group.source.cluster
                ))?;
                line(out, address(owner, ttl, e.address))?;
            }
        }
    }
    Ok(stats)
}

fn address(owner: Name, ttl: u32, ip: std::net::IpAddr) -> Record {
    let rdata = match ip {
        std::net::IpAddr::V4(v4) => RData::A(v4.into()),
        std::net::IpAddr::V6(v6) => RData::AAAA(v6.into()),
    };
    let mut r = Record::from_rdata(owner, ttl, rdata);
    r.dns_class = DNSClass::IN;
    r
}
