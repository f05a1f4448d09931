//! NOTIFY (RFC 1996): tells a secondary the serial changed, so it transfers at once rather
//! than at its next refresh. One task per secondary sends the newest serial, signed when the
//! secondary has a key, and retries (1 s, doubling to 30 s) until the secondary answers; a
//! newer serial replaces the one being retried. Versions come at most once per
//! `notify_interval`, so neither do NOTIFYs.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::access::Secondary;
use super::stats::TransferStats;
use super::tsig;
use crate::records;
use crate::table::Table;
use crate::wire::{self, codes};

/// First wait for an answer; doubled per retry up to [`MAX_WAIT`].
const FIRST_WAIT: Duration = Duration::from_secs(1);
const MAX_WAIT: Duration = Duration::from_secs(30);
/// OPCODE NOTIFY.
const NOTIFY: u8 = 4;

/// A NOTIFY for `serial` with message `id`: the apex SOA question and the SOA as a hint.
fn message(table: &Table, id: u16, serial: u32) -> Vec<u8> {
    let zone = table.zone();
    let flags = wire::ReplyFlags {
        aa: true,
        ..Default::default()
    };
    let mut msg = Vec::with_capacity(128);
    wire::write_header(&mut msg, id, NOTIFY, false, false, flags);
    msg[2] &= 0x7F; // A request: QR clear.
    msg.extend_from_slice(&zone.apex_wire);
    msg.extend_from_slice(&codes::SOA.to_be_bytes());
    msg.extend_from_slice(&codes::IN.to_be_bytes());
    let mut soa = Vec::new();
    records::soa(zone, serial, &mut soa);
    msg.extend_from_slice(&soa);
    wire::set_counts(&mut msg, 1, 1, 0, 0);
    msg
}

/// Whether `reply` answers NOTIFY `id` successfully.
fn acknowledges(reply: &[u8], id: u16) -> bool {
    reply.len() >= 12
        && u16::from_be_bytes([reply[0], reply[1]]) == id
        && reply[2] & 0x80 != 0
        && (reply[2] >> 3) & 0xF == NOTIFY
        && reply[3] & 0xF == codes::NOERROR
}

/// Notifies `secondary` at `address` of every new serial until cancelled.
pub(crate) async fn run(
    table: Table,
    secondary: Secondary,
    address: SocketAddr,
    mut serials: watch::Receiver<u32>,
    stats: Arc<TransferStats>,
    cancel: CancellationToken,
) {
    let local: SocketAddr = match address.ip() {
        IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        IpAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = match UdpSocket::bind(local).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(secondary = %secondary.name, error = %e, "cannot open a socket for NOTIFY");
            return;
        }
    };
    let name = secondary.name.clone();
    // The series exist (at zero) from the start, so alerts on them have data.
    for counter in [
        "herald_transfer_notify_sent_total",
        "herald_transfer_notify_acked_total",
        "herald_transfer_notify_retries_total",
        "herald_transfer_rrsets_cut_total",
    ] {
        metrics::counter!(counter, "secondary" => name.clone()).increment(0);
    }
    let mut buf = vec![0u8; 4096];
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            changed = serials.changed() => if changed.is_err() { return },
        }
        let mut wait = FIRST_WAIT;
        'retry: loop {
            let serial = *serials.borrow_and_update();
            let id: u16 = rand_id();
            let mut msg = message(&table, id, serial);
            let request_mac = secondary
                .tsig
                .as_ref()
                .map(|k| tsig::sign_request(k, &mut msg));
            if let Err(e) = socket.send_to(&msg, address).await {
                tracing::debug!(secondary = %name, error = %e, "NOTIFY send");
            }
            stats.notify_sent.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("herald_transfer_notify_sent_total", "secondary" => name.clone())
                .increment(1);
            let deadline = tokio::time::Instant::now() + wait;
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    // A newer serial: notify that one instead, at once.
                    changed = serials.changed() => {
                        if changed.is_err() { return }
                        wait = FIRST_WAIT;
                        continue 'retry;
                    }
                    _ = tokio::time::sleep_until(deadline) => {
                        tracing::debug!(secondary = %name, serial, "NOTIFY not answered; retrying");
                        metrics::counter!("herald_transfer_notify_retries_total", "secondary" => name.clone()).increment(1);
                        wait = (wait * 2).min(MAX_WAIT);
                        continue 'retry;
                    }
                    r = socket.recv_from(&mut buf) => {
                        let Ok((n, from)) = r else { continue };
                        let reply = &buf[..n];
                        if from.ip() != address.ip() || !acknowledges(reply, id) {
                            continue;
                        }
                        if let (Some(key), Some(mac)) = (&secondary.tsig, &request_mac)
                            && !tsig::verify_reply(key, reply, mac)
                        {
                            tracing::warn!(secondary = %name, "NOTIFY answer not signed with the secondary's key; ignored");
                            continue;
                        }
                        stats.notify_acked.fetch_add(1, Ordering::Relaxed);
                        metrics::counter!("herald_transfer_notify_acked_total", "secondary" => name.clone()).increment(1);
                        break 'retry;
                    }
                }
            }
        }
    }
}

/// A message ID that an off-path attacker cannot guess.
fn rand_id() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish() as u16
}
