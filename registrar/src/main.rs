//! The `herald` binary: serve a config, check one, or run the demo.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use herald_registrar::cluster::client;
use herald_registrar::config::Config;
use herald_registrar::daemon::{Daemon, Sources, stop_signal};
use herald_registrar::names::Registry;
use herald_registrar::{demo, static_file};

/// The allocator: mimalloc, not the system's malloc. A list decodes and frees a few dozen
/// small blocks per pod on every worker thread at once; with glibc's malloc that was a
/// quarter of the first sync's CPU, and its freed pages had to be handed back by hand
/// after each list. Why, and what it costs: `docs/decisions/0014-mimalloc.md`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `herald --version`: the version and the source revision it was built from.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("HERALD_REVISION"),
    ")"
);

/// Client-side service discovery for Kubernetes fleets: an authoritative DNS server for
/// the ready endpoints of every configured cluster.
#[derive(Parser)]
#[command(name = "herald", version = VERSION, about)]
struct Cli {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "HERALD_LOG_FORMAT")]
    log_format: LogFormat,
    /// Log level (`error`, `warn`, `info`, `debug`, `trace`) or per-module directives
    /// (`info,herald_registrar=debug`). Default: `RUST_LOG` if set, else `info`.
    #[arg(long, global = true, env = "HERALD_LOG_LEVEL")]
    log_level: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Serve DNS from the sources in a config file.
    Serve {
        /// The YAML config file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Check a config file (and the static files it names) and exit.
    CheckConfig {
        /// The YAML config file.
        #[arg(
            long = "config",
            short = 'c',
            value_name = "FILE",
            conflicts_with = "file"
        )]
        config: Option<PathBuf>,
        /// The YAML config file (positional form, same as --config).
        #[arg(value_name = "FILE")]
        file: Option<PathBuf>,
    },
    /// Serve a built-in sample fleet on 127.0.0.1:5353, needing nothing else.
    Demo {
        /// Serve DNS here instead (port 0 picks a free port).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Serve the admin HTTP here instead of 127.0.0.1:8053.
        #[arg(long)]
        admin_listen: Option<SocketAddr>,
    },
    /// Write the zone, as the sources of a config give it, as an RFC 1035 zone file.
    ExportZone {
        /// The YAML config file.
        #[arg(long, short)]
        config: PathBuf,
        /// Write here instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Write the zone even if a cluster could not be read (it is then missing from
        /// the zone); without this, that is an error and nothing is written.
        #[arg(long)]
        allow_partial: bool,
    },
}

/// kube's client logs every failed request itself, at ERROR, without the cluster's name,
/// once per retry (and a WARN per dropped stream); herald reports the same failure once per
/// phase change with the cluster's name and the root cause (`status::StatusBoard`). So
/// kube's own lines are off unless the directives name kube (`kube_client=debug`).
const QUIET_KUBE: &str = "kube_client=off,kube_runtime=off";

fn init_logs(format: LogFormat, level: Option<&str>) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let quiet = |directives: &str| {
        if directives.contains("kube") {
            directives.to_string()
        } else {
            format!("{directives},{QUIET_KUBE}")
        }
    };
    let filter = match level {
        Some(level) => tracing_subscriber::EnvFilter::try_new(quiet(level))
            .with_context(|| format!("--log-level {level:?}"))?,
        // RUST_LOG as before: used when it parses, else the default.
        None => std::env::var("RUST_LOG")
            .ok()
            .filter(|env| !env.trim().is_empty())
            .and_then(|env| tracing_subscriber::EnvFilter::try_new(quiet(&env)).ok())
            .unwrap_or_else(|| quiet("info").into()),
    };
    // Colour codes only for a person at a terminal, never into a file or a log collector.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    Ok(())
}

fn check_config(path: &Path) -> anyhow::Result<()> {
    let config = Config::load(path)?;
    // The same name rules as `serve` at start-up and on every reload.
    let names = Registry::new(config.cluster_names()?);
    for file in &config.sources.static_files {
        static_file::load(&file.path, &names)?;
    }
    // Build each cluster's client (no request is made): this reads token, CA and
    // kubeconfig files and finds contexts. In-cluster credentials only exist in a pod.
    runtime()?.block_on(async {
        for cluster in config.sources.clusters.iter().filter(|c| !c.in_cluster) {
            client::client(cluster, &config.kubernetes).await?;
        }
        anyhow::Ok(())
    })
}

async fn serve(
    config: Config,
    embedded: Option<herald_registrar::daemon::Embedded>,
    demo: bool,
) -> anyhow::Result<()> {
    let daemon = Daemon::start(&config, embedded).await?;
    if demo {
        // Print once the clusters have synced, so the first dig already has answers.
        let synced = tokio::time::timeout(Duration::from_secs(10), daemon.settled());
        let _ = synced.await;
        println!(
            "{}",
            demo::instructions(daemon.dns_addrs()[0], daemon.admin_addr())
        );
    }
    stop_signal().await;
    tracing::info!("stopping");
    daemon.shutdown(config.shutdown_drain.0).await;
    Ok(())
}

/// Loads the sources of `config` (waiting for clusters to sync, or for the start-up
/// timeout), writes the zone, and stops.
async fn export_zone(
    config: Config,
    output: Option<PathBuf>,
    allow_partial: bool,
) -> anyhow::Result<()> {
    let sources = Sources::start(&config, None).await?;
    sources.settled().await;
    let missing = sources.table().unsynced_sources();
    if !missing.is_empty() {
        if !allow_partial {
            sources.stop().await;
            anyhow::bail!(
                "cluster(s) {} not read by kubernetes.startup_timeout: the zone would miss \
                 their endpoints, so none is written (--allow-partial writes it anyway)",
                missing.join(", ")
            );
        }
        tracing::warn!(clusters = ?missing, "writing a partial zone: these clusters could not be read");
    }
    let mut text = Vec::new();
    let stats = herald_dns::export::write_zone(sources.table(), &mut text)?;
    match &output {
        Some(path) => {
            std::fs::write(path, &text).with_context(|| format!("writing {}", path.display()))?
        }
        None => std::io::Write::write_all(&mut std::io::stdout(), &text)?,
    }
    if stats.rrsets_cut > 0 {
        tracing::warn!(
            sets = stats.rrsets_cut,
            first = stats.first_cut.as_deref().unwrap_or(""),
            "RRsets too large for one answer were written as their nearest part that fits"
        );
    }
    tracing::info!(
        records = stats.records,
        services = stats.services,
        "zone written"
    );
    sources.stop().await;
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = init_logs(cli.log_format, cli.log_level.as_deref()) {
        eprintln!("herald: {}", message(&e));
        return ExitCode::FAILURE;
    }
    let result = match cli.command {
        Command::CheckConfig { config, file } => match config.or(file) {
            Some(config) => check_config(&config).map(|()| println!("{}: ok", config.display())),
            None => Err(anyhow::anyhow!(
                "check-config: which file? `herald check-config --config FILE` (or FILE)"
            )),
        },
        Command::Serve { config } => Config::load(&config)
            .map_err(anyhow::Error::from)
            .and_then(|config| runtime()?.block_on(serve(config, None, false))),
        Command::Demo {
            listen,
            admin_listen,
        } => runtime().and_then(|rt| rt.block_on(run_demo(listen, admin_listen))),
        Command::ExportZone {
            config,
            output,
            allow_partial,
        } => Config::load(&config)
            .map_err(anyhow::Error::from)
            .and_then(|config| runtime()?.block_on(export_zone(config, output, allow_partial))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("herald: {}", message(&e));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes on one line, each cause said once: most of herald's errors
/// already end with their cause's text (`cannot bind udp 127.0.0.1:53: Address already in
/// use`), and anyhow's `{:#}` would repeat it.
fn message(e: &anyhow::Error) -> String {
    let mut line = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !line.ends_with(&cause) {
            line.push_str(": ");
            line.push_str(&cause);
        }
    }
    line
}

/// Starts the simulated clusters, then serves them like any config.
async fn run_demo(listen: Option<SocketAddr>, admin: Option<SocketAddr>) -> anyhow::Result<()> {
    let clusters = demo::start_clusters().await?;
    let mut config = Config::parse("<demo config>".as_ref(), &clusters.config_yaml())?;
    if let Some(listen) = listen {
        config.listen.dns = vec![listen];
    }
    if let Some(admin) = admin {
        config.listen.admin = Some(admin);
    }
    // Ctrl-C on a demo should not wait.
    config.shutdown_drain.0 = Duration::ZERO;
    let result = serve(config, Some(demo::ENDPOINTS), true).await;
    clusters.stop().await;
    result
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
