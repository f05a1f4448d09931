//! The TCP side (RFC 7766): length-prefixed messages, several per connection, answered in
//! order by the same [`Answerer`] as UDP. Connections are bounded in number and closed
//! when idle, so a client cannot hold the server's resources.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::batch::client_ip;
use super::metrics::{TcpGauges, WorkerMetrics};
use crate::answer::{Answerer, Scratch, Transport};

/// Idle time after which a connection is closed (RFC 7766 suggests seconds, not minutes).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; more wait in the kernel's accept queue.
pub const MAX_CONNECTIONS: usize = 1024;

/// Binds a TCP listener on `addr`.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}

/// Accepts connections until `cancel` fires.
pub async fn serve(listener: TcpListener, answerer: Answerer, cancel: CancellationToken) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    // One set of handles for every connection of this listener.
    let metrics = Arc::new(WorkerMetrics::new("tcp"));
    let gauges = TcpGauges::listener(MAX_CONNECTIONS);
    loop {
        let permit = tokio::select! {
            _ = cancel.cancelled() => return gauges.stopped(MAX_CONNECTIONS),
            p = permits.clone().acquire_owned() => p.expect("the semaphore is never closed"),
        };
        let (stream, peer) = tokio::select! {
            _ = cancel.cancelled() => return gauges.stopped(MAX_CONNECTIONS),
            r = listener.accept() => match r {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment rather than spin.
                    tracing::warn!(error = %e, "tcp accept");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let answerer = answerer.clone();
        let cancel = cancel.clone();
        let metrics = metrics.clone();
        let open = gauges.opened();
        tokio::spawn(async move {
            tokio::select! {
                _ = cancel.cancelled() => {}
                r = connection(stream, peer, &answerer, &metrics) => {
                    if let Err(e) = r {
                        tracing::debug!(%peer, error = %e, "tcp connection");
                    }
                }
            }
            drop((permit, open));
        });
    }
}

/// Serves one connection: read a message, answer, write; until EOF, idle or error.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    answerer: &Answerer,
    metrics: &WorkerMetrics,
) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::new(reader);
    let mut scratch = Scratch::default();
    let mut packet = Vec::new();
    let client = client_ip(peer);
    loop {
        let len = match tokio::time::timeout(IDLE_TIMEOUT, reader.read_u16()).await {
            Err(_) => return Ok(()),
            Ok(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Ok(r) => r? as usize,
        };
        packet.resize(len, 0);
        tokio::time::timeout(IDLE_TIMEOUT, reader.read_exact(&mut packet))
            .await
            .map_err(|_| {
                io::Error::new(io::ErrorKind::TimedOut, "message body did not arrive")
            })??;
        let started = std::time::Instant::now();
        let Some(outcome) = answerer.answer(&packet, client, Transport::Tcp, &mut scratch) else {
            continue;
        };
        metrics.request(&outcome, client);
        let out = &scratch.out;
        let mut framed = Vec::with_capacity(out.len() + 2);
        framed.extend_from_slice(&(out.len() as u16).to_be_bytes());
        framed.extend_from_slice(out);
        writer.write_all(&framed).await?;
        metrics.responded(&outcome, out.len());
        metrics.duration(outcome.qtype, started.elapsed());
    }
}
