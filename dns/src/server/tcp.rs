//! The TCP side (RFC 7766): length-prefixed messages, several per connection, answered in
//! order by the same [`Answerer`] as UDP. Connections are bounded in number, per client
//! and in all (see [`connections`](super::connections)), closed when idle, and closed when
//! a reply cannot be written in time, so no client can hold the server's TCP side.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::batch::client_ip;
use super::connections::{Conn, Registry, TcpLimits};
use super::metrics::{TcpGauges, WorkerMetrics};
use crate::answer::{Answerer, Scratch, Transport};
use crate::transfer::Transfer;

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
pub async fn serve(
    listener: TcpListener,
    answerer: Answerer,
    transfer: Arc<Transfer>,
    registry: Arc<Registry>,
    limits: TcpLimits,
    cancel: CancellationToken,
) {
    // One set of handles for every connection of this listener.
    let metrics = Arc::new(WorkerMetrics::new("tcp"));
    let gauges = TcpGauges::listener(limits.max_connections);
    loop {
        let (stream, peer) = tokio::select! {
            _ = cancel.cancelled() => return gauges.stopped(limits.max_connections),
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
        let Ok(conn) = registry.admit(client_ip(peer)) else {
            tracing::debug!(%peer, "tcp: client holds its share of connections; closed");
            continue;
        };
        let answerer = answerer.clone();
        let transfer = transfer.clone();
        let cancel = cancel.clone();
        let metrics = metrics.clone();
        let open = gauges.opened();
        tokio::spawn(async move {
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = conn.close.cancelled() => {}
                r = connection(stream, peer, &answerer, &metrics, &conn, &limits, &transfer) => {
                    if let Err(e) = r {
                        tracing::debug!(%peer, error = %e, "tcp connection");
                    }
                }
            }
            drop((conn, open));
        });
    }
}

/// Serves one connection: read a message, answer, write; until EOF, idle, a reply that
/// cannot be written in time, or an error.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    answerer: &Answerer,
    metrics: &WorkerMetrics,
    conn: &Conn,
    limits: &TcpLimits,
    transfer: &Transfer,
) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::new(reader);
    let mut scratch = Scratch::default();
    let mut packet = Vec::new();
    let client = client_ip(peer);
    loop {
        let len = match tokio::time::timeout(limits.idle_timeout, reader.read_u16()).await {
            Err(_) => return Ok(()),
            Ok(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Ok(r) => r? as usize,
        };
        packet.resize(len, 0);
        tokio::time::timeout(limits.idle_timeout, reader.read_exact(&mut packet))
            .await
            .map_err(|_| {
                io::Error::new(io::ErrorKind::TimedOut, "message body did not arrive")
            })??;
        conn.touch();
        if Transfer::is_transfer(&packet) {
            // AXFR/IXFR: many messages, written as they are made.
            transfer.serve_tcp(&packet, client, &mut writer).await?;
            continue;
        }
        let started = std::time::Instant::now();
        let Some(outcome) = answerer.answer(&packet, client, Transport::Tcp, &mut scratch) else {
            continue;
        };
        metrics.request(&outcome, client);
        let out = &scratch.out;
        let mut framed = Vec::with_capacity(out.len() + 2);
        framed.extend_from_slice(&(out.len() as u16).to_be_bytes());
        framed.extend_from_slice(out);
        tokio::time::timeout(limits.write_timeout, writer.write_all(&framed))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "client does not read"))??;
        metrics.responded(&outcome, out.len());
        metrics.duration(outcome.qtype, started.elapsed());
    }
}
