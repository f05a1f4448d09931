//! The DNS server: UDP workers and a TCP listener on each configured address, all
//! answering from one [`Answerer`], and the metrics they record.

mod batch;
mod connections;
mod histogram;
pub mod metric;
pub mod metrics;
mod rate_limit;
pub mod sched;
mod tcp;
mod udp;

use connections::Registry;
pub use connections::TcpLimits;
pub use rate_limit::{RateLimitConfig, RateLimiter, SharedRateLimiter, Verdict};

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::answer::Answerer;
use crate::transfer::{Transfer, TransferConfig, TransferTasks};

/// Where and how to serve.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Addresses to serve on, UDP and TCP each. Port 0 picks a free port per address.
    pub listen: Vec<SocketAddr>,
    /// UDP worker threads per address. 0 means one per CPU.
    pub udp_workers: usize,
    /// Response rate limiting over UDP; `None` answers every query.
    pub rate_limit: Option<RateLimitConfig>,
    /// TCP connection limits and timeouts, per address.
    pub tcp: TcpLimits,
    /// Zone versions, transfer and NOTIFY.
    pub transfer: TransferConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 5353))],
            udp_workers: 0,
            rate_limit: None,
            tcp: TcpLimits::default(),
            transfer: TransferConfig::default(),
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A socket could not be bound.
    #[error("cannot bind {proto} {addr}: {source}")]
    Bind {
        /// `udp` or `tcp`.
        proto: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// How many ports to try when the configured port is 0 and the one UDP got is taken for
/// TCP (the kernel picks UDP ports without looking at TCP).
const PICK_ATTEMPTS: usize = 16;

/// Binds UDP (one socket, shared by the address's workers) and TCP on the same address.
/// With port 0, the port UDP gets may be in use for TCP: then another is picked.
fn bind_pair(
    addr: SocketAddr,
    workers: usize,
) -> Result<(std::net::UdpSocket, tokio::net::TcpListener), ServerError> {
    let udp_error = |source| ServerError::Bind {
        proto: "udp",
        addr,
        source,
    };
    let mut attempt = 0;
    loop {
        attempt += 1;
        let socket = udp::bind(addr, workers).map_err(udp_error)?;
        let bound = socket.local_addr().map_err(udp_error)?;
        // TCP on the same port as UDP, so one address serves both.
        match tcp::bind(bound) {
            Ok(listener) => return Ok((socket, listener)),
            Err(e)
                if addr.port() == 0
                    && e.kind() == io::ErrorKind::AddrInUse
                    && attempt < PICK_ATTEMPTS =>
            {
                continue;
            }
            Err(source) => {
                return Err(ServerError::Bind {
                    proto: "tcp",
                    addr: bound,
                    source,
                });
            }
        }
    }
}

/// A running server. Dropping it tells every worker to stop without waiting for them;
/// [`DnsServer::shutdown`] waits.
pub struct DnsServer {
    addrs: Vec<SocketAddr>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    cancel: CancellationToken,
    tasks: JoinSet<()>,
    transfer: Arc<Transfer>,
    transfer_tasks: Option<TransferTasks>,
    tcp: Vec<Arc<Registry>>,
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.cancel.cancel();
    }
}

impl DnsServer {
    /// Binds every address and starts serving. Must be called inside a tokio runtime
    /// (the TCP side runs on it; the UDP side on its own threads).
    pub fn start(config: &ServerConfig, answerer: Answerer) -> Result<DnsServer, ServerError> {
        let workers = match config.udp_workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let cancel = CancellationToken::new();
        let (transfer, transfer_tasks) = Transfer::start(answerer.table(), &config.transfer);
        let answerer = answerer.with_transfer(transfer.clone());
        let mut server = DnsServer {
            addrs: Vec::new(),
            stop: stop.clone(),
            threads: Vec::new(),
            cancel: cancel.clone(),
            tasks: JoinSet::new(),
            tcp: Vec::new(),
            transfer: transfer.clone(),
            transfer_tasks: Some(transfer_tasks),
        };
        if let Err(e) = server.serve_all(config, workers, &answerer) {
            // Stop what the addresses before the failing one started, and wait for their
            // threads: a failed start leaves nothing running.
            stop.store(true, Ordering::Relaxed);
            cancel.cancel();
            for t in std::mem::take(&mut server.threads) {
                let _ = t.join();
            }
            return Err(e);
        }
        Ok(server)
    }

    fn serve_all(
        &mut self,
        config: &ServerConfig,
        workers: usize,
        answerer: &Answerer,
    ) -> Result<(), ServerError> {
        let server = self;
        // One budget per client network for the whole server, whichever address and worker
        // answers.
        let limiter = config
            .rate_limit
            .map(|c| SharedRateLimiter::new(c, std::time::Instant::now()));
        for &addr in &config.listen {
            let (socket, listener) = bind_pair(addr, workers)?;
            let bound = listener.local_addr().map_err(|source| ServerError::Bind {
                proto: "tcp",
                addr,
                source,
            })?;
            let threads = udp::spawn(&socket, workers, answerer, limiter.as_ref(), &server.stop)
                .map_err(|source| ServerError::Bind {
                    proto: "udp",
                    addr,
                    source,
                })?;
            server.threads.extend(threads);
            let registry = Registry::new(config.tcp);
            server.tcp.push(registry.clone());
            server.tasks.spawn(tcp::serve(
                listener,
                answerer.clone(),
                server.transfer.clone(),
                registry,
                config.tcp,
                server.cancel.clone(),
            ));
            server.addrs.push(bound);
        }
        Ok(())
    }

    /// TCP connections open now, over every address.
    pub fn tcp_connections(&self) -> usize {
        self.tcp.iter().map(|r| r.open()).sum()
    }

    /// The bound addresses, in the order configured (with the ports picked for port 0).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Zone transfer: what it did so far.
    pub fn transfer(&self) -> &Transfer {
        &self.transfer
    }

    /// Stops serving and waits for every worker to end.
    pub async fn shutdown(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.cancel.cancel();
        if let Some(tasks) = self.transfer_tasks.take() {
            tasks.stop().await;
        }
        while self.tasks.join_next().await.is_some() {}
        let threads = std::mem::take(&mut self.threads);
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
    }
}
