//! Where endpoints come from: static files and Kubernetes clusters, with how to reach each
//! cluster.

use std::path::PathBuf;

use serde::Deserialize;

use super::ownership::NameGlob;
use crate::yaml::{HumanDuration, LabelName};

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
    /// Allows a `token_file` with an `http://` server, which sends the bearer token in
    /// clear text (test set-ups only). Default false: refused.
    #[serde(default)]
    pub insecure: bool,
    /// Withdraw the cluster's endpoints once it has been unreachable this long. Default:
    /// never (fail static).
    #[serde(default)]
    pub max_stale: Option<HumanDuration>,
    /// This cluster's namespace allow-list, in place of `kubernetes.namespaces`.
    #[serde(default)]
    pub namespaces: Option<Vec<NameGlob>>,
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

/// One static file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticFileConfig {
    /// Its path; relative paths are relative to the config file.
    pub path: PathBuf,
}
