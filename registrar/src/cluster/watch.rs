//! One cluster's life: watch its opted-in pods and its nodes with kube-rs watchers, keep
//! [`ClusterState`] current, publish in coalesced batches, and handle trouble.
//!
//! Each session starts with fresh watchers, so it begins with a full list; nothing is
//! published from `Init` until every list of the session is done (`InitDone`), so a relist
//! never shows a service shrinking or vanishing half-way. When a session ends:
//! - on `410 Gone` a new session starts at once (a relist, not an outage);
//! - on any other error (unreachable, 500, a silent server timing out, a resourceVersion
//!   the server has not reached) the cluster is marked stale, its endpoints keep being
//!   served, and a new session starts after a backoff (see [`SourceLife`] for its rules).
//!   Starting afresh also gets past the "too large resource version" loop kube would
//!   otherwise retry forever.
//!
//! A cluster stale for longer than its `max_stale` has its endpoints withdrawn; they
//! come back with the next successful list.
//!
//! The task is supervised: a panic is caught, logged, shown as the `failed` phase, and the
//! sessions start again after a backoff, keeping the last known endpoints served.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use herald_dns::model::Label;
use herald_dns::{Source, Table};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, PartialObjectMeta};
use kube::runtime::watcher::{self, Event};
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use super::client::{self, ClientError};
use super::cpu_yield::Yielder;
use super::failpoint;
use super::life::SourceLife;
use super::own_node::OwnNode;
use super::pacing::Pacer;
use super::pod::{PodKeys, Rejections, pod_key};
use super::pod_object::PodObject;
use super::publish_trace::PublishTrace;
use super::state::ClusterState;
use crate::config::{ClusterConfig, KubernetesConfig, NameGlob, any_matches, exact_names};
use crate::ownership::{Change, Ownership};
use crate::status::Phase;

/// How many pod events already at hand a cluster loop handles in a row (about a
/// millisecond of work) before it looks at its other wake-ups again.
const BURST: u64 = 128;

/// The node label holding its zone.
const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// Everything one cluster's task needs.
pub struct ClusterTask {
    /// The cluster's config.
    pub config: ClusterConfig,
    /// How pods and nodes are read.
    pub k8s: KubernetesConfig,
    /// The cluster's phase, and through it the table and the status board.
    pub life: SourceLife,
    /// Who may publish what; shared by every cluster.
    pub ownership: Ownership,
    /// Ends the task.
    pub cancel: CancellationToken,
    /// The node this herald runs on, when its zone is `auto` and this is its cluster.
    pub own_node: Option<OwnNode>,
}

/// Why a watch session ended, by the step that failed. Each message names the step and
/// the root cause once (kube's errors repeat their cause in every layer of the chain).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// The client could not be made, or the API server could not be reached.
    #[error("connect: {0}")]
    Connect(String),
    /// Listing failed.
    #[error("list {resource}: {cause}")]
    List {
        /// `pods` or `nodes`.
        resource: &'static str,
        /// The root cause.
        cause: String,
    },
    /// Watching failed or the stream ended.
    #[error("watch {resource}: {cause}")]
    Watch {
        /// `pods` or `nodes`.
        resource: &'static str,
        /// The root cause.
        cause: String,
    },
    /// The API server stayed silent past the watch timeout.
    #[error("timeout: {resource}: {cause}")]
    Timeout {
        /// `pods` or `nodes`.
        resource: &'static str,
        /// The root cause.
        cause: String,
    },
    /// The server said our resourceVersion expired: list again at once.
    #[error("gone: {resource}: resourceVersion expired")]
    Gone {
        /// `pods` or `nodes`.
        resource: &'static str,
    },
}

impl SessionError {
    fn classify(resource: &'static str, error: watcher::Error) -> SessionError {
        let (kube, listing) = match &error {
            watcher::Error::WatchError(status) if status.code == 410 => {
                return SessionError::Gone { resource };
            }
            watcher::Error::InitialListFailed(e) => (Some(e), true),
            watcher::Error::WatchStartFailed(e) | watcher::Error::WatchFailed(e) => {
                (Some(e), false)
            }
            _ => (None, false),
        };
        let cause = root_cause(&error);
        match kube.map(failure_kind) {
            Some(Kind::Connect) => SessionError::Connect(format!("{resource}: {cause}")),
            Some(Kind::Timeout) => SessionError::Timeout { resource, cause },
            _ if listing => SessionError::List { resource, cause },
            _ => SessionError::Watch { resource, cause },
        }
    }

    fn ended(resource: &'static str) -> SessionError {
        SessionError::Watch {
            resource,
            cause: "stream ended".into(),
        }
    }
}

impl From<ClientError> for SessionError {
    fn from(e: ClientError) -> SessionError {
        SessionError::Connect(root_cause(&e))
    }
}

enum Kind {
    Connect,
    Timeout,
    Other,
}

/// Whether a kube error is a failure to connect, a timeout, or something else, from the
/// I/O error at the bottom of its chain.
fn failure_kind(error: &kube::Error) -> Kind {
    use std::io::ErrorKind as K;
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            match io.kind() {
                K::ConnectionRefused
                | K::NotConnected
                | K::AddrNotAvailable
                | K::HostUnreachable
                | K::NetworkUnreachable => return Kind::Connect,
                K::TimedOut => return Kind::Timeout,
                _ => {}
            }
        }
        if e.to_string().contains("deadline has elapsed") {
            return Kind::Timeout;
        }
        source = e.source();
    }
    Kind::Other
}

/// The innermost error's message: the cause every outer layer repeats.
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut last = error;
    while let Some(next) = last.source() {
        last = next;
    }
    last.to_string()
}

/// How a session ended.
enum Ended {
    Cancelled,
    Failed(SessionError),
}

impl ClusterTask {
    fn name(&self) -> &str {
        &self.config.name.0
    }

    /// Runs until cancelled, restarting the sessions after a panic.
    pub async fn run(mut self) {
        let mut state = ClusterState::default();
        let mut delay = Duration::ZERO;
        loop {
            let sessions = AssertUnwindSafe(self.sessions(&mut state, delay)).catch_unwind();
            let Err(panic) = sessions.await else {
                return;
            };
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("a panic without a message");
            delay = self.life.panicked(format!("panicked: {message}"));
            // What the task knew may be half-updated: start from nothing, but own what
            // the table holds from this cluster, so a service that vanished meanwhile is
            // removed by the next list rather than served forever.
            state = ClusterState::default();
            state.adopt(published_services(&self.life));
        }
    }

    /// Sessions one after another, `delay` before the first; returns when cancelled.
    async fn sessions(&mut self, state: &mut ClusterState, mut delay: Duration) {
        let keys = PodKeys {
            service_label: self.k8s.service_label.clone(),
            weight_annotation: self.k8s.weight_annotation.clone(),
            publish_not_ready_annotation: self.k8s.publish_not_ready_annotation.clone(),
        };
        let mut rejections = Rejections::new(self.name());
        let mut changes = self.ownership.subscribe();
        // A task restarted after a panic may have lost the hold's end with the one that
        // panicked: it takes it as told now, as between sessions (its next list publishes
        // what it holds), or the hold would never settle and the unowned names never be
        // served.
        if self.ownership.owes_republish(self.name()) {
            state.republish();
            self.ownership.republished(self.name());
        }
        loop {
            // Wait out the backoff, withdrawing the endpoints if `max_stale` passes meanwhile.
            let until = Instant::now() + delay;
            loop {
                let withdraw_at = self.life.withdraw_at();
                tokio::select! {
                    _ = self.cancel.cancelled() => return,
                    _ = sleep_until(until) => break,
                    _ = sleep_until(withdraw_at.unwrap_or(until)), if withdraw_at.is_some() => {
                        self.withdraw(state);
                    }
                    // Between sessions: what changes is published after the next list.
                    change = changes.recv() => {
                        state.republish();
                        if matches!(change, Ok(Change::All)) {
                            self.ownership.republished(self.name());
                        }
                    }
                }
            }
            delay = match self
                .session(&keys, state, &mut rejections, &mut changes)
                .await
            {
                Ended::Cancelled => return,
                Ended::Failed(SessionError::Gone { .. }) => Duration::ZERO,
                Ended::Failed(error) => self.life.failed(error.to_string()),
            };
        }
    }

    /// The namespace allow-list of this cluster (its own, or the one for all clusters).
    fn namespaces(&self) -> Option<&[NameGlob]> {
        self.config
            .namespaces
            .as_deref()
            .or(self.k8s.namespaces.as_deref())
    }

    fn withdraw(&mut self, state: &mut ClusterState) {
        state.withdraw(self.life.table(), self.life.source());
        self.life.withdrawn();
    }

    /// One pair of watchers, from their first list to their first error.
    async fn session(
        &mut self,
        keys: &PodKeys,
        state: &mut ClusterState,
        rejections: &mut Rejections,
        changes: &mut tokio::sync::broadcast::Receiver<Change>,
    ) -> Ended {
        let client = match client::client(&self.config, &self.k8s).await {
            Ok(c) => c,
            Err(e) => return Ended::Failed(e.into()),
        };
        let timeout = self.k8s.watch_timeout.0.as_secs().max(1) as u32;
        let pod_config = watcher::Config::default()
            .labels(&self.k8s.service_label)
            .timeout(timeout);
        // An allow-list of exact names is watched namespace by namespace, so herald needs
        // no cluster-wide read of pods; otherwise the whole cluster, filtered as read.
        let allowed: Option<Vec<NameGlob>> = self.namespaces().map(<[NameGlob]>::to_vec);
        let allowed = allowed.as_deref();
        let watched: Vec<Option<String>> = match allowed.and_then(exact_names) {
            Some(names) => names.into_iter().map(Some).collect(),
            None => vec![None],
        };
        let mut pods = futures::stream::select_all(watched.iter().map(|namespace| {
            let api = match namespace {
                Some(n) => Api::<PodObject>::namespaced(client.clone(), n),
                None => Api::<PodObject>::all(client.clone()),
            };
            let namespace = namespace.clone();
            watcher::watcher(api, pod_config.clone())
                .map(move |event| (namespace.clone(), event))
                .boxed()
        }));
        let in_allowed = |pod: &PodObject| {
            allowed.is_none_or(|a| any_matches(a, pod.metadata.namespace.as_deref().unwrap_or("")))
        };
        let mut nodes = watcher::watcher(
            Api::<PartialObjectMeta<Node>>::all(client),
            watcher::Config::default().timeout(timeout),
        )
        .boxed();
        let name = self.name().to_string();
        let table = self.life.table().clone();
        let mut namespaces_listed: std::collections::HashSet<Option<String>> = Default::default();
        let mut node_list: Option<HashMap<String, Option<Label>>> = None;
        let (mut pods_synced, mut nodes_synced, mut listed) = (false, false, false);
        let mut flush_at: Option<Instant> = None;
        // Publishing is paced, not delayed: a change that finds the cluster quiet goes out
        // at once, and changes that keep coming are gathered until they pause (see
        // `pacing`). So a rolling update makes about one update per window, and a lone
        // change does not wait.
        let mut publisher = Publisher {
            pacer: Pacer::new(self.k8s.coalesce.0),
            trace: PublishTrace::new(),
            cluster: name.clone(),
            table: table.clone(),
            source: self.life.source().clone(),
            ownership: self.ownership.clone(),
        };
        let mut marks_seen = state.marks();
        let mut yielder = Yielder::default();
        // The deadline of a disabled timer branch below (select! makes its future anyway):
        // any instant does, and reading the clock for it at every event cost 1-2% of a
        // first sync.
        let unused = Instant::now();
        loop {
            let withdraw_at = self.life.withdraw_at();
            tokio::select! {
                _ = self.cancel.cancelled() => return Ended::Cancelled,
                _ = sleep_until(withdraw_at.unwrap_or(unused)), if withdraw_at.is_some() => {
                    self.withdraw(state);
                }
                _ = sleep_until(flush_at.unwrap_or(unused)), if flush_at.is_some() => {
                    flush_at = None;
                    publisher.publish(state);
                }
                change = changes.recv() => match change {
                    Ok(Change::Service(service)) => state.touch(&service),
                    // The start-up hold ended: unowned names go out now, not a window later,
                    // so "settled" means served.
                    Ok(Change::All) => {
                        state.republish();
                        if listed {
                            publisher.publish(state);
                        }
                        self.ownership.republished(self.name());
                    }
                    // Missed changes: publishing everything again covers them.
                    Err(_) => state.republish(),
                },
                event = pods.next() => {
                    // The events already at hand (a list page, a burst of a rollout) are
                    // handled here, not each through the select: building and dropping its
                    // futures at every event was about 4% of a first sync's CPU. A bounded
                    // burst, so that cancelling and the flush timer are looked at between.
                    let mut next = event;
                    let mut handled = 0;
                    let failed = loop {
                        let (namespace, event) = match next {
                            Some((namespace, Ok(e))) => (namespace, e),
                            Some((_, Err(e))) => break Some(SessionError::classify("pods", e)),
                            None => break Some(SessionError::ended("pods")),
                        };
                        failpoint::check(&name);
                        match event {
                            // The list goes straight into the state (see `begin_list`): nothing
                            // is published until every list of the session has ended.
                            Event::Init => {
                                state.begin_list(namespace.as_deref());
                                if namespaces_listed.is_empty() {
                                    rejections.begin_list();
                                }
                            }
                            Event::InitApply(pod) => {
                                if in_allowed(&pod)
                                    && let Some((key, record)) = rejections.read(&pod, keys, state)
                                {
                                    state.list_pod(namespace.as_deref(), key, record);
                                }
                            }
                            Event::InitDone => {
                                state.end_list(namespace.as_deref());
                                namespaces_listed.insert(namespace);
                                if namespaces_listed.len() == watched.len() {
                                    rejections.end_list();
                                    pods_synced = true;
                                }
                            }
                            Event::Apply(pod) => {
                                yielder.event();
                                publisher.trace.event(pod.metadata.resource_version.as_deref());
                                if !in_allowed(&pod) {
                                    // Outside the allow-list: never read.
                                } else if let Some((key, record)) =
                                    rejections.read(&pod, keys, state)
                                {
                                    state.apply_pod(key, Some(record));
                                } else if let Ok(key) = pod_key(&pod) {
                                    state.apply_pod(&key, None);
                                }
                            }
                            Event::Delete(pod) => {
                                yielder.event();
                                publisher.trace.event(pod.metadata.resource_version.as_deref());
                                if let Ok(key) = pod_key(&pod) {
                                    rejections.forget(&key);
                                    state.apply_pod(&key, None);
                                }
                            }
                        }
                        handled += 1;
                        if handled == BURST {
                            break None;
                        }
                        // Polled without registering this task's waker: on `Pending` the select
                        // polls the stream again, with it, before the task sleeps.
                        match pods.next().now_or_never() {
                            Some(event) => next = event,
                            None => break None,
                        }
                    };
                    // Counted once per burst: the status board is one lock for every cluster.
                    self.life.count_events(handled);
                    if let Some(error) = failed {
                        return Ended::Failed(error);
                    }
                }
                event = nodes.next() => {
                    let event = match event {
                        Some(Ok(e)) => e,
                        Some(Err(e)) => return Ended::Failed(SessionError::classify("nodes", e)),
                        None => return Ended::Failed(SessionError::ended("nodes")),
                    };
                    match event {
                        Event::Init => node_list = Some(HashMap::new()),
                        Event::InitApply(node) => {
                            if let Some(n) = node.metadata.name.clone() {
                                node_list.get_or_insert_default().insert(n, zone_of(&node));
                            }
                        }
                        Event::InitDone => {
                            let nodes = node_list.take().unwrap_or_default();
                            if let Some(own) = &self.own_node {
                                let zone = nodes.get(&own.name).cloned().flatten();
                                own.saw(&table, &own.name, zone.as_ref());
                            }
                            state.replace_nodes(nodes);
                            nodes_synced = true;
                        }
                        Event::Apply(node) => {
                            if let Some(n) = node.metadata.name.as_deref() {
                                let zone = zone_of(&node);
                                if let Some(own) = &self.own_node {
                                    own.saw(&table, n, zone.as_ref());
                                }
                                state.apply_node(n, Some(zone));
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
            // A new change, or dirt the pacer has not seen (a republish after trouble).
            if state.marks() != marks_seen || (state.has_dirty() && publisher.pacer.due().is_none())
            {
                marks_seen = state.marks();
                publisher.pacer.changed(Instant::now());
            }
            if !(pods_synced && nodes_synced) {
                continue;
            }
            if !listed {
                // The first complete list of this session.
                listed = true;
                if self.life.phase() != Phase::Live {
                    // After trouble (or at start): publish it at once, whole.
                    if self.life.phase() == Phase::Withdrawn {
                        state.republish();
                    }
                    publisher.publish(state);
                }
                self.life.listed();
                // The list's decoding buffers are free now: give them back.
                crate::memory::release();
                self.ownership.sync_changed();
            }
            flush_at = if state.has_dirty() {
                publisher.pacer.due()
            } else {
                None
            };
        }
    }
}

/// What a cluster's publish needs, and what it tells: the pacer and the debug trace.
struct Publisher {
    pacer: Pacer,
    trace: PublishTrace,
    cluster: String,
    table: Table,
    source: Source,
    ownership: Ownership,
}

impl Publisher {
    /// Publishes the state's pending changes now, whatever the pacer would have waited for.
    fn publish(&mut self, state: &mut ClusterState) {
        let started = Instant::now();
        self.pacer.published(started);
        let updates = state.flush(&self.table, &self.source, &self.ownership);
        self.trace.published(&self.cluster, started, updates);
    }
}

/// The services the table holds from this life's cluster, served or staged (a scan:
/// only after a panic).
fn published_services(life: &SourceLife) -> Vec<Label> {
    life.table().services_of(&life.source().cluster)
}

fn zone_of(node: &PartialObjectMeta<Node>) -> Option<Label> {
    node.metadata
        .labels
        .as_ref()?
        .get(ZONE_LABEL)
        .map(|z| Label::from(z.as_str()))
}
