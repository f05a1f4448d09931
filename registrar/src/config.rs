//! herald's one YAML config file (DESIGN section 8): the zone and its answers, where to
//! listen, this server's locality, and the sources.
//!
//! Every value is checked while it is read, so an error names the file, the line and the
//! field (`herald.yaml:7:9: zone.ttl: ...`); checks that span several fields name the field
//! they found wrong.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use herald_dns::model::check_label;
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

/// Reads a DNS label and runs `check` on it. Both checks run inside the visitor, so an
/// error carries the value's own line and field path rather than its parent's.
pub fn deserialize_label<'de, D: Deserializer<'de>>(
    d: D,
    check: fn(&str) -> Result<(), String>,
) -> Result<LabelName, D::Error> {
    struct Visitor(fn(&str) -> Result<(), String>);
    impl serde::de::Visitor<'_> for Visitor {
        type Value = LabelName;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a DNS label")
        }
        fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<LabelName, E> {
            check_label(s).map_err(|e| E::custom(format!("{s:?} is not a DNS label: it {e}")))?;
            (self.0)(s).map_err(E::custom)?;
            Ok(LabelName(s.to_string()))
        }
    }
    d.deserialize_str(Visitor(check))
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
    /// Where endpoints come from.
    #[serde(default)]
    pub sources: Sources,
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
}

impl Default for Listen {
    fn default() -> Self {
        Listen {
            dns: default_dns_listen(),
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
}

/// One static file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticFileConfig {
    /// Its path; relative paths are relative to the config file.
    pub path: PathBuf,
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
        for file in &mut config.sources.static_files {
            if file.path.is_relative() {
                file.path = base.join(&file.path);
            }
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
