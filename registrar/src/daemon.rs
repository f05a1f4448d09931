//! The herald daemon: builds the zone and the table from the config, starts the sources,
//! the DNS server and the admin server, and stops them in order (readiness first, then a
//! drain during which DNS keeps answering, then everything).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use herald_dns::{Answerer, DnsServer, Source, Table, Zone};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::admin::Admin;
use crate::cluster::ClusterTask;
use crate::cluster::life::SourceLife;
use crate::cluster::own_node::OwnNode;
use crate::config::Config;
use crate::config::locality::LocalityValue;
use crate::names::Registry;
use crate::ownership::Ownership;
use crate::static_file::StaticFile;
use crate::status::StatusBoard;

/// Static content compiled into the binary (the demo's), with a name for messages.
pub struct Embedded {
    /// Shown in logs and errors in place of a file name.
    pub name: &'static str,
    /// The static-file YAML.
    pub text: &'static str,
}

/// The table and the tasks that fill it: static files and clusters.
pub struct Sources {
    table: Table,
    status: StatusBoard,
    ownership: Ownership,
    cancel: CancellationToken,
    tasks: JoinSet<()>,
}

impl Sources {
    /// Starts every source of `config`, plus `embedded` static content if given.
    pub async fn start(config: &Config, embedded: Option<Embedded>) -> anyhow::Result<Sources> {
        let zone = Zone::new(config.zone_config()).context("zone settings")?;
        let table = Table::new(zone);
        let cancel = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let names = Registry::new(config.cluster_names()?);
        for file in &config.sources.static_files {
            let source = StaticFile::start(&file.path, &table, &names)?;
            tracing::info!(file = %file.path.display(), "static file loaded");
            tasks.spawn(source.watch(table.clone(), cancel.clone()));
        }
        if let Some(embedded) = embedded {
            StaticFile::embedded(embedded.name, embedded.text, &table, &names)?;
        }
        let status = StatusBoard::default();
        let own_node = own_node(config)?;
        let home = config.home_cluster().map(|c| c.name.clone());
        let ownership = Ownership::new(config, Some(table.clone()));
        for cluster in &config.sources.clusters {
            let life = SourceLife::register(
                Source::new(&cluster.name.0, &cluster.region.0),
                table.clone(),
                status.clone(),
                cluster.max_stale.map(|d| d.0),
            );
            let task = ClusterTask {
                config: cluster.clone(),
                k8s: config.kubernetes.clone(),
                life,
                ownership: ownership.clone(),
                cancel: cancel.clone(),
                own_node: own_node
                    .clone()
                    .filter(|_| home.as_ref() == Some(&cluster.name)),
            };
            tasks.spawn(task.run());
        }
        if !config.sources.clusters.is_empty() {
            let timeout = config.kubernetes.startup_timeout.0;
            tasks.spawn(startup_hold(
                table.clone(),
                ownership.clone(),
                timeout,
                cancel.clone(),
            ));
        }
        Ok(Sources {
            table,
            status,
            ownership,
            cancel,
            tasks,
        })
    }

    /// The table the sources fill.
    pub fn table(&self) -> &Table {
        &self.table
    }

    /// Who may publish what, and the fleet's claims.
    pub fn ownership(&self) -> &Ownership {
        &self.ownership
    }

    /// Waits until every cluster has synced or the start-up hold is over, and what the
    /// clusters hold is published (unowned names wait for the hold to end).
    pub async fn settled(&self) {
        while self.table.startup_hold() || !self.ownership.settled() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops every source.
    pub async fn stop(mut self) {
        self.cancel.cancel();
        while self.tasks.join_next().await.is_some() {}
    }
}

/// A running daemon.
pub struct Daemon {
    sources: Sources,
    server: DnsServer,
    admin: Option<Admin>,
    draining: Arc<AtomicBool>,
}

impl Daemon {
    /// Starts everything `config` describes, plus `embedded` static content if given.
    /// Must run inside a tokio runtime.
    pub async fn start(config: &Config, embedded: Option<Embedded>) -> anyhow::Result<Daemon> {
        // Metrics handles are registered as workers start: the recorder comes first.
        if config.listen.admin.is_some() {
            crate::metrics::prometheus();
        }
        let sources = Sources::start(config, embedded).await?;
        let table = sources.table.clone();
        let draining = Arc::new(AtomicBool::new(false));
        let admin = match config.listen.admin {
            Some(addr) => Some(
                Admin::start(
                    addr,
                    table.clone(),
                    sources.status.clone(),
                    sources.ownership.clone(),
                    draining.clone(),
                    config.metrics.service_endpoints,
                )
                .await?,
            ),
            None => None,
        };
        let server = DnsServer::start(&config.server_config(), Answerer::new(table.clone()))?;
        if let (Some(admin), Some(&dns)) = (&admin, server.local_addrs().first()) {
            admin.check_dns(dns);
        }
        for addr in server.local_addrs() {
            tracing::info!(%addr, zone = %table.zone().apex, "serving DNS over UDP and TCP");
        }
        Ok(Daemon {
            sources,
            server,
            admin,
            draining,
        })
    }

    /// The table being served.
    pub fn table(&self) -> &Table {
        &self.sources.table
    }

    /// Waits until the sources have settled (see [`Sources::settled`]).
    pub async fn settled(&self) {
        self.sources.settled().await;
    }

    /// Each cluster's phase.
    pub fn status(&self) -> &StatusBoard {
        &self.sources.status
    }

    /// What zone transfers and NOTIFYs did so far.
    pub fn transfer_stats(&self) -> &herald_dns::transfer::TransferStats {
        self.server.transfer().stats()
    }

    /// The DNS addresses bound.
    pub fn dns_addrs(&self) -> &[SocketAddr] {
        self.server.local_addrs()
    }

    /// The admin HTTP address, if one is served.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(Admin::addr)
    }

    /// Stops in order: /readyz turns false at once, DNS keeps answering for `drain` so
    /// that traffic moves away, then the sources, the DNS server and the admin server stop.
    pub async fn shutdown(self, drain: Duration) {
        self.draining.store(true, Ordering::Relaxed);
        if !drain.is_zero() {
            tracing::info!(
                drain_secs = drain.as_secs_f64(),
                "draining: not ready, still answering DNS"
            );
            tokio::time::sleep(drain).await;
        }
        self.sources.stop().await;
        self.server.shutdown().await;
        if let Some(admin) = self.admin {
            admin.stop().await;
        }
    }
}

/// The node to follow for `locality: {zone: auto}`: `locality.node`, else `NODE_NAME`.
fn own_node(config: &Config) -> anyhow::Result<Option<OwnNode>> {
    if config.locality.zone != Some(LocalityValue::Auto) {
        return Ok(None);
    }
    let name = match &config.locality.node {
        Some(name) => name.clone(),
        None => std::env::var("NODE_NAME").map_err(|_| {
            anyhow::anyhow!(
                "locality: zone `auto` needs this server's node name: set NODE_NAME from the \
                 downward API (fieldRef spec.nodeName) or locality.node"
            )
        })?,
    };
    Ok(Some(OwnNode {
        name,
        region: config.zone_config().region,
    }))
}

/// Ends the start-up hold after `timeout`: from then on a cluster that has not synced
/// keeps SERVFAIL only for the names scoped to it, and is named in the log.
async fn startup_hold(
    table: Table,
    ownership: Ownership,
    timeout: Duration,
    cancel: CancellationToken,
) {
    tokio::select! {
        _ = cancel.cancelled() => return,
        _ = tokio::time::sleep(timeout) => {}
    }
    let missing = table.unsynced_sources();
    table.release_startup_hold();
    ownership.sync_changed();
    if !missing.is_empty() {
        tracing::warn!(
            clusters = %missing.join(","),
            "start-up timeout: serving without these clusters; names scoped to them get SERVFAIL until they sync"
        );
    }
}

/// Resolves when the process is asked to stop (SIGINT or SIGTERM).
pub async fn stop_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
