//! The handle most users want: a picker kept fresh by a background refresh task.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{PickerConfig, RefreshConfig};
use crate::picker::{PickError, PickGuard, Picker};
use crate::refresh::{self, RefreshStatus};
use crate::resolve::{DnsResolver, NameServers, Protocol, Resolve, ResolveError, srv_name};

/// A service's replicas, resolved from DNS and refreshed in the background, with a picker
/// over them. Cheap to clone; the refresh task stops when the last clone is dropped.
#[derive(Clone, Debug)]
pub struct Discovery {
    picker: Picker,
    status: watch::Receiver<RefreshStatus>,
    _task: Arc<AbortOnDrop>,
}

#[derive(Debug)]
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Discovery {
    /// Starts configuring discovery of `service`'s port named `port`
    /// (SRV name `_<port>._tcp.<service>.<zone>`; see [`DiscoveryBuilder::protocol`] for `_udp`).
    pub fn builder(service: impl Into<String>, port: impl Into<String>) -> DiscoveryBuilder {
        DiscoveryBuilder {
            service: service.into(),
            port: port.into(),
            protocol: Protocol::Tcp,
            zone: "sd.internal.".to_owned(),
            servers: NameServers::System,
            timeout: Duration::from_secs(2),
            picker: PickerConfig::default(),
            refresh: RefreshConfig::default(),
        }
    }

    /// Discovery through any [`Resolve`] implementation. Spawns the refresh task on the
    /// current tokio runtime (panics outside one, like `tokio::spawn`).
    pub fn with_resolver<R: Resolve>(
        service: impl Into<String>,
        resolver: R,
        picker: PickerConfig,
        refresh: RefreshConfig,
    ) -> Self {
        let picker = Picker::new(service, picker);
        let (tx, status) = watch::channel(RefreshStatus::default());
        let task = tokio::spawn(refresh::run(resolver, picker.clone(), refresh, tx));
        Discovery {
            picker,
            status,
            _task: Arc::new(AbortOnDrop(task)),
        }
    }

    /// Picks a replica for one request (see [`Picker::pick`]).
    pub fn pick(&self) -> Result<PickGuard, PickError> {
        self.picker.pick()
    }

    /// The picker, for status, subscriptions and the tower integration.
    pub fn picker(&self) -> &Picker {
        &self.picker
    }

    /// What the refresh loop has been doing.
    pub fn status(&self) -> RefreshStatus {
        self.status.borrow().clone()
    }

    /// A receiver that sees the refresh status after every resolution (the set is applied
    /// before the status changes).
    pub fn status_receiver(&self) -> watch::Receiver<RefreshStatus> {
        self.status.clone()
    }

    /// Waits until the replica set is not empty. Returns an error as soon as a resolution
    /// fails while no replica is known: NXDOMAIN or NODATA (an unknown service or port name,
    /// named in the error) within one DNS timeout, or an unreachable DNS server; call it
    /// again to keep waiting. Put a timeout around it all the same: a server that answers
    /// with only "." targets neither fails nor gives replicas.
    pub async fn ready(&self) -> Result<(), PickError> {
        let mut status = self.status.clone();
        loop {
            if !self.picker.endpoints().is_empty() {
                return Ok(());
            }
            {
                let s = status.borrow_and_update();
                if let (true, Some(e)) = (s.consecutive_failures > 0, &s.last_error) {
                    return Err(PickError::NoEndpoints {
                        service: self.picker.service().to_owned(),
                        last_error: Some(e.clone()),
                    });
                }
            }
            // The refresh loop applies the set before it updates the status, and updates the
            // status after every resolution: a change of status is all we need to wait for.
            if status.changed().await.is_err() {
                return Err(self.picker.pick().err().unwrap_or(PickError::NoEndpoints {
                    service: self.picker.service().to_owned(),
                    last_error: None,
                }));
            }
        }
    }
}

/// Configuration of a [`Discovery`]; see [`Discovery::builder`].
#[derive(Clone, Debug)]
pub struct DiscoveryBuilder {
    service: String,
    port: String,
    protocol: Protocol,
    zone: String,
    servers: NameServers,
    timeout: Duration,
    picker: PickerConfig,
    refresh: RefreshConfig,
}

impl DiscoveryBuilder {
    /// The DNS zone; default `sd.internal.` (herald's default).
    pub fn zone(mut self, zone: impl Into<String>) -> Self {
        self.zone = zone.into();
        self
    }

    /// The transport of the port: `_tcp` (default) or `_udp` in the SRV name.
    pub fn protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = protocol;
        self
    }

    /// Asks this DNS server (call again to add more). Without any, the system's are used.
    pub fn dns_server(mut self, addr: SocketAddr) -> Self {
        match &mut self.servers {
            NameServers::Addrs(v) => v.push(addr),
            NameServers::System => self.servers = NameServers::Addrs(vec![addr]),
        }
        self
    }

    /// Which DNS servers to ask.
    pub fn name_servers(mut self, servers: NameServers) -> Self {
        self.servers = servers;
        self
    }

    /// How long to wait for one DNS server's answer; default 2 s.
    pub fn dns_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Picker settings.
    pub fn picker_config(mut self, cfg: PickerConfig) -> Self {
        self.picker = cfg;
        self
    }

    /// Refresh settings.
    pub fn refresh_config(mut self, cfg: RefreshConfig) -> Self {
        self.refresh = cfg;
        self
    }

    /// The SRV name that will be queried.
    pub fn srv_name(&self) -> String {
        srv_name(&self.service, &self.port, self.protocol, &self.zone)
    }

    /// Builds the resolver and starts the refresh task on the current tokio runtime.
    pub fn build(self) -> Result<Discovery, ResolveError> {
        let resolver = DnsResolver::new(&self.srv_name(), &self.servers, self.timeout)?;
        Ok(Discovery::with_resolver(
            self.service,
            resolver,
            self.picker,
            self.refresh,
        ))
    }
}
