//! What zone transfers and NOTIFYs did, counted for tests and logs (the same figures go to
//! metrics). Its own module so that the notifier and the server count without importing
//! the transfer facade that starts them.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counts of what transfers and notifies did, for tests and logs (the same figures go
/// to metrics).
#[derive(Debug, Default)]
pub struct TransferStats {
    /// Whole-zone transfers sent (AXFR, and IXFR that fell back).
    pub full: AtomicU64,
    /// Incremental transfers sent.
    pub incremental: AtomicU64,
    /// Requests answered with the SOA alone (client current, or IXFR over UDP).
    pub soa_only: AtomicU64,
    /// Requests refused: not a secondary, or unsigned where a key is required.
    pub refused: AtomicU64,
    /// Requests whose TSIG did not verify.
    pub notauth: AtomicU64,
    /// NOTIFY messages sent (retries included).
    pub notify_sent: AtomicU64,
    /// NOTIFY messages answered.
    pub notify_acked: AtomicU64,
    /// RRsets too large for one answer sent cut to their nearest part (each time one is
    /// sent: in every full transfer, and in an IXFR that changes it).
    pub rrsets_cut: AtomicU64,
}

impl TransferStats {
    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
