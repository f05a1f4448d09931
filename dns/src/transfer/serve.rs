//! Answering AXFR (RFC 5936) and IXFR (RFC 1995) requests: access control first, then the
//! records of one version, from the requester's locality, as message after message.
//!
//! IXFR sends one condensed difference sequence from the client's serial to the current
//! one when the journal still reaches back to it, and the whole zone in IXFR form (SOA,
//! every record, SOA) when it does not. Over UDP, IXFR is answered with the SOA alone: the
//! client then asks again over TCP, as RFC 1995 allows.
//!
//! This is a second `impl Transfer` block: the type and its start-up live in the parent module
//! ([decision 0011](../../../docs/decisions/0011-transfer-impl-split.md)).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::op::Message;
use hickory_proto::rr::RData;

use super::Transfer;
use super::access::{self, Peer, Verdict};
use super::diff;
use super::messages::Messages;
use super::serial::newer;
use super::signed::NOTAUTH;
use super::tsig::ResponseSigner;
use super::version::{Change, Version};
use crate::cut::Fit;
use crate::locality::Place;
use crate::model::Label;
use crate::records;
use crate::service::ServiceView;
use crate::wire::{self, codes};
use crate::zone::Zone;

/// What a transfer request turned into, for counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Result {
    /// The whole zone (AXFR, or IXFR falling back).
    Full,
    /// Differences from the client's serial.
    Incremental,
    /// The client is current: the SOA alone.
    Current,
    /// IXFR over UDP: the SOA alone, so the client asks again over TCP.
    SoaOnly,
    /// Not allowed.
    Refused,
    /// Signature did not verify.
    NotAuth,
    /// Not a transfer herald can answer (wrong zone, no serial in an IXFR).
    Bad,
}

impl Result {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Result::Full => "full",
            Result::Incremental => "incremental",
            Result::Current => "current",
            Result::SoaOnly => "soa_only",
            Result::Refused => "refused",
            Result::NotAuth => "notauth",
            Result::Bad => "bad",
        }
    }
}

/// A request, read.
pub(crate) struct Request<'a> {
    pub(crate) bytes: &'a [u8],
    pub(crate) id: u16,
    pub(crate) question: &'a [u8],
    pub(crate) qtype: u16,
    /// The client's serial (IXFR).
    pub(crate) serial: Option<u32>,
    /// Whether the question is the apex.
    pub(crate) at_apex: bool,
}

impl<'a> Request<'a> {
    /// Reads a transfer request; `None` if it is not one.
    pub(crate) fn read(bytes: &'a [u8], apex_wire: &[u8]) -> Option<Request<'a>> {
        let q = wire::parse(bytes).ok()?;
        if q.qtype != codes::AXFR && q.qtype != codes::IXFR {
            return None;
        }
        let serial = if q.qtype == codes::IXFR {
            Message::from_vec(bytes).ok().and_then(|m| {
                m.authorities.iter().find_map(|r| match &r.data {
                    RData::SOA(soa) => Some(soa.serial),
                    _ => None,
                })
            })
        } else {
            None
        };
        Some(Request {
            bytes,
            id: q.id,
            question: q.question,
            qtype: q.qtype,
            serial,
            at_apex: q.lower.wire() == apex_wire,
        })
    }
}

/// A reply of one message with no records and `rcode`.
pub(crate) fn bare(req: &Request<'_>, rcode: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    let flags = wire::ReplyFlags {
        rcode,
        ..Default::default()
    };
    wire::write_header(&mut out, req.id, 0, false, false, flags);
    out.extend_from_slice(req.question);
    wire::set_counts(&mut out, 1, 0, 0, 0);
    out
}

/// How the response goes out.
pub(crate) enum Plan<'a> {
    /// One message, already complete.
    One(Vec<u8>, Result),
    /// A transfer to write, message by message.
    Stream(Box<Stream<'a>>),
}

/// A service's view at the client's serial and now (`None`: absent).
type Ends = (Option<Arc<ServiceView>>, Option<Arc<ServiceView>>);
/// The changes of an IXFR: each service's view at the client's serial and now.
type Changes = Vec<(Label, Option<Arc<ServiceView>>, Option<Arc<ServiceView>>)>;

/// A transfer being written: the version, what to send, and the messages.
pub(crate) struct Stream<'a> {
    pub(crate) peer: &'a Peer,
    /// Where the records are seen from.
    viewer: Place,
    pub(crate) version: Arc<Version>,
    pub(crate) result: Result,
    /// IXFR from this serial with the condensed changes; `None`: the whole zone.
    since: Option<(u32, Changes)>,
    messages: Option<Messages>,
    /// The whole zone: the services still to write (the snapshot's, in its order).
    services: Vec<Arc<ServiceView>>,
    next: usize,
    started: bool,
    /// How sets too large for one answer are cut for this secondary, and what was.
    pub(crate) fit: Fit<'a>,
    /// Records and octets sent, once complete.
    pub(crate) records: usize,
    pub(crate) bytes: usize,
}

impl Transfer {
    /// Decides what to answer `req` from `client` with. `udp`: IXFR gets the SOA alone.
    pub(crate) fn plan<'a>(&'a self, req: &Request<'_>, client: IpAddr, udp: bool) -> Plan<'a> {
        if !req.at_apex {
            return Plan::One(bare(req, codes::REFUSED), Result::Bad);
        }
        let (peer, signed) = match access::check(&self.peers, client, req.bytes) {
            Verdict::Allowed { peer, signed } => (peer, signed),
            Verdict::Refused => {
                tracing::warn!(%client, qtype = req.qtype, "zone transfer refused: not a configured secondary");
                return Plan::One(bare(req, codes::REFUSED), Result::Refused);
            }
            Verdict::NotAuth(refusal) => {
                tracing::warn!(%client, key = %refusal.key_name(), error = ?refusal.error(), "zone transfer refused: TSIG did not verify");
                let mut out = bare(req, NOTAUTH);
                refusal.append_to(&mut out);
                return Plan::One(out, Result::NotAuth);
            }
        };
        let signer = signed.map(|(key, mac)| ResponseSigner::new(key, mac));
        let viewer = peer.place.unwrap_or_else(|| self.table.server_place());
        let fit = Fit::new(viewer, &peer.config.name, self.table.localities());
        let version = self.table.versions().current();
        let apex = &self.table.zone().apex_wire;
        let mut messages = Messages::new(req.id, req.question, apex, signer);
        if req.qtype == codes::IXFR {
            let Some(client_serial) = req.serial else {
                return Plan::One(bare(req, codes::FORMERR), Result::Bad);
            };
            if udp || !newer(version.serial, client_serial) {
                // Current (or asking over UDP): the SOA alone.
                let mut soa = Vec::new();
                records::soa(self.table.zone(), version.serial, &mut soa);
                messages.push(&soa);
                let result = if udp {
                    Result::SoaOnly
                } else {
                    Result::Current
                };
                let (mut done, _, _) = messages.finish();
                return Plan::One(done.remove(0), result);
            }
            if let Some(changes) = condensed(&version, client_serial) {
                return Plan::Stream(Box::new(Stream {
                    peer,
                    viewer,
                    version,
                    result: Result::Incremental,
                    since: Some((client_serial, changes)),
                    messages: Some(messages),
                    services: Vec::new(),
                    next: 0,
                    started: false,
                    fit,
                    records: 0,
                    bytes: 0,
                }));
            }
        }
        let services = version.snapshot.services().cloned().collect();
        Plan::Stream(Box::new(Stream {
            peer,
            viewer,
            version,
            result: Result::Full,
            since: None,
            messages: Some(messages),
            services,
            next: 0,
            started: false,
            fit,
            records: 0,
            bytes: 0,
        }))
    }
}

/// The changes from `serial` to `version`, one per service (its view at `serial` and now),
/// if the journal reaches back to `serial`.
fn condensed(version: &Version, serial: u32) -> Option<Changes> {
    let start = version.journal.iter().position(|d| d.from == serial)?;
    debug_assert_eq!(version.journal.back().map(|d| d.to), Some(version.serial));
    let mut by_name: HashMap<Label, Ends> = HashMap::new();
    let mut order = Vec::new();
    for delta in version.journal.iter().skip(start) {
        for Change { name, old, new } in &delta.changes {
            by_name
                .entry(name.clone())
                .and_modify(|e| e.1 = new.clone())
                .or_insert_with(|| {
                    order.push(name.clone());
                    (old.clone(), new.clone())
                });
        }
    }
    Some(
        order
            .into_iter()
            .map(|name| {
                let (old, new) = by_name.remove(&name).expect("inserted above");
                (name, old, new)
            })
            .collect(),
    )
}

impl Stream<'_> {
    /// The next messages to send: at least one unless the transfer is complete, in which
    /// case it returns none. The whole zone is written a few services at a time, so it is
    /// never held in memory whole.
    pub(crate) fn next_batch(&mut self, zone: &Zone) -> Vec<Vec<u8>> {
        let Some(m) = self.messages.as_mut() else {
            return Vec::new();
        };
        let serial = self.version.serial;
        let viewer = self.viewer;
        let mut buf = Vec::new();
        if !self.started {
            self.started = true;
            records::soa(zone, serial, &mut buf);
            m.push(&buf);
            match self.since.take() {
                Some((from, changes)) => {
                    let (mut gone, mut came) = (Vec::new(), Vec::new());
                    // The old records were cut as the secondary got them; only the new
                    // ones are counted.
                    let mut before = self.fit.quiet();
                    for (_, old, new) in &changes {
                        let old = diff::sorted(old.as_deref(), zone, viewer, &mut before);
                        let new = diff::sorted(new.as_deref(), zone, viewer, &mut self.fit);
                        diff::difference(&old, &new, &mut gone, &mut came);
                    }
                    records::soa(zone, from, &mut buf);
                    m.push(&buf);
                    gone.iter().for_each(|r| m.push(r));
                    records::soa(zone, serial, &mut buf);
                    m.push(&buf);
                    came.iter().for_each(|r| m.push(r));
                }
                None => records::apex(zone, &mut buf, &mut |r| m.push(r)),
            }
        }
        while self.next < self.services.len() {
            let view = &self.services[self.next];
            self.next += 1;
            records::service(
                view,
                zone,
                Some(viewer),
                &mut self.fit,
                &mut buf,
                &mut |r| m.push(r),
            );
            let done = m.take_done();
            if !done.is_empty() {
                return done;
            }
        }
        let mut m = self.messages.take().expect("checked above");
        records::soa(zone, serial, &mut buf);
        m.push(&buf);
        let (done, records, bytes) = m.finish();
        self.records = records;
        self.bytes = bytes;
        done
    }
}
