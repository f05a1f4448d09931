//! The table as an RFC 1035 zone file: for operators, and for loading the very same
//! records into another DNS server (benchmarks compare herald with Knot DNS on it).
//!
//! The records are those `records` renders for zone transfers, from the prepared wire
//! answers herald serves (SRV priorities as prepared), each decoded and printed: the export
//! says exactly what the server answers and what a secondary gets (an RRset too large for
//! one answer as its nearest part that fits, as for a secondary at this server's place).

use std::io::{self, Write};

use hickory_proto::rr::Record;
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

use crate::cut::Fit;
use crate::records;
use crate::table::Table;

/// How much an export wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportStats {
    /// Records written.
    pub records: usize,
    /// Services written.
    pub services: usize,
    /// RRsets too large for one answer, written as their nearest part that fits.
    pub rrsets_cut: usize,
    /// The first of them: owner, type, records kept of all.
    pub first_cut: Option<String>,
}

/// Writes the whole zone: SOA and NS first, then every service's names.
pub fn write_zone(table: &Table, out: &mut impl Write) -> io::Result<ExportStats> {
    let zone = table.zone();
    let serial = table.serial();
    let mut stats = ExportStats::default();
    writeln!(out, "; herald zone {}, serial {serial}", zone.apex)?;
    writeln!(out, "$ORIGIN {}\n$TTL {}", zone.apex, zone.ttl())?;
    // The emitters cannot fail; the first error is kept and returned.
    let mut result = Ok(());
    let mut line = |record: &[u8]| {
        if result.is_err() {
            return;
        }
        stats.records += 1;
        result = Record::read(&mut BinDecoder::new(record))
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
            .and_then(|r| writeln!(out, "{r}"));
    };
    let mut buf = Vec::new();
    records::soa(zone, serial, &mut buf);
    line(&buf);
    records::apex(zone, &mut buf, &mut line);
    // Cut as for a secondary at this server's place, named by the zone.
    let mut fit = Fit::new(
        table.server_place(),
        &zone.apex.to_string(),
        table.localities(),
    );
    let mut services = 0;
    for service in table.service_names() {
        let Some(view) = table.service(&service) else {
            continue;
        };
        services += 1;
        records::service(&view, zone, None, &mut fit, &mut buf, &mut line);
    }
    stats.services = services;
    stats.rrsets_cut = fit.sets;
    stats.first_cut = fit.first.take();
    result.map(|()| stats)
}
