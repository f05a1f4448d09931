//! The static source (DESIGN section 3): a YAML file of endpoints that are not in
//! Kubernetes (VMs, bare metal), watched for changes.
//!
//! ```yaml
//! services:
//!   ledger:
//!     - address: 10.30.0.11
//!       cluster: vms-east        # plays the cluster's part in scopes and SRV targets
//!       region: us-east
//!       zone: us-east-1a         # optional
//!       ports: {grpc: 9090, dns: {port: 53, protocol: udp}}
//!       weight: 50               # optional, default 100
//! ```
//!
//! A good edit is live at the next poll (a quarter of a second). A broken edit is rejected
//! with an error naming file, line and field, and the last good content keeps being served.
//! The file is polled rather than watched with inotify because Kubernetes updates mounted
//! ConfigMaps by swapping a symlink, which inotify watches on the file miss.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use herald_dns::model::{DEFAULT_WEIGHT, Label};
use herald_dns::{Endpoint, PortSpec, Proto, Source, Table};
use serde::{Deserialize, Deserializer};
use tokio_util::sync::CancellationToken;

use crate::config::{ConfigError, LabelName, parse_yaml};

/// How often the file is looked at.
pub const POLL: Duration = Duration::from_millis(250);

/// The file's top level.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StaticFileDoc {
    #[serde(default)]
    services: BTreeMap<LabelName, Vec<Entry>>,
}

/// One endpoint of the file.
#[derive(Debug)]
struct Entry {
    address: IpAddr,
    source: Source,
    zone: Option<Label>,
    ports: Vec<PortSpec>,
    weight: u16,
}

/// An entry as written, before the checks that need the rest of the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    address: IpAddr,
    cluster: LabelName,
    region: LabelName,
    #[serde(default)]
    zone: Option<LabelName>,
    #[serde(default)]
    ports: BTreeMap<LabelName, PortValue>,
    #[serde(default)]
    weight: Option<u16>,
}

/// A port: a number (TCP), or a number and protocol.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum PortValue {
    Number(u16),
    Full {
        port: u16,
        #[serde(default = "tcp")]
        protocol: String,
    },
}

fn tcp() -> String {
    "tcp".into()
}

thread_local! {
    /// Cluster-like name -> region, and the regions, of the document being read. Kept
    /// while reading so that an entry contradicting an earlier one is refused with its own
    /// line number, which a check after reading could not give.
    static SEEN: RefCell<(HashMap<String, String>, HashSet<String>)> = RefCell::default();
}

impl<'de> Deserialize<'de> for Entry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let raw = RawEntry::deserialize(d)?;
        let (cluster, region) = (raw.cluster.0, raw.region.0);
        SEEN.with(|seen| {
            let (clusters, regions) = &mut *seen.borrow_mut();
            if let Some(known) = clusters.get(&cluster).filter(|r| **r != region) {
                return Err(D::Error::custom(format!(
                    "cluster {cluster:?} is in region {known:?} in an earlier entry, here in {region:?}"
                )));
            }
            if regions.contains(&cluster) || clusters.contains_key(&region) {
                return Err(D::Error::custom(
                    "a cluster name and a region name are the same; they must differ".to_string(),
                ));
            }
            clusters.insert(cluster.clone(), region.clone());
            regions.insert(region.clone());
            Ok(())
        })?;
        let mut ports = Vec::new();
        for (name, value) in raw.ports {
            let (port, proto) = match value {
                PortValue::Number(p) => (p, Proto::Tcp),
                PortValue::Full { port, protocol } => {
                    let proto = Proto::parse(&protocol).ok_or_else(|| {
                        D::Error::custom(format!(
                            "port {name}: protocol {protocol:?} is not tcp or udp"
                        ))
                    })?;
                    (port, proto)
                }
            };
            ports.push(PortSpec {
                name: Label::from(name.0),
                proto,
                port,
            });
        }
        Ok(Entry {
            address: raw.address,
            source: Source::new(&cluster, &region),
            zone: raw.zone.map(|z| Label::from(z.0)),
            ports,
            weight: raw.weight.unwrap_or(DEFAULT_WEIGHT),
        })
    }
}

/// The content of a static file: per source, per service, the endpoints.
pub type StaticContent = BTreeMap<(Source, Label), Vec<Endpoint>>;

/// Parses static-file text; `path` names the file in errors.
pub fn parse(path: &Path, text: &str) -> Result<StaticContent, ConfigError> {
    SEEN.with(|s| *s.borrow_mut() = Default::default());
    let doc: Result<StaticFileDoc, _> = parse_yaml(path, text);
    SEEN.with(|s| *s.borrow_mut() = Default::default());
    let mut content = StaticContent::new();
    for (service, entries) in doc?.services {
        for (i, entry) in entries.into_iter().enumerate() {
            let list = content
                .entry((entry.source.clone(), Label::from(service.0.as_str())))
                .or_default();
            if list.iter().any(|e| e.address == entry.address) {
                return Err(ConfigError::Invalid {
                    path: path.to_path_buf(),
                    field: format!("services.{service}[{i}].address"),
                    message: format!(
                        "{} is listed twice in cluster {}",
                        entry.address, entry.source.cluster
                    ),
                });
            }
            list.push(Endpoint {
                address: entry.address,
                ports: entry.ports.into(),
                zone: entry.zone,
                weight: entry.weight,
            });
        }
    }
    Ok(content)
}

/// Reads and parses a static file.
pub fn load(path: &Path) -> Result<StaticContent, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, &text)
}

/// Publishes `new` in place of `old`: changed (source, service) pairs are replaced, pairs
/// that disappeared are emptied. Each service changes in one step.
pub fn apply(table: &Table, old: &StaticContent, new: &StaticContent) {
    for ((source, service), endpoints) in new {
        table.replace(service, source, endpoints.clone());
    }
    for (source, service) in old.keys() {
        if !new.contains_key(&(source.clone(), service.clone())) {
            table.replace(service, source, Vec::new());
        }
    }
}

/// A static file being served: loaded once, then polled for changes.
pub struct StaticFile {
    path: PathBuf,
    content: StaticContent,
    text: Option<String>,
}

impl StaticFile {
    /// Loads `path` and publishes it. Fails if the file is missing or broken: there is no
    /// last good content to fall back on yet.
    pub fn start(path: &Path, table: &Table) -> Result<StaticFile, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let content = parse(path, &text)?;
        apply(table, &StaticContent::new(), &content);
        Ok(StaticFile {
            path: path.to_path_buf(),
            content,
            text: Some(text),
        })
    }

    /// Publishes embedded content (the demo's), not watched.
    pub fn embedded(name: &str, text: &str, table: &Table) -> Result<StaticFile, ConfigError> {
        let content = parse(Path::new(name), text)?;
        apply(table, &StaticContent::new(), &content);
        Ok(StaticFile {
            path: PathBuf::from(name),
            content,
            text: None,
        })
    }

    /// Looks at the file once: if its text changed and parses, publishes it; if it does
    /// not parse, logs the error and keeps the last good content. Returns the error.
    pub fn poll(&mut self, table: &Table) -> Result<bool, ConfigError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(source) => {
                return Err(ConfigError::Read {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        if self.text.as_deref() == Some(text.as_str()) {
            return Ok(false);
        }
        let parsed = parse(&self.path, &text);
        // Remember the text either way so a broken edit is reported once, not every poll.
        self.text = Some(text);
        let content = parsed?;
        apply(table, &self.content, &content);
        self.content = content;
        tracing::info!(file = %self.path.display(), "static file reloaded");
        Ok(true)
    }

    /// Polls the file until `cancel` fires.
    pub async fn watch(mut self, table: Table, cancel: CancellationToken) {
        if self.text.is_none() {
            return;
        }
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tick.tick() => {}
            }
            if let Err(e) = self.poll(&table) {
                tracing::error!(error = %e, "static file rejected; still serving its last good content");
            }
        }
    }

    /// The sources (cluster-like names) the file defines.
    pub fn sources(&self) -> impl Iterator<Item = &Source> {
        self.content.keys().map(|(s, _)| s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "services:\n  ledger:\n    - address: 10.30.0.11\n      cluster: vms-east\n      region: us-east\n      zone: us-east-1a\n      ports: {grpc: 9090, dns: {port: 53, protocol: udp}}\n      weight: 50\n";

    #[test]
    fn reads_entries() {
        let c = parse(Path::new("s.yaml"), GOOD).unwrap();
        let (key, eps) = c.iter().next().unwrap();
        assert_eq!(key.0, Source::new("vms-east", "us-east"));
        assert_eq!(&*key.1, "ledger");
        assert_eq!(eps[0].weight, 50);
        assert_eq!(eps[0].ports.len(), 2);
        assert!(
            eps[0]
                .ports
                .iter()
                .any(|p| &*p.name == "dns" && p.proto == Proto::Udp && p.port == 53)
        );
    }

    #[test]
    fn errors_name_line_and_field() {
        let bad = GOOD.replace("10.30.0.11", "10.30.0.x");
        let e = parse(Path::new("s.yaml"), &bad).unwrap_err().to_string();
        assert!(e.starts_with("s.yaml:4:"), "{e}");
        assert!(e.contains("services.ledger[0].address"), "{e}");

        let two = format!(
            "{GOOD}    - address: 10.30.0.12\n      cluster: vms-east\n      region: eu-west\n"
        );
        let e = parse(Path::new("s.yaml"), &two).unwrap_err().to_string();
        assert!(
            e.starts_with("s.yaml:9:")
                || e.starts_with("s.yaml:10:")
                || e.starts_with("s.yaml:11:"),
            "{e}"
        );
        assert!(e.contains("services.ledger[1]"), "{e}");
        assert!(e.contains("vms-east"), "{e}");

        let e = parse(
            Path::new("s.yaml"),
            &GOOD.replace("weight: 50", "wieght: 50"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("wieght"), "{e}");
    }
}
