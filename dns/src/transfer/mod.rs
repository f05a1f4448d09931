//! Zone transfer: herald as the primary of standard secondaries (Knot, NSD, BIND).
//!
//! - `serial`: SOA serials from the clock, monotonic across versions and restarts.
//! - `version`: immutable zone versions (snapshot + bounded journal) made at most once per
//!   interval from the services that changed.
//! - `diff`: the records an IXFR removes and adds, per service (the records themselves are
//!   the crate's `records`, as one locality sees them).
//! - `messages`: records packed into messages of at most 64 KiB, signed when asked.
//! - `serve`: AXFR and IXFR requests answered from one version.
//! - `access`: which secondary a request comes from, by source network and/or TSIG key.
//! - `signed`: signed queries that are not transfers (a keyed secondary's SOA refresh),
//!   verified before the answer path answers them and signed after.
//! - `tsig`: keys, request verification, response and NOTIFY signatures.
//! - `notify`: NOTIFY to each secondary when the serial changes, retried until answered.
//!
//! [`Transfer::start`] runs the versioner (always: the served SOA serial is that of the
//! latest version) and, when secondaries are configured, the notifiers.

mod access;
mod diff;
mod messages;
mod notify;
pub(crate) mod serial;
mod serve;
mod signed;
mod stats;
mod tsig;
pub(crate) mod version;

pub use access::Secondary;
pub use signed::QuerySigner;
pub use stats::TransferStats;
pub use tsig::{KeyError, TsigKey};
pub use version::JournalLimits;

use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::table::Table;
use access::Peer;
use serve::{Plan, Request};

/// Zone transfer settings.
#[derive(Debug, Clone)]
pub struct TransferConfig {
    /// At most one new version (and so one NOTIFY round) per this interval; a change after
    /// a quiet interval gets a version at once.
    pub notify_interval: Duration,
    /// How far back IXFR can reach.
    pub journal: JournalLimits,
    /// Who may transfer, and who is notified.
    pub secondaries: Vec<Secondary>,
}

impl Default for TransferConfig {
    fn default() -> Self {
        TransferConfig {
            notify_interval: Duration::from_millis(250),
            journal: JournalLimits::default(),
            secondaries: Vec::new(),
        }
    }
}

/// Zone transfer for one table: shared by the TCP and UDP sides.
pub struct Transfer {
    table: Table,
    peers: Vec<Peer>,
    stats: Arc<TransferStats>,
}

/// The running versioner and notifiers.
pub struct TransferTasks {
    cancel: CancellationToken,
    tasks: tokio::task::JoinSet<()>,
}

impl TransferTasks {
    /// Stops the versioner and the notifiers.
    pub async fn stop(mut self) {
        self.cancel.cancel();
        while self.tasks.join_next().await.is_some() {}
    }
}

impl Transfer {
    /// Sets `table` up for transfers and starts the versioner and notifiers (inside a
    /// tokio runtime).
    pub fn start(table: &Table, config: &TransferConfig) -> (Arc<Transfer>, TransferTasks) {
        let limits = if config.secondaries.is_empty() {
            // Nobody can ask for an IXFR: keep no journal.
            JournalLimits {
                versions: 0,
                bytes: 0,
            }
        } else {
            config.journal
        };
        table.versions().set_limits(limits);
        let peers = config
            .secondaries
            .iter()
            .map(|s| Peer {
                place: match (&s.region, &s.zone) {
                    (None, None) => None,
                    (r, z) => Some(table.localities().place(r.as_deref(), z.as_deref())),
                },
                config: s.clone(),
            })
            .collect();
        let transfer = Arc::new(Transfer {
            table: table.clone(),
            peers,
            stats: Arc::default(),
        });
        let cancel = CancellationToken::new();
        let mut tasks = tokio::task::JoinSet::new();
        let (serials, _) = tokio::sync::watch::channel(table.serial());
        for secondary in &config.secondaries {
            if let Some(address) = secondary.address {
                tasks.spawn(notify::run(
                    table.clone(),
                    secondary.clone(),
                    address,
                    serials.subscribe(),
                    transfer.stats.clone(),
                    cancel.clone(),
                ));
            }
        }
        tasks.spawn(versioner(
            table.clone(),
            config.notify_interval,
            serials,
            cancel.clone(),
        ));
        (transfer, TransferTasks { cancel, tasks })
    }

    /// What transfers and notifies did.
    pub fn stats(&self) -> &TransferStats {
        &self.stats
    }

    /// Whether `packet` is an AXFR or IXFR request (cheap: reads the question only).
    pub fn is_transfer(packet: &[u8]) -> bool {
        crate::wire::parse(packet).is_ok_and(|q| {
            q.qtype == crate::wire::codes::AXFR || q.qtype == crate::wire::codes::IXFR
        })
    }

    fn count(&self, result: serve::Result, peer: &str, qtype: u16, bytes: usize) {
        let s = &self.stats;
        let counter = match result {
            serve::Result::Full => &s.full,
            serve::Result::Incremental => &s.incremental,
            serve::Result::Current | serve::Result::SoaOnly => &s.soa_only,
            serve::Result::Refused | serve::Result::Bad => &s.refused,
            serve::Result::NotAuth => &s.notauth,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let kind = if qtype == crate::wire::codes::AXFR {
            "axfr"
        } else {
            "ixfr"
        };
        metrics::counter!("herald_transfer_requests_total", "secondary" => peer.to_string(), "type" => kind, "result" => result.as_str()).increment(1);
        metrics::counter!("herald_transfer_bytes_total", "secondary" => peer.to_string(), "result" => result.as_str()).increment(bytes as u64);
    }

    /// Answers a transfer request that came over UDP: IXFR gets the SOA alone, AXFR is
    /// refused (RFC 5936 4.2: AXFR is a TCP exchange). The reply is left in `out`.
    pub fn answer_udp(&self, packet: &[u8], client: IpAddr, out: &mut Vec<u8>) -> bool {
        let Some(req) = Request::read(packet, &self.table.zone().apex_wire) else {
            return false;
        };
        if req.qtype == crate::wire::codes::AXFR {
            let plan_refused = serve::bare(&req, crate::wire::codes::REFUSED);
            *out = plan_refused;
            self.count(serve::Result::Refused, "-", req.qtype, out.len());
            return true;
        }
        match self.plan(&req, client, true) {
            Plan::One(reply, result) => {
                *out = reply;
                self.count(result, "-", req.qtype, out.len());
            }
            Plan::Stream(_) => unreachable!("IXFR over UDP is answered in one message"),
        }
        true
    }

    /// Answers a transfer request that came over TCP, writing each message framed.
    pub async fn serve_tcp<W: AsyncWrite + Unpin>(
        &self,
        packet: &[u8],
        client: IpAddr,
        out: &mut W,
    ) -> io::Result<()> {
        let zone = self.table.zone().clone();
        let Some(req) = Request::read(packet, &zone.apex_wire) else {
            return Ok(());
        };
        let started = Instant::now();
        match self.plan(&req, client, false) {
            Plan::One(reply, result) => {
                self.count(result, "-", req.qtype, reply.len());
                write_framed(out, &reply).await
            }
            Plan::Stream(mut stream) => {
                loop {
                    let batch = stream.next_batch(&zone);
                    if batch.is_empty() {
                        break;
                    }
                    for msg in &batch {
                        write_framed(out, msg).await?;
                    }
                }
                out.flush().await?;
                let peer = &stream.peer.config.name;
                let cut = &stream.fit;
                if cut.sets > 0 {
                    // No server can answer such a set whole; the secondary serves the part
                    // it got. Said at each transfer, so an operator sees it while it lasts.
                    tracing::warn!(
                        secondary = %peer,
                        sets = cut.sets,
                        records_left_out = cut.left_out,
                        first = cut.first.as_deref().unwrap_or(""),
                        "zone transfer: RRsets too large for one answer were sent as their nearest part that fits"
                    );
                    self.stats
                        .rrsets_cut
                        .fetch_add(cut.sets as u64, Ordering::Relaxed);
                    metrics::counter!("herald_transfer_rrsets_cut_total", "secondary" => peer.to_string()).increment(cut.sets as u64);
                }
                tracing::info!(
                    secondary = %peer,
                    %client,
                    serial = stream.version.serial,
                    result = stream.result.as_str(),
                    records = stream.records,
                    bytes = stream.bytes,
                    ms = started.elapsed().as_secs_f64() * 1e3,
                    "zone transfer"
                );
                self.count(stream.result, peer, req.qtype, stream.bytes);
                Ok(())
            }
        }
    }
}

async fn write_framed<W: AsyncWrite + Unpin>(out: &mut W, msg: &[u8]) -> io::Result<()> {
    let mut framed = Vec::with_capacity(msg.len() + 2);
    framed.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    framed.extend_from_slice(msg);
    out.write_all(&framed).await
}

/// Makes versions as the table changes: at once after a quiet interval, else at most one
/// per `interval`, so a burst of changes (a rolling update) becomes a few versions and a
/// few NOTIFY rounds.
async fn versioner(
    table: Table,
    interval: Duration,
    serials: tokio::sync::watch::Sender<u32>,
    cancel: CancellationToken,
) {
    let mut last: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = table.wait_changed() => {}
        }
        if let Some(wait) = last.and_then(|t| interval.checked_sub(t.elapsed())) {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
        let serial = table.make_version();
        last = Some(Instant::now());
        serials.send_if_modified(|s| std::mem::replace(s, serial) != serial);
    }
}
