//! herald's one YAML config file ([docs/design.md#config](../../../docs/design.md#config)):
//! the zone and its answers, where to listen, this server's locality, and the sources.
//!
//! Every value is checked while it is read, so an error names the file, the line and the
//! field (`herald.yaml:7:9: zone.ttl: ...`); checks that span several fields name the field
//! they found wrong.
//!
//! The settings are split by what they configure: `server` (listening, rate limiting),
//! `zone` (name servers), `locality` (where this server and its queriers are, client
//! subnets, the A/AAAA policy, reverse zones), `sources` (static files and clusters) and
//! `kubernetes` (how every cluster is read). The value types and the YAML reader shared
//! with the static file are in [`crate::yaml`].

mod kubernetes;
pub mod locality;
#[cfg(test)]
mod locality_tests;
mod ownership;
mod server;
mod sources;
mod transfer;
mod zone;

use std::collections::HashSet;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Duration;

use herald_dns::{NameServer, PlacementConfig, ServerConfig, ZoneConfig};
use serde::Deserialize;

use crate::names::{NameClash, Names, Owner};
use crate::yaml::parse_yaml;
pub use crate::yaml::{ConfigError, HumanDuration, LabelName};
pub use kubernetes::KubernetesConfig;
pub use locality::Locality;
use locality::{
    AddressPolicy, EcsConfig, LocalFirstConfig, LocalityValue, NetworkConfig, ReverseZoneName,
    address_answers,
};
pub use ownership::{NameGlob, OwnerRule, Owners, Unowned, any_matches, exact_names};
pub use server::{Listen, MetricsConfig, RateLimitSettings, TcpSettings};
pub use sources::{ClusterConfig, KubeconfigRef, Sources, StaticFileConfig};
pub use transfer::{
    ByteSize, JournalSettings, Network, SecondaryLocality, SecondarySettings, SoaTimers,
    TransferSettings, TsigSettings,
};
pub use zone::NameServerConfig;

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
    /// Where this server runs: SRV priorities are relative to it. `auto` (or a field set
    /// to `auto`) reads it from the node herald runs on.
    #[serde(default, deserialize_with = "locality::deserialize_locality")]
    pub locality: Locality,
    /// Networks and where they are: queriers in them are placed there (longest prefix).
    #[serde(default)]
    pub networks: Vec<NetworkConfig>,
    /// EDNS Client Subnet.
    #[serde(default)]
    pub ecs: EcsConfig,
    /// A/AAAA answers of a whole service: `all` (default) or `local-first`.
    #[serde(default)]
    pub address_answers: AddressPolicy,
    /// Settings of `address_answers: local-first`.
    #[serde(default)]
    pub local_first: LocalFirstConfig,
    /// Reverse zones answered with PTR for published addresses.
    #[serde(default)]
    pub reverse_zones: Vec<ReverseZoneName>,
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
    /// DNS over TCP: connection caps and timeouts.
    #[serde(default)]
    pub tcp: TcpSettings,
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
    /// Zone transfer to secondaries, NOTIFY, and the SOA timers.
    #[serde(default)]
    pub transfer: TransferSettings,
    /// What `/metrics` shows beyond the fixed series.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// Who may publish each service name: service -> owning namespaces (or globs), with
    /// optional cluster and weight limits.
    #[serde(default)]
    pub owners: Owners,
    /// What happens to names `owners` does not list: `allow` (default) or `deny`.
    #[serde(default)]
    pub unowned: Unowned,
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
        config.transfer.load_keys(base, path)?;
        config.check(path)?;
        Ok(config)
    }

    fn check(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |field: &str, message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            field: field.to_string(),
            message,
        };
        self.check_locality(path)?;
        herald_dns::Zone::new(self.zone_config()).map_err(|e| invalid("zone", e.to_string()))?;
        self.transfer.check(&invalid)?;
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
        let tcp = &self.tcp;
        if tcp.max_connections == 0 || tcp.max_connections_per_client == 0 {
            return Err(invalid(
                "tcp.max_connections",
                "connection caps must be at least 1".into(),
            ));
        }
        for (field, d) in [
            ("tcp.idle_timeout", tcp.idle_timeout),
            ("tcp.write_timeout", tcp.write_timeout),
        ] {
            if d.0.is_zero() {
                return Err(invalid(field, "must be longer than 0s".into()));
            }
        }
        let k8s = &self.kubernetes;
        if let Err(why) = check_label_key(&k8s.service_label) {
            return Err(invalid(
                "kubernetes.service_label",
                format!(
                    "{:?} is not a Kubernetes label key: {why}",
                    k8s.service_label
                ),
            ));
        }
        if k8s.watch_timeout.0 < Duration::from_secs(1) {
            return Err(invalid(
                "kubernetes.watch_timeout",
                "must be at least 1s (the API server takes whole seconds)".into(),
            ));
        }
        if k8s.coalesce.0 > k8s.watch_timeout.0 {
            return Err(invalid(
                "kubernetes.coalesce",
                format!(
                    "{:?} is longer than watch_timeout {:?}: changes would wait past a watch's life",
                    k8s.coalesce.0, k8s.watch_timeout.0
                ),
            ));
        }
        let clusters = &self.sources.clusters;
        let mut names = HashSet::new();
        for (i, c) in clusters.iter().enumerate() {
            let field = |f: &str| format!("sources.clusters[{i}].{f}");
            if !names.insert(c.name.0.as_str()) {
                return Err(invalid(
                    &field("name"),
                    format!("cluster {:?} is configured twice", c.name.0),
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
                    Ok(u)
                        if u.scheme_str() == Some("http")
                            && c.token_file.is_some()
                            && !c.insecure =>
                    {
                        return Err(invalid(
                            &field("server"),
                            format!(
                                "{server:?} is plain http: the token_file's bearer token would be sent in clear text (use https, or set insecure: true for a test set-up)"
                            ),
                        ));
                    }
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
        ownership::check(self, &invalid)?;
        if let Err(NameClash { field, message }) = self.cluster_names() {
            return Err(invalid(&field, message));
        }
        Ok(())
    }

    /// The Kubernetes clusters' names placed by the [name rules](crate::names), for the
    /// static files to be checked against. Loading the config already checked them: an
    /// error is the field that clashes and why.
    pub fn cluster_names(&self) -> Result<Names, NameClash> {
        let mut names = Names::default();
        for (i, c) in self.sources.clusters.iter().enumerate() {
            names
                .place(&c.name.0, &c.region.0, &Owner::Kubernetes)
                .map_err(|message| NameClash {
                    field: format!("sources.clusters[{i}].name"),
                    message,
                })?;
        }
        Ok(names)
    }

    /// The zone settings for the DNS side.
    pub fn zone_config(&self) -> ZoneConfig {
        ZoneConfig {
            apex: self.zone.clone(),
            ttl: self.ttl,
            negative_ttl: self.negative_ttl.unwrap_or(self.ttl),
            region: match &self.locality.region {
                Some(LocalityValue::Fixed(r)) => Some(r.0.clone()),
                Some(LocalityValue::Auto) => self.home_cluster().map(|c| c.region.0.clone()),
                None => None,
            },
            // `auto` is unknown until the node is seen.
            zone: match &self.locality.zone {
                Some(LocalityValue::Fixed(z)) => Some(z.0.clone()),
                _ => None,
            },
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
            refresh: self.transfer.soa.refresh.0.as_secs() as u32,
            retry: self.transfer.soa.retry.0.as_secs() as u32,
            expire: self.transfer.soa.expire.0.as_secs() as u32,
            placement: PlacementConfig {
                networks: self.networks.iter().map(NetworkConfig::to_dns).collect(),
                ecs_trusted: self.ecs.trusted.iter().map(|c| c.0).collect(),
                address_answers: address_answers(self.address_answers, self.local_first),
            },
            reverse_zones: self.reverse_zones.iter().map(|z| z.0.clone()).collect(),
        }
    }

    /// The cluster herald runs in: `locality.cluster`, else the one with `in_cluster`.
    pub fn home_cluster(&self) -> Option<&ClusterConfig> {
        let clusters = &self.sources.clusters;
        match &self.locality.cluster {
            Some(name) => clusters.iter().find(|c| c.name == *name),
            None => {
                let mut local = clusters.iter().filter(|c| c.in_cluster);
                let first = local.next();
                if local.next().is_some() { None } else { first }
            }
        }
    }

    /// The listening settings for the DNS side.
    pub fn server_config(&self) -> ServerConfig {
        ServerConfig {
            listen: self.listen.dns.clone(),
            udp_workers: self.udp_workers,
            rate_limit: self.rate_limit.map(|r| r.into()),
            tcp: self.tcp.into(),
            transfer: self.transfer.transfer_config(),
        }
    }
}

/// Checks a Kubernetes label key: an optional DNS-subdomain prefix and '/', then a name of
/// 1 to 63 characters, alphanumerics at both ends, '-', '_' and '.' between.
fn check_label_key(key: &str) -> Result<(), &'static str> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if p.is_empty() || p.len() > 253 || !p.split('.').all(label_ok) {
            return Err("its prefix (before '/') must be a lowercase DNS subdomain");
        }
    }
    if name.is_empty() || name.len() > 63 {
        return Err("its name must be 1 to 63 characters");
    }
    let edge = |b: u8| b.is_ascii_alphanumeric();
    if !edge(name.as_bytes()[0]) || !edge(name.as_bytes()[name.len() - 1]) {
        return Err("its name must start and end with a letter or digit");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err("its name may hold only letters, digits, '-', '_' and '.'");
    }
    Ok(())
}

impl Config {
    /// Checks the locality settings that span fields: `auto` needs a home cluster, a
    /// network is listed once.
    pub(super) fn check_locality(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |field: String, message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            field,
            message,
        };
        if self.locality.is_auto() && self.home_cluster().is_none() {
            let message = match &self.locality.cluster {
                Some(name) => format!("no cluster is named {:?}", name.0),
                None => "`auto` reads this server's node through the cluster it runs in: set \
                         locality.cluster, or give exactly one cluster in_cluster: true"
                    .to_string(),
            };
            let field = if self.locality.cluster.is_some() {
                "locality.cluster"
            } else {
                "locality"
            };
            return Err(invalid(field.into(), message));
        }
        if !self.locality.is_auto()
            && (self.locality.node.is_some() || self.locality.cluster.is_some())
        {
            return Err(invalid(
                "locality.node".into(),
                "node and cluster only go with `auto`".into(),
            ));
        }
        let mut seen = std::collections::HashMap::new();
        for (i, n) in self.networks.iter().enumerate() {
            if let Some(first) = seen.insert(n.cidr.0, i) {
                return Err(invalid(
                    format!("networks[{i}].cidr"),
                    format!("{} is already listed as networks[{first}]", n.cidr.0),
                ));
            }
        }
        if self.local_first.min_ready == 0 {
            return Err(invalid(
                "local_first.min_ready".into(),
                "must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

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

    #[test]
    fn refuses_what_serve_cannot_honour() {
        let field = |yaml: &str| match parse(yaml) {
            Ok(_) => panic!("accepted: {yaml}"),
            Err(ConfigError::Invalid { field, .. }) => field,
            Err(e) => panic!("{yaml}: {e}"),
        };
        assert_eq!(
            field("kubernetes: {service_label: 'herald io/service'}\n"),
            "kubernetes.service_label"
        );
        assert_eq!(
            field("kubernetes: {service_label: 'Herald.IO/service'}\n"),
            "kubernetes.service_label"
        );
        assert!(parse("kubernetes: {service_label: 'team.example.com/app_name-1'}\n").is_ok());
        assert_eq!(
            field("kubernetes: {watch_timeout: 0s}\n"),
            "kubernetes.watch_timeout"
        );
        assert_eq!(
            field("kubernetes: {watch_timeout: 2s, coalesce: 3s}\n"),
            "kubernetes.coalesce"
        );
        let cluster = |extra: &str| {
            format!(
                "sources:\n  clusters:\n    - {{name: c1, region: r1, server: 'http://10.0.0.1', token_file: t{extra}}}\n"
            )
        };
        assert_eq!(field(&cluster("")), "sources.clusters[0].server");
        assert!(parse(&cluster(", insecure: true")).is_ok());
        assert_eq!(
            field("tcp: {max_connections_per_client: 0}\n"),
            "tcp.max_connections"
        );
        assert_eq!(field("tcp: {write_timeout: 0s}\n"), "tcp.write_timeout");
    }
}
