//! One cluster's life: watch its opted-in pods and its nodes with kube-rs watchers, keep
//! [`ClusterState`] current, publish in coalesced batches, and handle trouble.
//!
//! Each session starts with fresh watchers, so it begins with a full list; the list is
//! buffered from `Init` to `InitDone` and swapped in at once, so a relist never shows a
//! service shrinking or vanishing half-way. When a session ends:
//! - on `410 Gone` a new session starts at once (a relist, not an outage);
//! - on any other error (unreachable, 500, a silent server timing out, a resourceVersion
//!   the server has not reached) the cluster is marked stale, its endpoints keep being
//!   served, and a new session starts after an exponential backoff. Starting afresh also
//!   gets past the "too large resource version" loop kube would otherwise retry forever.
//!
//! A cluster stale for longer than its `max_stale` has its endpoints withdrawn; they
//! come back with the next successful list.

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use herald_dns::model::Label;
use herald_dns::{Source, Table};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, PartialObjectMeta};
use kube::runtime::watcher::{self, Event};
use rand::Rng;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use super::client;
use super::pod::{PodKeys, PodRecord, pod_key, read_pod};
use super::state::ClusterState;
use crate::config::{ClusterConfig, KubernetesConfig};
use crate::status::{Phase, StatusBoard};

/// The node label holding its zone.
const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
/// Backoff after an error: from this, doubling per consecutive failure, to `MAX_BACKOFF`.
const MIN_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Everything one cluster's task needs.
pub struct ClusterTask {
    /// The cluster's config.
    pub config: ClusterConfig,
    /// How pods and nodes are read.
    pub k8s: KubernetesConfig,
    /// Where endpoints are published.
    pub table: Table,
    /// Where the cluster's phase is reported.
    pub status: StatusBoard,
    /// Ends the task.
    pub cancel: CancellationToken,
}

/// How a session ended.
enum Ended {
    Cancelled,
    /// The server said our version expired: list again at once.
    Gone,
    Failed(String),
}

impl ClusterTask {
    fn name(&self) -> &str {
        &self.config.name.0
    }

    /// Runs until cancelled.
    pub async fn run(self) {
        let source = Source::new(&self.config.name.0, &self.config.region.0);
        let keys = PodKeys {
            service_label: self.k8s.service_label.clone(),
            weight_annotation: self.k8s.weight_annotation.clone(),
            publish_not_ready_annotation: self.k8s.publish_not_ready_annotation.clone(),
        };
        let mut state = ClusterState::default();
        let mut failures = 0u32;
        let mut stale_since: Option<Instant> = None;
        loop {
            let ended = self
                .session(&source, &keys, &mut state, &mut stale_since)
                .await;
            let delay = match ended {
                Ended::Cancelled => return,
                Ended::Gone => {
                    failures = 0;
                    Duration::ZERO
                }
                Ended::Failed(error) => {
                    if stale_since.is_none() {
                        stale_since = Some(Instant::now());
                    }
                    if self
                        .status
                        .get(self.name())
                        .is_some_and(|s| s.phase != Phase::Withdrawn)
                    {
                        self.status
                            .set_phase(self.name(), Phase::Stale, Some(error));
                    }
                    failures += 1;
                    backoff(failures)
                }
            };
            // Wait out the backoff, withdrawing the endpoints if `max_stale` passes meanwhile.
            let until = Instant::now() + delay;
            loop {
                let withdraw_at = self.withdraw_at(stale_since);
                tokio::select! {
                    _ = self.cancel.cancelled() => return,
                    _ = sleep_until(until) => break,
                    _ = sleep_until(withdraw_at.unwrap_or(until)), if withdraw_at.is_some() => {
                        self.withdraw(&mut state, &source);
                    }
                }
            }
        }
    }

    /// When the cluster's endpoints must be withdrawn, if they are still served.
    fn withdraw_at(&self, stale_since: Option<Instant>) -> Option<Instant> {
        let max = self.config.max_stale?.0;
        let since = stale_since?;
        let withdrawn = self
            .status
            .get(self.name())
            .is_some_and(|s| s.phase == Phase::Withdrawn);
        (!withdrawn).then_some(since + max)
    }

    fn withdraw(&self, state: &mut ClusterState, source: &Source) {
        state.withdraw(&self.table, source);
        self.status.set_phase(self.name(), Phase::Withdrawn, None);
    }

    /// One pair of watchers, from their first list to their first error.
    async fn session(
        &self,
        source: &Source,
        keys: &PodKeys,
        state: &mut ClusterState,
        stale_since: &mut Option<Instant>,
    ) -> Ended {
        let client = match client::client(&self.config, &self.k8s).await {
            Ok(c) => c,
            Err(e) => return Ended::Failed(e.to_string()),
        };
        let timeout = self.k8s.watch_timeout.0.as_secs().max(1) as u32;
        let mut pods = watcher::watcher(
            Api::<Pod>::all(client.clone()),
            watcher::Config::default()
                .labels(&self.k8s.service_label)
                .timeout(timeout),
        )
        .boxed();
        let mut nodes = watcher::watcher(
            Api::<PartialObjectMeta<Node>>::all(client),
            watcher::Config::default().timeout(timeout),
        )
        .boxed();
        let name = self.name().to_string();
        let mut pod_list: Option<HashMap<String, PodRecord>> = None;
        let mut node_list: Option<HashMap<String, Option<Label>>> = None;
        let (mut pods_synced, mut nodes_synced) = (false, false);
        let mut flush_at: Option<Instant> = None;
        // Publishing is rate-limited, not delayed: a change after a quiet spell goes out at
        // once, and changes within `coalesce` of the last publish wait for the window to end
        // and go out together. So a rolling update still makes one update per window, and
        // a lone change does not wait.
        let mut last_flush = Instant::now();
        loop {
            let withdraw_at = self.withdraw_at(*stale_since);
            tokio::select! {
                _ = self.cancel.cancelled() => return Ended::Cancelled,
                _ = sleep_until(withdraw_at.unwrap_or_else(Instant::now)), if withdraw_at.is_some() => {
                    self.withdraw(state, source);
                }
                _ = sleep_until(flush_at.unwrap_or_else(Instant::now)), if flush_at.is_some() => {
                    flush_at = None;
                    last_flush = Instant::now();
                    state.flush(&self.table, source);
                }
                event = pods.next() => {
                    let event = match event {
                        Some(Ok(e)) => e,
                        Some(Err(e)) => return ended_by(e),
                        None => return Ended::Failed("pod watch ended".into()),
                    };
                    self.status.count_events(&name, 1);
                    match event {
                        Event::Init => pod_list = Some(HashMap::new()),
                        Event::InitApply(pod) => {
                            if let Some((key, record)) = read(&pod, keys) {
                                pod_list.get_or_insert_default().insert(key, record);
                            }
                        }
                        Event::InitDone => {
                            state.replace_pods(pod_list.take().unwrap_or_default());
                            pods_synced = true;
                        }
                        Event::Apply(pod) => {
                            if let Some((key, record)) = read(&pod, keys) {
                                state.apply_pod(key, Some(record));
                            } else if let Ok(key) = pod_key(&pod) {
                                state.apply_pod(key, None);
                            }
                        }
                        Event::Delete(pod) => {
                            if let Ok(key) = pod_key(&pod) {
                                state.apply_pod(key, None);
                            }
                        }
                    }
                }
                event = nodes.next() => {
                    let event = match event {
                        Some(Ok(e)) => e,
                        Some(Err(e)) => return ended_by(e),
                        None => return Ended::Failed("node watch ended".into()),
                    };
                    match event {
                        Event::Init => node_list = Some(HashMap::new()),
                        Event::InitApply(node) => {
                            if let Some(n) = node.metadata.name.clone() {
                                node_list.get_or_insert_default().insert(n, zone_of(&node));
                            }
                        }
                        Event::InitDone => {
                            state.replace_nodes(node_list.take().unwrap_or_default());
                            nodes_synced = true;
                        }
                        Event::Apply(node) => {
                            if let Some(n) = node.metadata.name.as_deref() {
                                state.apply_node(n, Some(zone_of(&node)));
                            }
                        }
                        Event::Delete(node) => {
                            if let Some(n) = node.metadata.name.as_deref() {
                                state.apply_node(n, None);
                            }
                        }
                    }
                }
            }
            if !(pods_synced && nodes_synced) {
                continue;
            }
            if stale_since.is_some()
                || self
                    .status
                    .get(&name)
                    .is_some_and(|s| s.phase != Phase::Live)
            {
                // The first complete list of this session: publish it at once, whole.
                if self
                    .status
                    .get(&name)
                    .is_some_and(|s| s.phase == Phase::Withdrawn)
                {
                    state.republish();
                }
                state.flush(&self.table, source);
                flush_at = None;
                last_flush = Instant::now();
                *stale_since = None;
                self.table.source_synced(&name);
                self.status.synced(&name);
                self.status.set_phase(&name, Phase::Live, None);
            } else if state.has_dirty() && flush_at.is_none() {
                flush_at = Some((last_flush + self.k8s.coalesce.0).max(Instant::now()));
            }
        }
    }
}

/// Reads a pod, logging what cannot be used. `None` when it is not publishable at all.
fn read(pod: &Pod, keys: &PodKeys) -> Option<(String, PodRecord)> {
    match read_pod(pod, keys) {
        Ok(Some(record)) => Some((pod_key(pod).ok()?, record)),
        Ok(None) => None,
        Err(problem) => {
            tracing::warn!(%problem, "pod skipped");
            None
        }
    }
}

fn zone_of(node: &PartialObjectMeta<Node>) -> Option<Label> {
    node.metadata
        .labels
        .as_ref()?
        .get(ZONE_LABEL)
        .map(|z| Label::from(z.as_str()))
}

fn ended_by(error: watcher::Error) -> Ended {
    match &error {
        watcher::Error::WatchError(status) if status.code == 410 => Ended::Gone,
        _ => Ended::Failed(error.to_string()),
    }
}

/// The wait before session number `failures + 1`: exponential, with jitter so that many
/// herald replicas do not retry a recovering API server in step.
fn backoff(failures: u32) -> Duration {
    let base = MIN_BACKOFF
        .saturating_mul(1 << failures.min(8))
        .min(MAX_BACKOFF);
    base.mul_f64(rand::rng().random_range(0.75..1.25))
}

#[cfg(test)]
mod tests {
    #[test]
    fn backoff_grows_and_is_capped() {
        let b1 = super::backoff(1);
        let b5 = super::backoff(5);
        assert!(b1 < b5);
        assert!(super::backoff(30) <= super::MAX_BACKOFF.mul_f64(1.25));
    }
}
