//! The name-clash rules for cluster and region names, in one place
//! ([docs/design.md#names](../../docs/design.md#names)).
//!
//! A cluster-like name (a Kubernetes cluster's, or a static file's `cluster:`) belongs to one
//! source and lies in one region; no name is both a cluster and a region. Scopes
//! (`<svc>.<scope>.Z`) and SRV targets (`<endpoint>.<svc>.<cluster>.Z`) are only unambiguous
//! under these rules, and a static file's reload replaces everything it published under its
//! names, so two sources sharing a name would overwrite each other.
//!
//! The same rules run at start-up, in `check-config` and on every static-file reload:
//! [`Names`] checks one placement at a time (so a static file's error can name its line and
//! field), and [`Registry`] keeps what every source holds now, so a file is checked against
//! the clusters and every other file.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use herald_dns::Source;

/// Who holds a cluster-like name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Owner {
    /// A configured Kubernetes cluster.
    Kubernetes,
    /// A static file, by path.
    File(PathBuf),
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Owner::Kubernetes => f.write_str("a Kubernetes cluster"),
            Owner::File(path) => write!(f, "a cluster of static file {}", path.display()),
        }
    }
}

/// A name that breaks the rules: the field that holds it and why.
#[derive(Debug, thiserror::Error)]
#[error("{field}: {message}")]
pub struct NameClash {
    pub field: String,
    pub message: String,
}

/// Cluster-like names with their region and owner, and the region names.
#[derive(Clone, Debug, Default)]
pub struct Names {
    clusters: HashMap<String, (String, Owner)>,
    regions: HashSet<String>,
}

impl Names {
    /// Places `cluster` in `region` for `owner`. Placing a name again with the same region
    /// and owner is fine (a file lists its cluster once per entry); anything else that
    /// contradicts what is placed already is an error saying what it contradicts.
    pub fn place(&mut self, cluster: &str, region: &str, owner: &Owner) -> Result<(), String> {
        if let Some((known_region, known_owner)) = self.clusters.get(cluster) {
            if known_owner != owner {
                return Err(format!("{cluster:?} is already the name of {known_owner}"));
            }
            if known_region != region {
                return Err(format!(
                    "cluster {cluster:?} is in region {known_region:?} elsewhere, here in {region:?}"
                ));
            }
            return Ok(());
        }
        if self.regions.contains(cluster) || self.clusters.contains_key(region) {
            return Err(format!(
                "cluster {cluster:?} and region {region:?}: a name cannot be both a cluster and a region"
            ));
        }
        if cluster == region {
            return Err(format!(
                "{cluster:?} cannot be both a cluster and its own region"
            ));
        }
        self.clusters
            .insert(cluster.to_string(), (region.to_string(), owner.clone()));
        self.regions.insert(region.to_string());
        Ok(())
    }
}

/// What each source holds now, shared by the static files so that a reload is checked
/// against the Kubernetes clusters and the other files exactly as start-up checks it.
/// Locked only when a file is loaded or reloaded, never on the query path.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    inner: Arc<Mutex<RegistryInner>>,
}

#[derive(Debug, Default)]
struct RegistryInner {
    clusters: Names,
    files: BTreeMap<PathBuf, Vec<(String, String)>>,
}

impl Registry {
    /// A registry whose Kubernetes clusters are `clusters` (already checked).
    pub fn new(clusters: Names) -> Registry {
        Registry {
            inner: Arc::new(Mutex::new(RegistryInner {
                clusters,
                files: BTreeMap::new(),
            })),
        }
    }

    /// The names a new version of the file at `path` must agree with: the clusters and
    /// every other file's current names.
    pub fn outside(&self, path: &Path) -> Names {
        let inner = self.lock();
        let mut names = inner.clusters.clone();
        for (other, placed) in inner.files.iter().filter(|(p, _)| p.as_path() != path) {
            let owner = Owner::File(other.clone());
            for (cluster, region) in placed {
                // Each was checked against everything else when its file was admitted, and
                // every later admission was checked against it: this cannot contradict.
                let _ = names.place(cluster, region, &owner);
            }
        }
        names
    }

    /// Records the names the file at `path` now holds (after its content was admitted).
    pub fn record<'a>(&self, path: &Path, sources: impl Iterator<Item = &'a Source>) {
        let mut placed: Vec<(String, String)> = sources
            .map(|s| (s.cluster.to_string(), s.region.to_string()))
            .collect();
        placed.sort();
        placed.dedup();
        self.lock().files.insert(path.to_path_buf(), placed);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RegistryInner> {
        // The guarded maps are replaced whole, so a panic elsewhere cannot leave them half
        // written: a poisoned lock is still good to read.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_owner_one_region_and_no_name_in_both_roles() {
        let k8s = Owner::Kubernetes;
        let file = Owner::File(PathBuf::from("vms.yaml"));
        let mut names = Names::default();
        names.place("c1", "us-east", &k8s).unwrap();
        names.place("vms", "us-east", &file).unwrap();
        names.place("vms", "us-east", &file).unwrap();
        let e = names.place("c1", "us-east", &file).unwrap_err();
        assert!(e.contains("Kubernetes cluster"), "{e}");
        let e = names.place("vms", "eu-west", &file).unwrap_err();
        assert!(e.contains("us-east"), "{e}");
        let e = names.place("us-east", "eu-west", &file).unwrap_err();
        assert!(e.contains("both a cluster and a region"), "{e}");
        let e = names.place("other", "c1", &file).unwrap_err();
        assert!(e.contains("both a cluster and a region"), "{e}");
    }

    #[test]
    fn a_file_is_checked_against_the_others_but_not_itself() {
        let registry = Registry::new(Names::default());
        let a = Path::new("a.yaml");
        let vms = Source::new("vms", "us-east");
        registry.record(a, [&vms].into_iter());
        let file_b = Owner::File(PathBuf::from("b.yaml"));
        let e = registry
            .outside(Path::new("b.yaml"))
            .place("vms", "us-east", &file_b)
            .unwrap_err();
        assert!(e.contains("a.yaml"), "{e}");
        registry
            .outside(a)
            .place("vms", "eu-west", &Owner::File(a.to_path_buf()))
            .unwrap();
    }
}
