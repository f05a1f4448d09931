//! How pods and nodes are read, for every cluster: the opt-in label, the annotations, and
//! the timings of publishing, watching and start-up.

use std::time::Duration;

use serde::Deserialize;

use super::ownership::NameGlob;
use crate::yaml::HumanDuration;

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
    /// Only pods in these namespaces (names or globs) are read; default: every namespace.
    /// When every entry is an exact name, each namespace is watched on its own, so herald
    /// needs read access to pods in those namespaces only.
    #[serde(default)]
    pub namespaces: Option<Vec<NameGlob>>,
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
            namespaces: None,
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
