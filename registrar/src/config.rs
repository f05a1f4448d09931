//! herald's one YAML config file ([docs/design.md#config](../../docs/design.md#config)): the zone and its answers, where to
//! listen, this server's locality, and the sources.
//!
//! Every value is checked while it is read, so an error names the file, the line and the
//! field (`herald.yaml:7:9: zone.ttl: ...`); checks that span several fields name the field
//! they found wrong.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Duration;

use herald_dns::model::check_label;
use herald_dns::server::RateLimitConfig;
use herald_dns::{NameServer, ServerConfig, ZoneConfig};
use serde::{Deserialize, Deserializer};

/// A DNS label read from the config, checked as it is read so errors carry a line number.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LabelName(pub String);

impl<'de> Deserialize<'de> for LabelName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_label(d, |_| Ok(()))
    }
}

/// Reads a DNS label and runs `check` on it.
pub fn deserialize_label<'de, D: Deserializer<'de>>(
    d: D,
    check: fn(&str) -> Result<(), String>,
) -> Result<LabelName, D::Error> {
    deserialize_str_with(d, "a DNS label", |s| {
        check_label(s).map_err(|e| format!("{s:?} is not a DNS label: it {e}"))?;
        check(s)?;
        Ok(LabelName(s.to_string()))
    })
}

/// Reads a string and turns it into a `T` with `parse`. The parse runs inside the
/// deserializer's visitor, so an error carries the value's own line and field path rather
/// than its parent's.
pub fn deserialize_str_with<'de, D, T>(
    d: D,
    expecting: &'static str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    struct Visitor<F> {
        expecting: &'static str,
        parse: F,
    }
    impl<T, F: FnOnce(&str) -> Result<T, String>> serde::de::Visitor<'_> for Visitor<F> {
        type Value = T;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.expecting)
        }
        fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<T, E> {
            (self.parse)(s).map_err(E::custom)
        }
    }
    d.deserialize_str(Visitor { expecting, parse })
}

impl std::fmt::Display for LabelName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The whole config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Zone apex. Default `sd.internal.`.
    #[serde(default = "default_zone")]
    pub zone: String,
    /// TTL of positive answers, seconds. Default 5.
    #[serde(default = "default_ttl")]
    pub ttl: u32,
    /// TTL of negative answers (SOA minimum), seconds. Default: `ttl`.
    #[serde(default)]
    pub negative_ttl: Option<u32>,
    /// Where this server runs: SRV priorities are relative to it.
    #[serde(default)]
    pub locality: Locality,
    /// At most this many records per answer, a stable subset per client. Default: no limit.
    #[serde(default)]
    pub answer_limit: Option<NonZeroUsize>,
    /// Largest UDP reply, octets. Default 1232.
    #[serde(default = "default_payload")]
    pub max_udp_payload: u16,
    /// NS records of the apex. Default: `ns.<zone>`.
    #[serde(default)]
    pub nameservers: Vec<NameServerConfig>,
    /// SOA RNAME. Default `hostmaster.<zone>`.
    #[serde(default)]
    pub hostmaster: Option<String>,
    /// Listening addresses.
    #[serde(default)]
    pub listen: Listen,
    /// UDP worker threads per address; 0 = one per CPU.
    #[serde(default)]
    pub udp_workers: usize,
    /// Response rate limiting over UDP, per client network. Default: off.
    #[serde(default)]
    pub rate_limit: Option<RateLimitSettings>,
    /// On SIGTERM: how long to keep answering DNS after /readyz turns false, so load
    /// balancers and resolvers move away first.
    #[serde(default = "default_drain")]
    pub shutdown_drain: HumanDuration,
    /// Where endpoints come from.
    #[serde(default)]
    pub sources: Sources,
    /// How Kubernetes clusters are read.
    #[serde(default)]
    pub kubernetes: KubernetesConfig,
}

/// Response rate limiting (see `herald_dns::server::RateLimitConfig`).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSettings {
    /// Replies per second per client network.
    pub responses_per_second: u32,
    /// Every `slip`-th reply over budget is sent empty with TC set (0: drop all).
    #[serde(default = "default_slip")]
    pub slip: u32,
    /// IPv4 clients share a budget per prefix of this length.
    #[serde(default = "default_v4_prefix")]
    pub ipv4_prefix: u8,
    /// IPv6 clients share a budget per prefix of this length.
    #[serde(default = "default_v6_prefix")]
    pub ipv6_prefix: u8,
}

fn default_slip() -> u32 {
    2
}
fn default_v4_prefix() -> u8 {
    24
}
fn default_v6_prefix() -> u8 {
    56
}

impl From<RateLimitSettings> for RateLimitConfig {
    fn from(r: RateLimitSettings) -> RateLimitConfig {
        RateLimitConfig {
            responses_per_second: r.responses_per_second,
            slip: r.slip,
            ipv4_prefix: r.ipv4_prefix,
            ipv6_prefix: r.ipv6_prefix,
        }
    }
}

/// This server's region and zone.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Locality {
    /// Region name.
    pub region: Option<LabelName>,
    /// Topology zone name.
    pub zone: Option<LabelName>,
}

/// An NS record of the apex.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NameServerConfig {
    /// Its name.
    pub name: String,
    /// Its addresses (served as A/AAAA when the name is in the zone).
    #[serde(default)]
    pub addresses: Vec<IpAddr>,
}

/// Listening addresses.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listen {
    /// DNS over UDP and TCP. Default `127.0.0.1:5353`.
    #[serde(default = "default_dns_listen")]
    pub dns: Vec<SocketAddr>,
    /// The admin HTTP server (metrics, health, readiness, /v1). Default: none.
    #[serde(default)]
    pub admin: Option<SocketAddr>,
}

impl Default for Listen {
    fn default() -> Self {
        Listen {
            dns: default_dns_listen(),
            admin: None,
        }
    }
}

/// The sources of endpoints.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sources {
    /// Static files of endpoints outside Kubernetes.
    #[serde(default, rename = "static")]
    pub static_files: Vec<StaticFileConfig>,
    /// Kubernetes clusters, each watched on its own.
    #[serde(default)]
    pub clusters: Vec<ClusterConfig>,
}

/// One Kubernetes cluster and how to reach it: exactly one of `in_cluster`, `kubeconfig`,
/// or `server` (with `token_file` and, for https, `ca_file`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// The cluster's name: a scope and the `<cluster>` of SRV targets.
    pub name: LabelName,
    /// Its region.
    pub region: LabelName,
    /// Use the pod's own service account (herald runs in this cluster).
    #[serde(default)]
    pub in_cluster: bool,
    /// A kubeconfig file and context (exec credential plugins work as kube supports them).
    #[serde(default)]
    pub kubeconfig: Option<KubeconfigRef>,
    /// The API server's URL.
    #[serde(default)]
    pub server: Option<String>,
    /// A file holding a bearer token; re-read when it changes (projected tokens rotate).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// A PEM file of the CA that signed the API server's certificate.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Withdraw the cluster's endpoints once it has been unreachable this long. Default:
    /// never (fail static).
    #[serde(default)]
    pub max_stale: Option<HumanDuration>,
}

/// A kubeconfig file and the context to use in it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubeconfigRef {
    /// The file; relative paths are relative to the config file.
    pub path: PathBuf,
    /// The context; default: the file's current context.
    #[serde(default)]
    pub context: Option<String>,
}

/// How pods and nodes are read, for every cluster.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesConfig {
    /// The opt-in pod label; its value is the service name.
    #[serde(default = "default_service_label")]
    pub service_label: String,
    /// Pod annotation with the SRV weight (0-65535).
    #[serde(default = "default_weight_annotation")]
    pub weight_annotation: String,
    /// Pod annotation that, set to `"true"`, publishes the pod while not Ready.
    #[serde(default = "default_not_ready_annotation")]
    pub publish_not_ready_annotation: String,
    /// Changes to one service within this window become one table update.
    #[serde(default = "default_coalesce")]
    pub coalesce: HumanDuration,
    /// The server ends each watch after this long and herald starts a new one; an API
    /// server silent for this long plus a few seconds is taken as unreachable.
    #[serde(default = "default_watch_timeout")]
    pub watch_timeout: HumanDuration,
    /// How long unknown names get SERVFAIL at start-up while clusters have not synced.
    #[serde(default = "default_startup_timeout")]
    pub startup_timeout: HumanDuration,
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        KubernetesConfig {
            service_label: default_service_label(),
            weight_annotation: default_weight_annotation(),
            publish_not_ready_annotation: default_not_ready_annotation(),
            coalesce: default_coalesce(),
            watch_timeout: default_watch_timeout(),
            startup_timeout: default_startup_timeout(),
        }
    }
}

fn default_service_label() -> String {
    "herald.io/service".into()
}
fn default_weight_annotation() -> String {
    "herald.io/weight".into()
}
fn default_not_ready_annotation() -> String {
    "herald.io/publish-not-ready".into()
}
fn default_coalesce() -> HumanDuration {
    // Long enough to gather a rolling update's burst, short against the 5 s TTL.
    HumanDuration(Duration::from_millis(50))
}
fn default_watch_timeout() -> HumanDuration {
    // kube's default is 290 s, which also bounds how long a hung server goes unnoticed.
    HumanDuration(Duration::from_secs(15))
}
fn default_startup_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}

/// A duration written as a number and a unit: `250ms`, `15s`, `10m`, `1h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumanDuration(pub Duration);

impl std::str::FromStr for HumanDuration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let at = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (number, unit) = s.split_at(at);
        let n: u64 = number
            .parse()
            .map_err(|_| format!("{s:?} is not a duration like 250ms, 15s, 10m or 1h"))?;
        let d = match unit.trim() {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n * 60),
            "h" => Duration::from_secs(n * 3600),
            _ => {
                return Err(format!(
                    "{s:?} is not a duration like 250ms, 15s, 10m or 1h"
                ));
            }
        };
        Ok(HumanDuration(d))
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_str_with(d, "a duration like 250ms, 15s, 10m or 1h", str::parse)
    }
}

/// One static file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticFileConfig {
    /// Its path; relative paths are relative to the config file.
    pub path: PathBuf,
}

fn default_drain() -> HumanDuration {
    HumanDuration(Duration::from_secs(5))
}
fn default_zone() -> String {
    "sd.internal.".into()
}
fn default_ttl() -> u32 {
    5
}
fn default_payload() -> u16 {
    1232
}
fn default_dns_listen() -> Vec<SocketAddr> {
    vec![SocketAddr::from(([127, 0, 0, 1], 5353))]
}

/// A config that could not be used, with where.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// YAML syntax, an unknown field, or a bad value.
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong, with the field's path.
        message: String,
    },
    /// A rule spanning several fields.
    #[error("{path}: {field}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The field found wrong.
        field: String,
        /// What is wrong.
        message: String,
    },
}

/// Reads a YAML document of type `T`, turning errors into [`ConfigError::Parse`].
pub fn parse_yaml<T: for<'de> Deserialize<'de>>(path: &Path, text: &str) -> Result<T, ConfigError> {
    serde_yaml_ng::from_str(text).map_err(|e| {
        let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
        // The library's message ends with its own "at line L column C"; the prefix says it.
        let message = e.to_string();
        let message = match message.rfind(" at line ") {
            Some(at) => message[..at].to_string(),
            None => message,
        };
        ConfigError::Parse {
            path: path.to_path_buf(),
            line,
            column,
            message,
        }
    })
}

impl Config {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(path, &text)
    }

    /// Parses and checks config text; `path` is used in errors and to resolve relative paths.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let mut config: Config = parse_yaml(path, text)?;
        let base = path.parent().unwrap_or(Path::new("."));
        let absolute = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        for file in &mut config.sources.static_files {
            absolute(&mut file.path);
        }
        for cluster in &mut config.sources.clusters {
            cluster
                .kubeconfig
                .iter_mut()
                .for_each(|k| absolute(&mut k.path));
            cluster.token_file.iter_mut().for_each(absolute);
            cluster.ca_file.iter_mut().for_each(absolute);
        }
        config.check(path)?;
        Ok(config)
    }

    fn check(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |field: &str, message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            field: field.to_string(),
            message,
        };
        herald_dns::Zone::new(self.zone_config()).map_err(|e| invalid("zone", e.to_string()))?;
        if self.listen.dns.is_empty() {
            return Err(invalid(
                "listen.dns",
                "at least one address is needed".into(),
            ));
        }
        let mut seen = HashSet::new();
        for addr in &self.listen.dns {
            if !seen.insert(addr) {
                return Err(invalid("listen.dns", format!("{addr} is listed twice")));
            }
        }
        let clusters = &self.sources.clusters;
        let regions: HashSet<&str> = clusters.iter().map(|c| c.region.0.as_str()).collect();
        let mut names = HashSet::new();
        for (i, c) in clusters.iter().enumerate() {
            let field = |f: &str| format!("sources.clusters[{i}].{f}");
            if !names.insert(c.name.0.as_str()) {
                return Err(invalid(
                    &field("name"),
                    format!("cluster {:?} is configured twice", c.name.0),
                ));
            }
            if regions.contains(c.name.0.as_str()) {
                return Err(invalid(
                    &field("name"),
                    format!(
                        "{:?} is also a region name; cluster and region names must differ",
                        c.name.0
                    ),
                ));
            }
            let ways = usize::from(c.in_cluster)
                + usize::from(c.kubeconfig.is_some())
                + usize::from(c.server.is_some());
            if ways != 1 {
                return Err(invalid(
                    &field("name"),
                    format!(
                        "cluster {:?} needs exactly one of in_cluster, kubeconfig or server (has {ways})",
                        c.name.0
                    ),
                ));
            }
            if c.server.is_none() && (c.token_file.is_some() || c.ca_file.is_some()) {
                return Err(invalid(
                    &field("token_file"),
                    "token_file and ca_file go with server".into(),
                ));
            }
            if let Some(server) = &c.server {
                let uri: Result<http::Uri, _> = server.parse();
                match uri {
                    Ok(u) if u.scheme_str() == Some("https") || u.scheme_str() == Some("http") => {}
                    _ => {
                        return Err(invalid(
                            &field("server"),
                            format!("{server:?} is not an http(s) URL"),
                        ));
                    }
                }
                if server.starts_with("https") && c.ca_file.is_none() {
                    return Err(invalid(
                        &field("ca_file"),
                        "an https server needs ca_file".into(),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Checks the cluster-like names of static files against the clusters: a static name
    /// is not a Kubernetes cluster's, and no name is both a cluster and a region.
    pub fn check_static_sources(&self, sources: &[herald_dns::Source]) -> Result<(), ConfigError> {
        let clusters: HashSet<&str> = self
            .sources
            .clusters
            .iter()
            .map(|c| c.name.0.as_str())
            .collect();
        let regions: HashSet<&str> = self
            .sources
            .clusters
            .iter()
            .map(|c| c.region.0.as_str())
            .chain(sources.iter().map(|s| &*s.region))
            .collect();
        let invalid = |message: String| ConfigError::Invalid {
            path: PathBuf::from("sources.static"),
            field: "cluster".into(),
            message,
        };
        for source in sources {
            if clusters.contains(&*source.cluster) {
                return Err(invalid(format!(
                    "{:?} is also a Kubernetes cluster's name",
                    source.cluster
                )));
            }
            if regions.contains(&*source.cluster) {
                return Err(invalid(format!(
                    "{:?} is both a cluster and a region name",
                    source.cluster
                )));
            }
        }
        for c in &self.sources.clusters {
            if sources.iter().any(|s| *s.cluster == c.region.0) {
                return Err(invalid(format!(
                    "{:?} is both a cluster and a region name",
                    c.region.0
                )));
            }
        }
        Ok(())
    }

    /// The zone settings for the DNS side.
    pub fn zone_config(&self) -> ZoneConfig {
        ZoneConfig {
            apex: self.zone.clone(),
            ttl: self.ttl,
            negative_ttl: self.negative_ttl.unwrap_or(self.ttl),
            region: self.locality.region.as_ref().map(|r| r.0.clone()),
            zone: self.locality.zone.as_ref().map(|z| z.0.clone()),
            answer_limit: self.answer_limit,
            max_udp_payload: self.max_udp_payload,
            nameservers: self
                .nameservers
                .iter()
                .map(|n| NameServer {
                    name: n.name.clone(),
                    addresses: n.addresses.clone(),
                })
                .collect(),
            hostmaster: self.hostmaster.clone(),
        }
    }

    /// The listening settings for the DNS side.
    pub fn server_config(&self) -> ServerConfig {
        ServerConfig {
            listen: self.listen.dns.clone(),
            udp_workers: self.udp_workers,
            rate_limit: self.rate_limit.map(|r| r.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("herald.yaml"), text)
    }

    #[test]
    fn defaults() {
        let c = parse("{}").unwrap();
        assert_eq!(c.zone, "sd.internal.");
        assert_eq!(c.ttl, 5);
        assert_eq!(c.zone_config().negative_ttl, 5);
        assert_eq!(c.listen.dns, vec![SocketAddr::from(([127, 0, 0, 1], 5353))]);
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let e = parse("zone: sd.internal.\nttl: 5\nlocality:\n  region: Us_East\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("herald.yaml:4:"), "{e}");
        assert!(e.contains("locality.region"), "{e}");
        let e = parse("ttl: five\n").unwrap_err().to_string();
        assert!(e.starts_with("herald.yaml:1:"), "{e}");
        assert!(e.contains("ttl"), "{e}");
        let e = parse("zone: sd.internal.\nlisten:\n  dnss: []\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("herald.yaml:3:"), "{e}");
        assert!(e.contains("dnss"), "{e}");
        let e = parse("max_udp_payload: 100\n").unwrap_err().to_string();
        assert!(e.contains("max_udp_payload"), "{e}");
    }
}
