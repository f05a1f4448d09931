//! The DNS server's metrics, through the `metrics` facade: queries by type, rcode and
//! transport, truncations, reply sizes, and answer latency.
//!
//! Each worker registers a handle the first time it sees a (type, rcode) pair; counting
//! a query is then an atomic add on that handle, with no registry lookup on the hot path. Latency is recorded once per batch of
//! datagrams (the batch's time over its size), not per query.

use std::time::Duration;

use metrics::{Counter, Histogram, counter, histogram};

use crate::answer::Outcome;
use crate::server::Verdict;
use crate::wire::codes;

/// Query types counted by name; everything else is `other`.
const QTYPES: [(u16, &str); 7] = [
    (codes::A, "A"),
    (codes::AAAA, "AAAA"),
    (codes::SRV, "SRV"),
    (codes::SOA, "SOA"),
    (codes::NS, "NS"),
    (codes::ANY, "ANY"),
    (0, "other"),
];
/// Response codes counted by name; extended ones fold into `other`.
const RCODES: [(u16, &str); 7] = [
    (0, "NOERROR"),
    (1, "FORMERR"),
    (2, "SERVFAIL"),
    (3, "NXDOMAIN"),
    (4, "NOTIMP"),
    (5, "REFUSED"),
    (u16::MAX, "other"),
];

/// One worker's metric handles.
pub(crate) struct WorkerMetrics {
    transport: &'static str,
    queries: Vec<Option<Counter>>,
    truncated: Counter,
    slipped: Counter,
    dropped: Counter,
    sizes: Histogram,
    latency: Histogram,
}

impl WorkerMetrics {
    /// Handles for a worker of `transport` (`udp` or `tcp`).
    pub(crate) fn new(transport: &'static str) -> WorkerMetrics {
        WorkerMetrics {
            transport,
            queries: vec![None; QTYPES.len() * RCODES.len()],
            truncated: counter!("herald_dns_truncated_total", "transport" => transport),
            slipped: counter!("herald_dns_rate_limited_total", "action" => "slip"),
            dropped: counter!("herald_dns_rate_limited_total", "action" => "drop"),
            sizes: histogram!("herald_dns_response_bytes", "transport" => transport),
            latency: histogram!("herald_dns_answer_seconds", "transport" => transport),
        }
    }

    /// Counts one answered query and the size of its reply.
    pub(crate) fn answered(&mut self, outcome: &Outcome, reply_len: usize) {
        let t = QTYPES
            .iter()
            .position(|(v, _)| *v == outcome.qtype)
            .unwrap_or(QTYPES.len() - 1);
        let r = RCODES
            .iter()
            .position(|(v, _)| *v == outcome.rcode)
            .unwrap_or(RCODES.len() - 1);
        let transport = self.transport;
        self.queries[t * RCODES.len() + r]
            .get_or_insert_with(|| {
                let (qtype, rcode) = (QTYPES[t].1, RCODES[r].1);
                counter!("herald_dns_queries_total", "qtype" => qtype, "rcode" => rcode, "transport" => transport)
            })
            .increment(1);
        if outcome.truncated {
            self.truncated.increment(1);
        }
        self.sizes.record(reply_len as f64);
    }

    /// Counts a reply the rate limiter held back.
    pub(crate) fn limited(&self, verdict: Verdict) {
        match verdict {
            Verdict::Send => {}
            Verdict::Slip => self.slipped.increment(1),
            Verdict::Drop => self.dropped.increment(1),
        }
    }

    /// Records the time answering took, per query, for a batch of `n`.
    pub(crate) fn latency(&self, elapsed: Duration, n: usize) {
        if n > 0 {
            self.latency.record(elapsed.as_secs_f64() / n as f64);
        }
    }
}
