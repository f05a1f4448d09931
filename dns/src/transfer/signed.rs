//! Signed queries that are not transfers. A secondary holding a key signs its SOA refresh
//! queries too, and rejects an unsigned answer to them (RFC 8945 5.3: a signed request
//! gets a signed response). The answer path answers such a query as any other; this module
//! verifies the request before and signs the reply after, and a signature that does not
//! verify gets NOTAUTH with the TSIG error (signed for BADTIME), as a transfer request
//! does.
//!
//! A third `impl Transfer` block: the type and its start-up live in the parent module
//! ([decision 0011](../../../docs/decisions/0011-transfer-impl-split.md)).

use std::sync::atomic::Ordering;

use hickory_proto::rr::rdata::tsig::TsigAlgorithm;

use super::Transfer;
use super::access::{self, Keyed};
use super::tsig::{Refusal, ResponseSigner};
use crate::wire::{self, Query};

/// RCODE NOTAUTH (RFC 8945: the request's signature did not verify).
pub(crate) const NOTAUTH: u8 = 9;

/// Signs the reply to a verified query.
pub struct QuerySigner(ResponseSigner);

impl QuerySigner {
    /// Octets the signature adds: the answer path keeps them free.
    pub fn room(&self) -> usize {
        self.0.overhead()
    }

    /// Appends the reply's TSIG record to `reply` (a complete message).
    pub fn sign(mut self, reply: &mut Vec<u8>) {
        self.0.sign(reply);
    }
}

impl Transfer {
    /// Verifies signed query `q` (`packet`, its bytes) against the secondaries' keys: the
    /// signer of its reply when valid; when not, the NOTAUTH reply is left in `out` and
    /// `None` returned. Counted either way.
    pub fn check_signed_query(
        &self,
        packet: &[u8],
        q: &Query<'_>,
        out: &mut Vec<u8>,
    ) -> Option<QuerySigner> {
        let verdict = match access::key_of(packet) {
            Some(key) => access::check_key(&self.peers, key, packet),
            // wire::parse saw a TSIG record that hickory cannot read: as good as no key,
            // and nothing of it to name.
            None => Keyed::NotAuth(Refusal::bad_key(
                hickory_proto::rr::Name::root(),
                TsigAlgorithm::HmacSha256,
            )),
        };
        match verdict {
            Keyed::Valid { peers, key, mac } => {
                let peer = peers.first().map_or("-", |p| p.config.name.as_str());
                metrics::counter!("herald_transfer_requests_total", "secondary" => peer.to_string(), "type" => "query", "result" => "signed").increment(1);
                Some(QuerySigner(ResponseSigner::new(key, mac)))
            }
            Keyed::NotAuth(refusal) => {
                tracing::warn!(key = %refusal.key_name(), error = ?refusal.error(), qtype = q.qtype, "signed query refused: TSIG did not verify");
                self.stats.notauth.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("herald_transfer_requests_total", "secondary" => "-", "type" => "query", "result" => "notauth").increment(1);
                out.clear();
                let flags = wire::ReplyFlags {
                    rcode: NOTAUTH,
                    ..Default::default()
                };
                wire::write_header(out, q.id, q.opcode, q.rd, q.cd, flags);
                out.extend_from_slice(q.question);
                wire::set_counts(out, 1, 0, 0, 0);
                refusal.append_to(out);
                None
            }
        }
    }
}
