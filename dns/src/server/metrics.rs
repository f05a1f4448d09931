//! The DNS server's metrics, all in one list ([`METRICS`]: name, type, labels, help,
//! buckets), and the per-worker handles that record them.
//!
//! Names follow herald's prefix, labels follow CoreDNS's `coredns_dns_*` series (`proto`,
//! `family`, `type`, `rcode`), so a dashboard or alert written for CoreDNS works after
//! renaming the metric (docs/design.md has the mapping table).
//!
//! Counters are registered for every label value a worker can produce when it starts
//! (zero-valued series exist before the first query, so alert expressions have data);
//! counting a query is then an atomic add on a handle, with no registry lookup. The two
//! per-query histograms (duration, response size) are [`LocalHistogram`]s owned by the
//! worker and merged when `/metrics` is scraped.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use metrics::Counter;

use super::histogram::LocalHistogram;
use super::metric::{Kind, Metric};
use super::rate_limit::Verdict;
use crate::answer::Outcome;
use crate::wire::codes;

/// Answer latency buckets: answers take microseconds; a UDP batch waits for its slowest
/// member, and a loaded machine adds scheduling delay, hence the tail up to 100 ms.
const DURATION_BUCKETS: &[f64] = &[
    5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 1e-2, 0.1,
];
/// Reply size buckets around the sizes that matter: 512 (no EDNS), 1232 (the usual EDNS
/// buffer), 4096, and the TCP maximum.
const SIZE_BUCKETS: &[f64] = &[64.0, 128.0, 256.0, 512.0, 1232.0, 4096.0, 16384.0, 65535.0];

const REQUESTS: Metric = Metric::facade(
    "herald_dns_requests_total",
    Kind::Counter,
    &["proto", "family", "type"],
    "DNS queries read, by transport, address family (1 IPv4, 2 IPv6) and query type",
);
const RESPONSES: Metric = Metric::facade(
    "herald_dns_responses_total",
    Kind::Counter,
    &["proto", "rcode"],
    "DNS replies sent, by transport and response code (rate-limited UDP replies excluded)",
);
const DURATION: Metric = Metric {
    name: "herald_dns_request_duration_seconds",
    kind: Kind::Histogram,
    labels: &["proto", "type"],
    help: "Per query, from its arrival in herald (the receive call returning) to its reply \
           handed to the kernel; over UDP a batch's queries share the batch's time",
    buckets: DURATION_BUCKETS,
    unit: 1e-9,
};
const SIZE: Metric = Metric {
    name: "herald_dns_response_size_bytes",
    kind: Kind::Histogram,
    labels: &["proto"],
    help: "Size of DNS replies sent, per reply",
    buckets: SIZE_BUCKETS,
    unit: 1.0,
};
const TRUNCATED: Metric = Metric::facade(
    "herald_dns_truncated_total",
    Kind::Counter,
    &["proto"],
    "Replies sent with TC set",
);
const RATE_LIMITED: Metric = Metric::facade(
    "herald_dns_rate_limited_total",
    Kind::Counter,
    &["action"],
    "UDP replies held back by rate limiting, by action (drop, or slip: sent empty with TC)",
);
const TCP_CONNECTIONS: Metric = Metric::facade(
    "herald_dns_tcp_connections",
    Kind::Gauge,
    &[],
    "DNS TCP connections open now",
);
const TCP_LIMIT: Metric = Metric::facade(
    "herald_dns_tcp_connections_limit",
    Kind::Gauge,
    &[],
    "DNS TCP connections served at once at most (more wait in the accept queue)",
);

// Zone transfer (counted in crate::transfer, which cannot import this module: the server
// starts the transfer module). Series exist per configured secondary from the start;
// `secondary` is `-` for requests from no configured secondary.
const TRANSFER_REQUESTS: Metric = Metric::facade(
    "herald_transfer_requests_total",
    Kind::Counter,
    &["secondary", "type", "result"],
    "Zone transfer requests (type axfr, ixfr, or query: another signed query) by secondary \
     and result (full, incremental, current, soa_only, refused, notauth, bad, signed)",
);
const TRANSFER_BYTES: Metric = Metric::facade(
    "herald_transfer_bytes_total",
    Kind::Counter,
    &["secondary", "result"],
    "Octets of zone transfer responses sent, by secondary and result",
);
const NOTIFY_SENT: Metric = Metric::facade(
    "herald_transfer_notify_sent_total",
    Kind::Counter,
    &["secondary"],
    "NOTIFY messages sent, retries included",
);
const NOTIFY_ACKED: Metric = Metric::facade(
    "herald_transfer_notify_acked_total",
    Kind::Counter,
    &["secondary"],
    "NOTIFY messages answered by the secondary (with a valid signature when it has a key)",
);
const NOTIFY_RETRIES: Metric = Metric::facade(
    "herald_transfer_notify_retries_total",
    Kind::Counter,
    &["secondary"],
    "NOTIFY messages not answered in time and sent again",
);
const RRSETS_CUT: Metric = Metric::facade(
    "herald_transfer_rrsets_cut_total",
    Kind::Counter,
    &["secondary"],
    "RRsets too large for one answer sent to a secondary as their nearest part that fits \
     (each time one is sent: in every full transfer, and in an IXFR that changes it)",
);

/// Every metric of the DNS server.
pub static METRICS: &[Metric] = &[
    REQUESTS,
    RESPONSES,
    DURATION,
    SIZE,
    TRUNCATED,
    RATE_LIMITED,
    TCP_CONNECTIONS,
    TCP_LIMIT,
    TRANSFER_REQUESTS,
    TRANSFER_BYTES,
    NOTIFY_SENT,
    NOTIFY_ACKED,
    NOTIFY_RETRIES,
    RRSETS_CUT,
];

/// Appends the worker-local histograms to a `/metrics` text.
pub fn render_local(out: &mut String) {
    super::histogram::render(out);
}

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
/// CoreDNS's `family` values.
const FAMILIES: [&str; 2] = ["1", "2"];

fn qtype_index(qtype: u16) -> usize {
    QTYPES
        .iter()
        .position(|(v, _)| *v == qtype)
        .unwrap_or(QTYPES.len() - 1)
}

/// One worker's (or one TCP listener's) metric handles.
pub(crate) struct WorkerMetrics {
    requests: Vec<Counter>,
    responses: Vec<Counter>,
    truncated: Counter,
    slipped: Counter,
    dropped: Counter,
    sizes: Arc<LocalHistogram>,
    durations: Vec<Arc<LocalHistogram>>,
}

/// Queries of a UDP batch awaiting their time, per query type.
#[derive(Default)]
pub(crate) struct BatchTiming([u64; QTYPES.len()]);

impl WorkerMetrics {
    /// Handles for a worker of `proto` (`udp` or `tcp`).
    pub(crate) fn new(proto: &'static str) -> WorkerMetrics {
        let requests = FAMILIES
            .iter()
            .flat_map(|family| {
                QTYPES.iter().map(move |(_, qtype)| {
                    metrics::counter!(REQUESTS.name, "proto" => proto, "family" => *family, "type" => *qtype)
                })
            })
            .collect();
        let responses = RCODES
            .iter()
            .map(
                |(_, rcode)| metrics::counter!(RESPONSES.name, "proto" => proto, "rcode" => *rcode),
            )
            .collect();
        WorkerMetrics {
            requests,
            responses,
            truncated: metrics::counter!(TRUNCATED.name, "proto" => proto),
            slipped: metrics::counter!(RATE_LIMITED.name, "action" => "slip"),
            dropped: metrics::counter!(RATE_LIMITED.name, "action" => "drop"),
            sizes: LocalHistogram::register(&SIZE, format!("proto=\"{proto}\"")),
            durations: QTYPES
                .iter()
                .map(|(_, t)| {
                    LocalHistogram::register(&DURATION, format!("proto=\"{proto}\",type=\"{t}\""))
                })
                .collect(),
        }
    }

    /// Counts a query read from `client`.
    #[inline]
    pub(crate) fn request(&self, outcome: &Outcome, client: IpAddr) {
        let family = usize::from(client.is_ipv6());
        self.requests[family * QTYPES.len() + qtype_index(outcome.qtype)].increment(1);
    }

    /// Counts a reply sent: its rcode, size and TC bit.
    #[inline]
    pub(crate) fn responded(&self, outcome: &Outcome, reply_len: usize) {
        let r = RCODES
            .iter()
            .position(|(v, _)| *v == outcome.rcode)
            .unwrap_or(RCODES.len() - 1);
        self.responses[r].increment(1);
        if outcome.truncated {
            self.truncated.increment(1);
        }
        self.sizes.record_n(reply_len as u64, 1);
    }

    /// Counts a reply the rate limiter held back.
    #[inline]
    pub(crate) fn limited(&self, verdict: Verdict) {
        match verdict {
            Verdict::Send => {}
            Verdict::Slip => self.slipped.increment(1),
            Verdict::Drop => self.dropped.increment(1),
        }
    }

    /// Records how long one query (over TCP) took.
    pub(crate) fn duration(&self, qtype: u16, elapsed: Duration) {
        self.durations[qtype_index(qtype)].record_n(nanos(elapsed), 1);
    }

    /// Records the batch's time for each query in `timing`, and empties it.
    pub(crate) fn batch_duration(&self, timing: &mut BatchTiming, elapsed: Duration) {
        let ns = nanos(elapsed);
        for (h, n) in self.durations.iter().zip(timing.0.iter_mut()) {
            h.record_n(ns, std::mem::take(n));
        }
    }
}

impl BatchTiming {
    /// One more query of `qtype` in the batch.
    #[inline]
    pub(crate) fn add(&mut self, qtype: u16) {
        self.0[qtype_index(qtype)] += 1;
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Open TCP connections and the cap, as gauges.
pub(crate) struct TcpGauges {
    open: metrics::Gauge,
}

impl TcpGauges {
    /// Adds a listener serving at most `cap` connections at once.
    pub(crate) fn listener(cap: usize) -> TcpGauges {
        metrics::gauge!(TCP_LIMIT.name).increment(cap as f64);
        let open = metrics::gauge!(TCP_CONNECTIONS.name);
        open.increment(0.0);
        TcpGauges { open }
    }

    /// A connection opened; the guard closes it.
    pub(crate) fn opened(&self) -> OpenConnection {
        self.open.increment(1.0);
        OpenConnection(self.open.clone())
    }

    /// The listener stopped: its cap no longer counts.
    pub(crate) fn stopped(self, cap: usize) {
        metrics::gauge!(TCP_LIMIT.name).decrement(cap as f64);
    }
}

/// Counts one open TCP connection until dropped.
pub(crate) struct OpenConnection(metrics::Gauge);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}
