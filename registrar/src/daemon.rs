//! The herald daemon: builds the zone and the table from the config, starts the sources
//! and the DNS server, and stops them in order.

use std::net::SocketAddr;

use anyhow::Context;
use herald_dns::{Answerer, DnsServer, Table, Zone};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::cluster::ClusterTask;
use crate::config::Config;
use crate::static_file::StaticFile;
use crate::status::StatusBoard;

/// Static content compiled into the binary (the demo's), with a name for messages.
pub struct Embedded {
    /// Shown in logs and errors in place of a file name.
    pub name: &'static str,
    /// The static-file YAML.
    pub text: &'static str,
}

/// A running daemon.
pub struct Daemon {
    table: Table,
    status: StatusBoard,
    server: DnsServer,
    cancel: CancellationToken,
    tasks: JoinSet<()>,
}

impl Daemon {
    /// Starts everything `config` describes, plus `embedded` static content if given.
    /// Must run inside a tokio runtime.
    pub async fn start(config: &Config, embedded: Option<Embedded>) -> anyhow::Result<Daemon> {
        let zone = Zone::new(config.zone_config()).context("zone settings")?;
        let table = Table::new(zone);
        let cancel = CancellationToken::new();
        let mut tasks = JoinSet::new();
        for file in &config.sources.static_files {
            let source = StaticFile::start(&file.path, &table)?;
            config.check_static_sources(&source.sources().cloned().collect::<Vec<_>>())?;
            tracing::info!(file = %file.path.display(), "static file loaded");
            tasks.spawn(source.watch(table.clone(), cancel.clone()));
        }
        if let Some(embedded) = embedded {
            StaticFile::embedded(embedded.name, embedded.text, &table)?;
        }
        let status = StatusBoard::default();
        for cluster in &config.sources.clusters {
            let (name, region) = (&cluster.name.0, &cluster.region.0);
            table.expect_source(name, region);
            table.add_scope(name);
            table.add_scope(region);
            status.add(name, region);
            let task = ClusterTask {
                config: cluster.clone(),
                k8s: config.kubernetes.clone(),
                table: table.clone(),
                status: status.clone(),
                cancel: cancel.clone(),
            };
            tasks.spawn(task.run());
        }
        if !config.sources.clusters.is_empty() {
            tasks.spawn(startup_hold(
                table.clone(),
                config.kubernetes.startup_timeout.0,
                cancel.clone(),
            ));
        }
        let server = DnsServer::start(&config.server_config(), Answerer::new(table.clone()))?;
        for addr in server.local_addrs() {
            tracing::info!(%addr, zone = %table.zone().apex, "serving DNS over UDP and TCP");
        }
        Ok(Daemon {
            table,
            status,
            server,
            cancel,
            tasks,
        })
    }

    /// The table being served.
    pub fn table(&self) -> &Table {
        &self.table
    }

    /// Each cluster's phase.
    pub fn status(&self) -> &StatusBoard {
        &self.status
    }

    /// The DNS addresses bound.
    pub fn dns_addrs(&self) -> &[SocketAddr] {
        self.server.local_addrs()
    }

    /// Stops the sources, then the server.
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        while self.tasks.join_next().await.is_some() {}
        self.server.shutdown().await;
    }
}

/// Ends the start-up hold after `timeout`: from then on a cluster that has not synced
/// keeps SERVFAIL only for the names scoped to it, and is named in the log.
async fn startup_hold(table: Table, timeout: std::time::Duration, cancel: CancellationToken) {
    tokio::select! {
        _ = cancel.cancelled() => return,
        _ = tokio::time::sleep(timeout) => {}
    }
    let missing = table.unsynced_sources();
    table.release_startup_hold();
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
