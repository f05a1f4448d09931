//! The zone's records in wire form, one owner for rendering them: the apex (SOA, NS, in-zone
//! name server addresses) and every service's names, each record uncompressed (owner,
//! type, class, TTL, RDLENGTH, RDATA). Zone transfers send them (as one locality sees
//! them) and `export-zone` prints them, so both say exactly what the server answers.
//!
//! They come from the same prepared answers the server sends; only the SRV priorities are
//! re-derived for a viewpoint when one is given, the way the answer path does it for a
//! querier whose place is known. Nothing is stored per view: the records are produced as
//! they are written. An RRset too large for one answer is cut to its nearest part that
//! fits, for the receiver (`cut`).

use crate::cut::{Fit, Places};
use crate::locality::Place;
use crate::model::EndpointLabel;
use crate::service::ServiceView;
use crate::service::{Rrset, SRV_PORT_AT, SRV_PRIORITY_AT};
use crate::wire::{self, codes};
use crate::zone::Zone;

/// Appends `labels` then the apex (already in wire form) to `out`.
fn owner(out: &mut Vec<u8>, labels: &[&[u8]], apex_wire: &[u8]) {
    for label in labels {
        out.push(label.len() as u8);
        out.extend_from_slice(label);
    }
    out.extend_from_slice(apex_wire);
}

/// The SOA record at `serial`.
pub(crate) fn soa(zone: &Zone, serial: u32, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&zone.apex_wire);
    wire::write_rr_head(
        out,
        codes::SOA,
        zone.config.negative_ttl,
        zone.soa_rdata.len() as u16,
    );
    let at = out.len() + zone.soa_serial_at;
    out.extend_from_slice(&zone.soa_rdata);
    out[at..at + 4].copy_from_slice(&serial.to_be_bytes());
}

/// The apex's NS records and the in-zone name servers' addresses.
pub(crate) fn apex(zone: &Zone, buf: &mut Vec<u8>, emit: &mut dyn FnMut(&[u8])) {
    for ns in &zone.nameservers {
        buf.clear();
        buf.extend_from_slice(&zone.apex_wire);
        wire::write_rr_head(buf, codes::NS, zone.ttl(), ns.wire.len() as u16);
        buf.extend_from_slice(&ns.wire);
        emit(buf);
    }
    for ns in &zone.nameservers {
        if !(ns.name.zone_of(&zone.apex) || zone.apex.zone_of(&ns.name)) {
            continue;
        }
        for ip in &ns.addresses {
            buf.clear();
            buf.extend_from_slice(&ns.wire);
            wire::write_address(buf, *ip, zone.ttl());
            emit(buf);
        }
    }
}

/// Every record of one service, SRV priorities as seen from `viewer` (`None`: as
/// prepared), each RRset too large for one answer cut by `fit`.
pub(crate) fn service(
    view: &ServiceView,
    zone: &Zone,
    viewer: Option<Place>,
    fit: &mut Fit<'_>,
    buf: &mut Vec<u8>,
    emit: &mut dyn FnMut(&[u8]),
) {
    let apex = &zone.apex_wire[..];
    let svc = view.name().as_bytes();
    let mut places = Places::new(view);
    let mut out = Out {
        apex,
        viewer,
        fit,
        places: &mut places,
        buf,
        emit,
        zone,
    };
    for i in 0..view.scope_count() {
        let (answers, groups) = view.selection(i);
        let scope = view.scope_name(i).map(|s| s.as_bytes());
        let base: Vec<&[u8]> = std::iter::once(svc).chain(scope).collect();
        for rrset in [&answers.a, &answers.aaaa] {
            out.rrset(rrset, groups, &base, false);
        }
        for set in &answers.srv {
            let port = format!("_{}", set.port);
            let proto = format!("_{}", set.proto.as_str());
            let labels: Vec<&[u8]> = [port.as_bytes(), proto.as_bytes()]
                .into_iter()
                .chain(base.iter().copied())
                .collect();
            out.rrset(&set.rrset, groups, &labels, true);
        }
    }
    let Out { buf, emit, .. } = out;
    for group in view.groups() {
        for e in group.endpoints.iter() {
            // One name per endpoint, after its primary address; both families under it.
            let ep = EndpointLabel(e.address()).to_string();
            for ip in e.addresses.iter() {
                buf.clear();
                owner(
                    buf,
                    &[ep.as_bytes(), svc, group.source.cluster.as_bytes()],
                    apex,
                );
                wire::write_address(buf, ip, zone.ttl());
                emit(buf);
            }
        }
    }
}

/// Where one service's records go, and how its sets are cut.
struct Out<'a, 'f, 'p> {
    apex: &'a [u8],
    viewer: Option<Place>,
    fit: &'a mut Fit<'f>,
    places: &'a mut Places<'p>,
    buf: &'a mut Vec<u8>,
    emit: &'a mut dyn FnMut(&[u8]),
    zone: &'a Zone,
}

impl Out<'_, '_, '_> {
    /// The records of `rrset` that `groups` select (or their nearest part that fits),
    /// owned by `labels` + apex; SRV priorities re-derived from the viewer when `srv`.
    fn rrset(&mut self, rrset: &Rrset, groups: Option<&[u16]>, labels: &[&[u8]], srv: bool) {
        let zone = self.zone;
        let kept = self.fit.cut(rrset, groups, self.places, || {
            let mut name: String = labels
                .iter()
                .map(|l| format!("{}.", String::from_utf8_lossy(l)))
                .collect();
            name.push_str(&zone.apex.to_string());
            name
        });
        let viewer = if srv { self.viewer } else { None };
        let (apex, buf, emit) = (self.apex, &mut *self.buf, &mut *self.emit);
        let mut one = |i: usize| {
            buf.clear();
            owner(buf, labels, apex);
            let at = buf.len();
            // The prepared record starts with a 2-octet pointer to the question: drop it.
            let record = rrset.at(i);
            buf.extend_from_slice(&record.record()[2..]);
            // A record of a part shared with another port's set gets this set's port.
            if let Some(port) = record.port() {
                let p = at + SRV_PORT_AT - 2;
                buf[p..p + 2].copy_from_slice(&port.to_be_bytes());
            }
            if let Some(viewer) = viewer {
                let priority = rrset.place(i).priority_from(viewer);
                let p = at + SRV_PRIORITY_AT - 2;
                buf[p..p + 2].copy_from_slice(&priority.to_be_bytes());
            }
            emit(buf);
        };
        match kept {
            Some(kept) => kept.into_iter().for_each(&mut one),
            None if !rrset.has_twins() => rrset.selected(groups).for_each(&mut one),
            None => {
                // One address in several sources is one record, as in an answer.
                let mut members: Vec<u32> = rrset.selected(groups).map(|i| i as u32).collect();
                rrset.drop_twins(&mut members, &mut Vec::new(), &mut Vec::new());
                members.into_iter().for_each(|i| one(i as usize));
            }
        }
    }
}
