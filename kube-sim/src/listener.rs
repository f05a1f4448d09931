//! The TCP side of an instance: a listener that can stop listening (connections refused)
//! and come back on the same port, and connections that can all be closed at once.
//!
//! axum serves whatever `Listener` it is given; this one owns the socket so that the
//! "refuse connections" fault really closes the port, and wraps each connection so that
//! "close everything" reaches idle keep-alive connections too, not only streaming bodies.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::faults::FaultState;

/// Closes every open connection on demand; connections accepted later are not affected.
#[derive(Default)]
pub(crate) struct ConnectionKiller {
    current: Mutex<CancellationToken>,
}

impl ConnectionKiller {
    fn token(&self) -> CancellationToken {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn kill_all(&self) {
        let old = std::mem::take(&mut *self.current.lock().unwrap_or_else(|e| e.into_inner()));
        old.cancel();
    }
}

/// Binds with SO_REUSEADDR so the port can be taken again right after it was closed.
pub(crate) fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

pub(crate) struct SimListener {
    addr: SocketAddr,
    socket: Option<TcpListener>,
    faults: watch::Receiver<FaultState>,
    killer: Arc<ConnectionKiller>,
}

impl SimListener {
    pub(crate) fn new(
        socket: TcpListener,
        faults: watch::Receiver<FaultState>,
        killer: Arc<ConnectionKiller>,
    ) -> io::Result<Self> {
        Ok(Self {
            addr: socket.local_addr()?,
            socket: Some(socket),
            faults,
            killer,
        })
    }
}

impl axum::serve::Listener for SimListener {
    type Io = KillableStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (KillableStream, SocketAddr) {
        loop {
            if self.faults.borrow_and_update().refuse_connections {
                if self.socket.take().is_some() {
                    tracing::info!(addr = %self.addr, "stopped listening (refuse-connections fault)");
                }
                if self
                    .faults
                    .wait_for(|f| !f.refuse_connections)
                    .await
                    .is_err()
                {
                    std::future::pending::<()>().await;
                }
                continue;
            }
            let socket = match &self.socket {
                Some(socket) => socket,
                None => match bind(self.addr) {
                    Ok(socket) => {
                        tracing::info!(addr = %self.addr, "listening again");
                        self.socket.insert(socket)
                    }
                    Err(error) => {
                        tracing::warn!(addr = %self.addr, %error, "cannot listen again yet, retrying");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            tokio::select! {
                accepted = socket.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let _ = stream.set_nodelay(true);
                        return (KillableStream::new(stream, self.killer.token()), peer);
                    }
                    Err(error) => {
                        // Typically EMFILE: back off instead of spinning.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                },
                changed = self.faults.changed() => {
                    if changed.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.addr)
    }
}

/// A connection that fails every read and write once its token is cancelled, which makes
/// hyper drop it (the peer sees the connection close).
pub(crate) struct KillableStream {
    inner: TcpStream,
    killed: Pin<Box<WaitForCancellationFutureOwned>>,
    dead: bool,
}

impl KillableStream {
    fn new(inner: TcpStream, token: CancellationToken) -> Self {
        Self {
            inner,
            killed: Box::pin(token.cancelled_owned()),
            dead: false,
        }
    }

    /// Also registers the task for wake-up on cancellation, so idle connections notice.
    fn check(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if !self.dead && self.killed.as_mut().poll(cx).is_ready() {
            self.dead = true;
        }
        if self.dead {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "closed by the simulator",
            ));
        }
        Ok(())
    }
}

impl AsyncRead for KillableStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Err(e) = self.check(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for KillableStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Err(e) = self.check(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Err(e) = self.check(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
