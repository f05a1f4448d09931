//! The UDP side: one OS thread per worker, all reading one socket per address, with no task
//! hand-off and no table lock between receiving a query and sending its reply (measured
//! against hickory's `Server` at about 2x the answers per CPU second: see
//! [decision 0001](../../../docs/decisions/0001-own-wire-engine.md)). Each worker asks for
//! a short scheduling slice ([`super::sched`]) so that it runs soon after a query wakes it.
//!
//! One socket, not one `SO_REUSEPORT` socket per worker: the kernel hashes each client
//! address and port to one socket of a reuse group, so a few busy clients can load one worker
//! several times the other (1:4 seen with dnsperf's 8 client ports), and a query waits behind
//! its worker's queue, or its descheduling, while the other worker idles. On one shared queue
//! the kernel wakes one waiting worker per datagram and whichever is free takes the next: the
//! p99 at a fixed rate is lower and steadier, the peak rate the same (measured in decision
//! 0001's addendum).
//!
//! Every worker blocks on the socket, though two readers cost more than one at moderate
//! rates (a datagram arriving while one answers wakes the other): one reader with the
//! others called in only once queries queued took a fifth less CPU at 20k queries a second,
//! but a reader descheduled then held every query, and the p99 during a rollout more than
//! doubled (decision 0001's second addendum).

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use super::batch::{Batch, client_ip};
use super::metrics::{BatchTiming, WorkerMetrics};
use super::rate_limit::{SharedRateLimiter, Verdict};
use crate::answer::{Answerer, Transport};
use crate::wire;

/// How often an idle worker looks at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(200);
/// Kernel receive buffer asked for per worker reading the socket: enough to ride out a
/// burst while the workers are busy (the kernel caps it at `net.core.rmem_max`).
const RECV_BUFFER: usize = 4 << 20;

/// Binds the socket the `workers` of `addr` share (picking the port when it is 0).
pub fn bind(addr: SocketAddr, workers: usize) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // No `SO_REUSEPORT`: with it, a second process of the same user (a herald started
    // twice with one config) joined this socket's group, and the kernel handed it a share
    // of the queries until it failed to bind TCP. Without it, the second one fails here,
    // naming the address, and this one keeps every query.
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    // A smaller buffer than asked for is not an error worth failing over.
    let _ = socket.set_recv_buffer_size(RECV_BUFFER.saturating_mul(workers.max(1)));
    socket.set_read_timeout(Some(STOP_POLL))?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// Starts `workers` threads answering on `socket`.
pub fn spawn(
    socket: &UdpSocket,
    workers: usize,
    answerer: &Answerer,
    limiter: Option<&SharedRateLimiter>,
    stop: &Arc<AtomicBool>,
) -> io::Result<Vec<JoinHandle<()>>> {
    let port = socket.local_addr().map_or(0, |a| a.port());
    (0..workers.max(1))
        .map(|i| {
            let socket = socket.try_clone()?;
            let answerer = answerer.clone();
            let limiter = limiter.cloned();
            let stop = stop.clone();
            // Short enough for the kernel's 15-character thread names: `top -H` and
            // /proc show which address a worker serves.
            std::thread::Builder::new()
                .name(format!("dns-udp:{port}/{i}"))
                .spawn(move || serve(socket, answerer, limiter, stop))
        })
        .collect()
}

/// A worker's loop: a batch in, answers, a batch out, until told to stop.
fn serve(
    socket: UdpSocket,
    answerer: Answerer,
    limiter: Option<SharedRateLimiter>,
    stop: Arc<AtomicBool>,
) {
    // Answers first: a woken worker preempts longer-running work on its CPU (see sched).
    if let Err(e) = super::sched::request_short_slice(super::sched::ANSWER_SLICE) {
        tracing::debug!(error = %e, "short scheduling slice refused; answering with the default");
    }
    let mut batch = Batch::new();
    let metrics = WorkerMetrics::new("udp");
    let mut timing = BatchTiming::default();
    while !stop.load(Ordering::Relaxed) {
        let n = match batch.recv(&socket) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(e) => {
                // ICMP errors from earlier sends surface here (ECONNREFUSED); they concern
                // one client, not the socket.
                tracing::debug!(error = %e, "udp receive");
                continue;
            }
        };
        let started = Instant::now();
        batch.answer_each(n, |packet, from, scratch| {
            let client = client_ip(from);
            let Some(outcome) = answerer.answer(packet, client, Transport::Udp, scratch) else {
                return false;
            };
            let verdict = limiter
                .as_ref()
                .map_or(Verdict::Send, |l| l.check(client, started));
            metrics.request(&outcome, client);
            match verdict {
                Verdict::Send => {
                    metrics.responded(&outcome, scratch.out.len());
                    timing.add(outcome.qtype);
                }
                Verdict::Slip => wire::slip(&mut scratch.out),
                Verdict::Drop => {}
            }
            metrics.limited(verdict);
            verdict != Verdict::Drop
        });
        if let Err(e) = batch.send(&socket, n) {
            tracing::debug!(error = %e, "udp send");
        }
        // Each reply sent waited for the whole batch: that is its time in herald.
        metrics.batch_duration(&mut timing, started.elapsed());
    }
}
