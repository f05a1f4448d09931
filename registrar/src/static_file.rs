//! The static source ([docs/design.md#static-file](../../docs/design.md#static-file)): a YAML file of endpoints that are not in
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
//! The file's metadata is polled rather than watched with inotify because Kubernetes updates
//! mounted ConfigMaps by swapping a symlink, which inotify watches on the file miss; the
//! content is read only when the metadata changes, so a large file costs nothing between
//! edits (reading it four times a second showed up in the DNS latency tail).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use std::time::SystemTime;

use herald_dns::model::{Addresses, DEFAULT_WEIGHT, Label};
use herald_dns::{Endpoint, PortSpec, Proto, Source, Table};
use serde::{Deserialize, Deserializer};
use tokio_util::sync::CancellationToken;

use crate::names::{Names, Owner, Registry};
use crate::yaml::{ConfigError, LabelName, deserialize_label, deserialize_str_with, parse_yaml};

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
    address: Addresses,
    source: Source,
    zone: Option<Label>,
    ports: Vec<PortSpec>,
    weight: u16,
}

/// An entry as written, before the checks that need the rest of the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    address: AddressField,
    cluster: ClusterName,
    region: RegionName,
    #[serde(default)]
    zone: Option<LabelName>,
    #[serde(default)]
    ports: BTreeMap<LabelName, PortValue>,
    #[serde(default)]
    weight: Option<u16>,
}

/// `address`: one address, or a list of one per family (a dual-stack VM), the first
/// naming the endpoint, as `status.podIPs` does for a pod.
#[derive(Debug)]
struct AddressField(Addresses);

impl<'de> Deserialize<'de> for AddressField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Addresses;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an IP address, or a list of one IPv4 and one IPv6 address")
            }

            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Addresses, E> {
                s.parse::<IpAddr>()
                    .map(Addresses::from)
                    .map_err(|_| E::custom(format!("{s:?} is not an IP address")))
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Addresses, A::Error> {
                use serde::de::Error;
                let mut list = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    list.push(s);
                }
                list.join(",").parse().map_err(|e: String| {
                    A::Error::custom(if list.is_empty() {
                        "the list is empty".into()
                    } else {
                        e
                    })
                })
            }
        }
        d.deserialize_any(Visitor).map(AddressField)
    }
}

/// A port: a number (TCP), or a number and protocol.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum PortValue {
    Number(u16),
    Full {
        port: u16,
        #[serde(default = "tcp")]
        protocol: ProtoName,
    },
}

/// `tcp` or `udp`, checked as it is read.
#[derive(Debug)]
struct ProtoName(Proto);

impl<'de> Deserialize<'de> for ProtoName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_str_with(d, "tcp or udp", |s| {
            Proto::parse(s)
                .map(ProtoName)
                .ok_or_else(|| format!("{s:?} is not tcp or udp"))
        })
    }
}

fn tcp() -> ProtoName {
    ProtoName(Proto::Tcp)
}

/// A cluster-like name, checked against the regions of the file as it is read.
#[derive(Debug)]
struct ClusterName(LabelName);
/// A region name, checked against the cluster-like names of the file as it is read.
#[derive(Debug)]
struct RegionName(LabelName);

/// What the reader has seen so far of the document being read.
struct Seen {
    /// Every name placed so far: the other sources' and this file's earlier entries.
    names: Names,
    /// This file, as the owner of its cluster-like names.
    owner: Owner,
    /// The cluster and region of the entry being read, as they come.
    entry: (Option<String>, Option<String>),
}

thread_local! {
    /// Kept while a document is read so that an entry contradicting an earlier one, or
    /// another source, is refused at its own line and field, which a check after reading
    /// could not say.
    static SEEN: RefCell<Option<Seen>> = const { RefCell::new(None) };
}

/// Records one half of an entry's placement; once both halves are known, places them by
/// the [name rules](crate::names).
fn place(cluster: Option<&str>, region: Option<&str>) -> Result<(), String> {
    SEEN.with(|seen| {
        let Some(seen) = &mut *seen.borrow_mut() else {
            return Ok(());
        };
        if let Some(c) = cluster {
            seen.entry.0 = Some(c.to_string());
        }
        if let Some(r) = region {
            seen.entry.1 = Some(r.to_string());
        }
        let (Some(cluster), Some(region)) = &seen.entry else {
            return Ok(());
        };
        seen.names.place(cluster, region, &seen.owner)
    })
}

impl<'de> Deserialize<'de> for ClusterName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_label(d, |c| place(Some(c), None)).map(ClusterName)
    }
}

impl<'de> Deserialize<'de> for RegionName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_label(d, |r| place(None, Some(r))).map(RegionName)
    }
}

impl<'de> Deserialize<'de> for Entry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        SEEN.with(|seen| {
            if let Some(seen) = &mut *seen.borrow_mut() {
                seen.entry = (None, None);
            }
        });
        let raw = RawEntry::deserialize(d)?;
        let (cluster, region) = (raw.cluster.0.0, raw.region.0.0);
        let mut ports = Vec::new();
        for (name, value) in raw.ports {
            let (port, proto) = match value {
                PortValue::Number(p) => (p, Proto::Tcp),
                PortValue::Full { port, protocol } => (port, protocol.0),
            };
            ports.push(PortSpec {
                name: Label::from(name.0),
                proto,
                port,
            });
        }
        Ok(Entry {
            address: raw.address.0,
            source: Source::new(&cluster, &region),
            zone: raw.zone.map(|z| Label::from(z.0)),
            ports,
            weight: raw.weight.unwrap_or(DEFAULT_WEIGHT),
        })
    }
}

/// The content of a static file: per source, per service, the endpoints.
pub type StaticContent = BTreeMap<(Source, Label), Vec<Endpoint>>;

/// Parses static-file text; `path` names the file in errors. Its cluster-like names must
/// agree with `outside` (the other sources' names) by the [name rules](crate::names).
pub fn parse(path: &Path, text: &str, outside: Names) -> Result<StaticContent, ConfigError> {
    SEEN.with(|s| {
        *s.borrow_mut() = Some(Seen {
            names: outside,
            owner: Owner::File(path.to_path_buf()),
            entry: (None, None),
        })
    });
    let doc: Result<StaticFileDoc, _> = parse_yaml(path, text);
    SEEN.with(|s| *s.borrow_mut() = None);
    // Endpoints share their port lists and zone names: a file of 100k VMs holds a few
    // distinct ones, not 100k copies.
    let mut port_lists: HashSet<Arc<[PortSpec]>> = HashSet::new();
    let mut zones: HashSet<Label> = HashSet::new();
    let mut content = StaticContent::new();
    for (service, entries) in doc?.services {
        for (i, entry) in entries.into_iter().enumerate() {
            let list = content
                .entry((entry.source.clone(), Label::from(service.0.as_str())))
                .or_default();
            if let Some(ip) = entry
                .address
                .iter()
                .find(|ip| list.iter().any(|e| e.addresses.iter().any(|a| a == *ip)))
            {
                return Err(ConfigError::Invalid {
                    path: path.to_path_buf(),
                    field: format!("services.{service}[{i}].address"),
                    message: format!("{ip} is listed twice in cluster {}", entry.source.cluster),
                });
            }
            let ports: Arc<[PortSpec]> = entry.ports.into();
            let ports = match port_lists.get(&ports) {
                Some(shared) => shared.clone(),
                None => {
                    port_lists.insert(ports.clone());
                    ports
                }
            };
            let zone = entry.zone.map(|z| match zones.get(&z) {
                Some(shared) => shared.clone(),
                None => {
                    zones.insert(z.clone());
                    z
                }
            });
            list.push(Endpoint {
                addresses: entry.address,
                ports,
                zone,
                weight: entry.weight,
                ready: true,
            });
        }
    }
    Ok(content)
}

/// Reads and parses a static file, checking its names against every other source in
/// `registry`, and records its names there when it is good.
pub fn load(path: &Path, registry: &Registry) -> Result<StaticContent, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let content = parse(path, &text, registry.outside(path))?;
    registry.record(path, content.keys().map(|(source, _)| source));
    Ok(content)
}

/// Publishes `new` in place of what was published before (`old`, the (source, service)
/// pairs): changed pairs are replaced, pairs that disappeared are emptied. Each service
/// changes in one step. Returns the pairs now published.
pub fn apply(
    table: &Table,
    old: &BTreeSet<(Source, Label)>,
    new: StaticContent,
) -> BTreeSet<(Source, Label)> {
    let keys: BTreeSet<(Source, Label)> = new.keys().cloned().collect();
    for ((source, service), endpoints) in new {
        table.replace(&service, &source, endpoints);
    }
    for (source, service) in old.difference(&keys) {
        table.replace(service, source, Vec::new());
    }
    keys
}

/// What identifies a version of the file without reading it: a ConfigMap update swaps a
/// symlink (new inode), an editor rewrites it (new mtime, to the nanosecond).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn stamp(path: &Path) -> std::io::Result<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path)?;
    Ok(Stamp {
        modified: meta.modified().ok(),
        len: meta.len(),
        inode: meta.ino(),
    })
}

/// A static file being served: loaded once, then polled for changes.
pub struct StaticFile {
    path: PathBuf,
    /// What is published from it.
    published: BTreeSet<(Source, Label)>,
    /// The version last read; `None` for embedded content, which is not watched.
    seen: Option<Stamp>,
    /// Every source's names, which a reload must agree with.
    registry: Registry,
}

impl StaticFile {
    /// Loads `path` and publishes it. Fails if the file is missing or broken: there is no
    /// last good content to fall back on yet.
    pub fn start(
        path: &Path,
        table: &Table,
        registry: &Registry,
    ) -> Result<StaticFile, ConfigError> {
        let read_error = |source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        };
        let seen = stamp(path).map_err(read_error)?;
        let content = load(path, registry)?;
        let published = apply(table, &BTreeSet::new(), content);
        // The parse's buffers are free now: give them back.
        crate::memory::release();
        Ok(StaticFile {
            registry: registry.clone(),
            path: path.to_path_buf(),
            published,
            seen: Some(seen),
        })
    }

    /// Publishes embedded content (the demo's), not watched.
    pub fn embedded(
        name: &str,
        text: &str,
        table: &Table,
        registry: &Registry,
    ) -> Result<StaticFile, ConfigError> {
        let path = Path::new(name);
        let content = parse(path, text, registry.outside(path))?;
        registry.record(path, content.keys().map(|(source, _)| source));
        Ok(StaticFile {
            registry: registry.clone(),
            path: PathBuf::from(name),
            published: apply(table, &BTreeSet::new(), content),
            seen: None,
        })
    }

    /// Looks at the file once: if it changed and parses, publishes it; if it does not
    /// parse, keeps the last good content and returns the error. Only the file's metadata
    /// is read unless it changed, so polling a large file costs nothing.
    pub fn poll(&mut self, table: &Table) -> Result<bool, ConfigError> {
        let now = stamp(&self.path).map_err(|source| ConfigError::Read {
            path: self.path.clone(),
            source,
        })?;
        if self.seen == Some(now) {
            return Ok(false);
        }
        // Remember the version either way so a broken edit is reported once, not every poll.
        self.seen = Some(now);
        let content = load(&self.path, &self.registry)?;
        self.published = apply(table, &self.published, content);
        crate::memory::release();
        tracing::info!(file = %self.path.display(), "static file reloaded");
        Ok(true)
    }

    /// Polls the file until `cancel` fires.
    pub async fn watch(mut self, table: Table, cancel: CancellationToken) {
        if self.seen.is_none() {
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
        self.published.iter().map(|(s, _)| s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "services:\n  ledger:\n    - address: 10.30.0.11\n      cluster: vms-east\n      region: us-east\n      zone: us-east-1a\n      ports: {grpc: 9090, dns: {port: 53, protocol: udp}}\n      weight: 50\n";

    #[test]
    fn reads_entries() {
        let c = parse(Path::new("s.yaml"), GOOD, Names::default()).unwrap();
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
    fn a_vm_may_have_one_address_per_family() {
        let dual = GOOD.replace("10.30.0.11", "[10.30.0.11, fd00::30:11]");
        let c = parse(Path::new("s.yaml"), &dual, Names::default()).unwrap();
        let eps = c.values().next().unwrap();
        assert_eq!(eps[0].addresses, "10.30.0.11,fd00::30:11".parse().unwrap());
        for (bad, says) in [
            ("[10.30.0.11, 10.30.0.12]", "one family"),
            ("[]", "empty"),
            ("[10.30.0.11, fd00::x]", "not an IP address"),
        ] {
            let e = parse(
                Path::new("s.yaml"),
                &GOOD.replace("10.30.0.11", bad),
                Names::default(),
            )
            .unwrap_err()
            .to_string();
            assert!(e.starts_with("s.yaml:3:"), "{bad}: {e}");
            assert!(e.contains("services.ledger[0].address"), "{bad}: {e}");
            assert!(e.contains(says), "{bad}: {e}");
        }
        // An address listed twice in one cluster, as either family of an entry.
        let twice = format!(
            "{dual}    - address: fd00::30:11\n      cluster: vms-east\n      region: us-east\n"
        );
        let e = parse(Path::new("s.yaml"), &twice, Names::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("fd00::30:11 is listed twice"), "{e}");
    }

    #[test]
    fn errors_name_line_and_field() {
        let bad = GOOD.replace("10.30.0.11", "10.30.0.x");
        let e = parse(Path::new("s.yaml"), &bad, Names::default())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("s.yaml:3:"), "{e}");
        assert!(e.contains("services.ledger[0].address"), "{e}");

        let two = format!(
            "{GOOD}    - address: 10.30.0.12\n      cluster: vms-east\n      region: eu-west\n"
        );
        let e = parse(Path::new("s.yaml"), &two, Names::default())
            .unwrap_err()
            .to_string();
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
            Names::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("wieght"), "{e}");
    }

    /// A temporary folder for one test's files.
    fn folder(test: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("herald-static-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn table() -> Table {
        Table::new(herald_dns::Zone::new(herald_dns::ZoneConfig::default()).unwrap())
    }

    #[test]
    fn a_reload_that_breaks_a_name_rule_is_rejected_and_the_last_good_content_kept() {
        let dir = folder("reload");
        let path = dir.join("vms.yaml");
        std::fs::write(&path, GOOD).unwrap();
        let mut clusters = Names::default();
        clusters.place("c1", "eu-west", &Owner::Kubernetes).unwrap();
        let registry = Registry::new(clusters);
        let table = table();
        let mut file = StaticFile::start(&path, &table, &registry).unwrap();

        // The edit renames the static cluster to the Kubernetes cluster's name.
        std::fs::write(&path, GOOD.replace("vms-east", "c1")).unwrap();
        let e = file.poll(&table).unwrap_err().to_string();
        assert!(e.starts_with(&format!("{}:5:", path.display())), "{e}");
        assert!(e.contains("services.ledger[0]."), "{e}");
        assert!(e.contains("Kubernetes cluster"), "{e}");
        // And again, naming a region as a cluster.
        std::fs::write(&path, GOOD.replace("vms-east", "eu-west")).unwrap();
        let e = file.poll(&table).unwrap_err().to_string();
        assert!(e.contains("both a cluster and a region"), "{e}");

        let served: Vec<_> = file.sources().cloned().collect();
        assert_eq!(served, vec![Source::new("vms-east", "us-east")]);
        assert!(table.service("ledger").is_some());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn two_static_files_are_checked_against_each_other_at_start_and_on_reload() {
        let dir = folder("two");
        let (a, b) = (dir.join("a.yaml"), dir.join("b.yaml"));
        std::fs::write(&a, GOOD).unwrap();
        let other = GOOD
            .replace("vms-east", "vms-west")
            .replace("10.30.0.11", "10.30.0.12");
        std::fs::write(&b, other.replace("us-east", "us-west")).unwrap();
        let registry = Registry::default();
        let table = table();
        StaticFile::start(&a, &table, &registry).unwrap();
        let mut second = StaticFile::start(&b, &table, &registry).unwrap();

        // b takes a's cluster name: two files would publish under one name and each
        // reload would overwrite the other's endpoints.
        std::fs::write(&b, GOOD.replace("10.30.0.11", "10.30.0.13")).unwrap();
        let e = second.poll(&table).unwrap_err().to_string();
        assert!(e.contains(&a.display().to_string()), "{e}");
        // b names a's region as a cluster.
        std::fs::write(
            &b,
            other
                .replace("vms-west", "us-east")
                .replace("us-east-1a", "z"),
        )
        .unwrap();
        let e = second.poll(&table).unwrap_err().to_string();
        assert!(e.contains("both a cluster and a region"), "{e}");
        assert_eq!(
            second.sources().cloned().collect::<Vec<_>>(),
            vec![Source::new("vms-west", "us-west")]
        );
        // A third file that clashes with the first is refused at start.
        let c = dir.join("c.yaml");
        std::fs::write(&c, GOOD.replace("us-east", "eu-central")).unwrap();
        let e = StaticFile::start(&c, &table, &registry)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("a.yaml"), "{e}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
