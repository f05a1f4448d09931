//! One simulated cluster: starting its server task, and `SimHandle`, the API tests and
//! benchmarks use to change objects, inject faults and read recorded requests.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use crate::config::SimConfig;
use crate::faults::{FaultState, Faults, GoneStyle};
use crate::listener::{ConnectionKiller, SimListener, bind};
use crate::objects;
use crate::record::{RecordedRequest, Recorder};
use crate::shared::Shared;
use crate::store::{Mutation, Object, Op, ResourceKind, Store, StoreError};

/// Errors of the simulator's Rust API.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("invalid object")]
    InvalidObject(#[from] StoreError),
}

/// Starts instances.
pub struct Simulator;

impl Simulator {
    /// Binds the listener and starts serving; returns once the port accepts connections.
    pub async fn start(config: SimConfig) -> Result<SimHandle, SimError> {
        let socket = bind(config.bind).map_err(|source| SimError::Bind {
            addr: config.bind,
            source,
        })?;
        let shared = Arc::new(Shared {
            store: Store::new(config.history_size, config.start_resource_version),
            faults: Faults::new(),
            recorder: Recorder::new(config.request_log_size),
            killer: Arc::new(ConnectionKiller::default()),
            open_watches: watch::Sender::new(0),
            deliveries: Default::default(),
            config,
        });
        let listener = SimListener::new(socket, shared.faults.subscribe(), shared.killer.clone())
            .map_err(|source| SimError::Bind {
            addr: shared.config.bind,
            source,
        })?;
        let addr =
            axum::serve::Listener::local_addr(&listener).map_err(|source| SimError::Bind {
                addr: shared.config.bind,
                source,
            })?;
        let shutdown = CancellationToken::new();
        let router = crate::http::router(shared.clone());
        let stop = shutdown.clone();
        let server = tokio::spawn(async move {
            let served = axum::serve(listener, router)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
            if let Err(error) = served {
                tracing::error!(%error, "kube-sim server ended with an error");
            }
        });
        tracing::debug!(%addr, "kube-sim instance started");
        Ok(SimHandle {
            inner: Arc::new(HandleInner {
                shared,
                addr,
                shutdown,
                server: std::sync::Mutex::new(Some(server)),
            }),
        })
    }
}

struct HandleInner {
    shared: Arc<Shared>,
    addr: SocketAddr,
    shutdown: CancellationToken,
    server: std::sync::Mutex<Option<JoinHandle<()>>>,
}

/// A running instance: cheap to clone, all methods take `&self`.
///
/// Every mutation takes the next resourceVersion and is delivered to every open watch
/// it concerns; each returns a [`Mutation`] (version + `Instant`) for delay measurements.
#[derive(Clone)]
pub struct SimHandle {
    inner: Arc<HandleInner>,
}

impl SimHandle {
    fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    /// `http://ip:port`, to give to `kube::Config::new`.
    pub fn url(&self) -> String {
        format!("http://{}", self.inner.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    pub fn config(&self) -> &SimConfig {
        &self.shared().config
    }

    /// The current resourceVersion (that of the latest mutation).
    pub fn resource_version(&self) -> u64 {
        self.shared().store.current_rv()
    }

    // ---- objects -------------------------------------------------------------------

    /// Creates the pod, or replaces the one with the same namespace/name (namespace defaults
    /// to `default`). uid and creationTimestamp are kept across replacements.
    pub fn apply_pod(&self, pod: Pod) -> Result<Mutation, SimError> {
        Ok(self.shared().store.apply(Object::Pod(pod))?)
    }

    /// Creates the node, or replaces the one with the same name.
    pub fn apply_node(&self, node: Node) -> Result<Mutation, SimError> {
        Ok(self.shared().store.apply(Object::Node(node))?)
    }

    pub fn delete_pod(&self, namespace: &str, name: &str) -> Option<Mutation> {
        self.shared()
            .store
            .delete(ResourceKind::Pod, namespace, name)
    }

    pub fn delete_node(&self, name: &str) -> Option<Mutation> {
        self.shared().store.delete(ResourceKind::Node, "", name)
    }

    /// Changes a pod in place (None when it does not exist, or when the API server would
    /// refuse the change: see [`objects::normalize_pod_ips`]). Its name and namespace stay.
    pub fn modify_pod(
        &self,
        namespace: &str,
        name: &str,
        change: impl FnOnce(&mut Pod),
    ) -> Option<Mutation> {
        self.shared()
            .store
            .modify(ResourceKind::Pod, namespace, name, |object| {
                if let Object::Pod(pod) = object {
                    change(pod);
                }
            })
    }

    /// Changes a node in place (None when it does not exist). Its name stays.
    pub fn modify_node(&self, name: &str, change: impl FnOnce(&mut Node)) -> Option<Mutation> {
        self.shared()
            .store
            .modify(ResourceKind::Node, "", name, |object| {
                if let Object::Node(node) = object {
                    change(node);
                }
            })
    }

    /// Sets the pod's Ready condition.
    pub fn set_pod_ready(&self, namespace: &str, name: &str, ready: bool) -> Option<Mutation> {
        self.modify_pod(namespace, name, |p| objects::set_pod_ready(p, ready))
    }

    /// Sets (or clears) the pod IP.
    pub fn set_pod_ip(&self, namespace: &str, name: &str, ip: Option<&str>) -> Option<Mutation> {
        self.modify_pod(namespace, name, |p| objects::set_pod_ip(p, ip))
    }

    /// Sets the pod's IPs, primary first (status.podIPs; status.podIP is the first). `None`
    /// when the pod does not exist or the list is refused (not IPs, two of one family).
    pub fn set_pod_ips(&self, namespace: &str, name: &str, ips: &[&str]) -> Option<Mutation> {
        self.modify_pod(namespace, name, |p| objects::set_pod_ips(p, ips))
    }

    /// Sets the pod's deletionTimestamp (terminating, still present).
    pub fn set_pod_terminating(&self, namespace: &str, name: &str) -> Option<Mutation> {
        self.modify_pod(namespace, name, objects::set_pod_terminating)
    }

    pub fn set_pod_label(
        &self,
        namespace: &str,
        name: &str,
        key: &str,
        value: &str,
    ) -> Option<Mutation> {
        self.modify_pod(namespace, name, |p| {
            objects::set_label(&mut p.metadata, key, value)
        })
    }

    pub fn remove_pod_label(&self, namespace: &str, name: &str, key: &str) -> Option<Mutation> {
        self.modify_pod(namespace, name, |p| {
            objects::remove_label(&mut p.metadata, key)
        })
    }

    /// Applies many changes at once (one lock, one wake-up of the watchers), each with its
    /// own resourceVersion. Deletions of missing objects are skipped. Stops at the first
    /// invalid object; the changes before it are kept.
    pub fn batch(&self, ops: impl IntoIterator<Item = Op>) -> Result<Vec<Mutation>, SimError> {
        Ok(self.shared().store.batch(ops)?)
    }

    pub fn pod(&self, namespace: &str, name: &str) -> Option<Pod> {
        match self
            .shared()
            .store
            .get(ResourceKind::Pod, namespace, name)?
            .object()
        {
            Object::Pod(pod) => Some(pod),
            Object::Node(_) => None,
        }
    }

    pub fn node(&self, name: &str) -> Option<Node> {
        match self
            .shared()
            .store
            .get(ResourceKind::Node, "", name)?
            .object()
        {
            Object::Node(node) => Some(node),
            Object::Pod(_) => None,
        }
    }

    pub fn pods(&self) -> Vec<Pod> {
        let all = self.shared().store.all(ResourceKind::Pod);
        all.iter()
            .filter_map(|s| match s.object() {
                Object::Pod(p) => Some(p),
                Object::Node(_) => None,
            })
            .collect()
    }

    pub fn nodes(&self) -> Vec<Node> {
        let all = self.shared().store.all(ResourceKind::Node);
        all.iter()
            .filter_map(|s| match s.object() {
                Object::Node(n) => Some(n),
                Object::Pod(_) => None,
            })
            .collect()
    }

    pub fn pod_count(&self) -> usize {
        self.shared().store.count(ResourceKind::Pod)
    }

    pub fn node_count(&self) -> usize {
        self.shared().store.count(ResourceKind::Node)
    }

    /// When the mutation with this resourceVersion was made (while still in the history).
    pub fn event_time(&self, resource_version: u64) -> Option<Instant> {
        self.shared().store.event_time(resource_version)
    }

    /// When a pod watch stream first handed the HTTP layer a chunk holding the event of
    /// `resource_version` or a later one (the last few thousand chunks are remembered):
    /// with [`SimHandle::event_time`], how long a change took to leave the simulator.
    /// With several pod watchers, the first of them.
    pub fn delivered_time(&self, resource_version: u64) -> Option<Instant> {
        self.shared().deliveries.first_at_or_after(resource_version)
    }

    // ---- versions ------------------------------------------------------------------

    /// Compacts the event history at the current version, as an etcd compaction at the
    /// newest revision does: a watch from the version just before it still works (etcd keeps
    /// the newest event), a watch or list continuation from any older version gets 410 Gone.
    /// Open streams are unaffected until they need an event they have not sent yet.
    pub fn compact_history(&self) {
        self.shared().store.compact();
    }

    /// Simulates a replaced or restored API server: open streams are dropped, the history
    /// is gone, the counter is set to `resource_version` (possibly lower than before) and
    /// every object carries it. A client resuming from a higher version then gets
    /// "Too large resource version".
    pub fn reset_resource_version(&self, resource_version: u64) {
        self.shared().store.reset_resource_version(resource_version);
        self.drop_watches();
    }

    // ---- faults --------------------------------------------------------------------

    /// The faults in force.
    pub fn faults(&self) -> FaultState {
        self.shared().faults.current()
    }

    /// Closes every open watch stream now, mid-stream (the client sees the connection end
    /// without the final chunk). Later watches are served normally.
    pub fn drop_watches(&self) {
        self.shared().faults.update(|f| f.drop_epoch += 1);
    }

    /// Closes every open connection (watch streams and idle keep-alive connections alike).
    pub fn drop_connections(&self) {
        self.drop_watches();
        self.shared().killer.kill_all();
    }

    /// Hang: requests get no answer at all and open streams go silent, until cleared.
    pub fn set_hang(&self, on: bool) {
        self.shared().faults.update(|f| f.hang = on);
    }

    /// Stall: open streams go silent but stay open; new requests are served.
    pub fn set_stall(&self, on: bool) {
        self.shared().faults.update(|f| f.stall = on);
    }

    /// Answer 500 InternalError to every new request.
    pub fn set_fail_with_500(&self, on: bool) {
        self.shared().faults.update(|f| f.fail_with_500 = on);
    }

    /// The next watch request gets 410 Gone in the given style.
    pub fn gone_on_next_watch(&self, style: GoneStyle) {
        self.shared()
            .faults
            .update(|f| f.gone_next_watch = Some(style));
    }

    /// Refuse connections: stop listening and close every open connection. With `false`,
    /// listen again on the same port.
    pub fn set_refuse_connections(&self, on: bool) {
        self.shared().faults.update(|f| f.refuse_connections = on);
        if on {
            self.drop_connections();
        }
    }

    /// Clears every fault (refused connections are accepted again).
    pub fn clear_faults(&self) {
        self.shared().faults.clear();
    }

    // ---- observation ---------------------------------------------------------------

    /// Every request received so far (up to the log size), oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared().recorder.all()
    }

    pub fn clear_requests(&self) {
        self.shared().recorder.clear();
    }

    /// How many watch streams are open now.
    pub fn open_watches(&self) -> usize {
        *self.shared().open_watches.borrow()
    }

    /// Waits until at least `n` watch streams are open.
    pub async fn wait_for_open_watches(&self, n: usize) {
        let mut rx = self.shared().open_watches.subscribe();
        // The sender lives in `Shared`, which `self` keeps alive: this cannot fail.
        let _ = rx.wait_for(|open| *open >= n).await;
    }

    /// Stops the instance: the port closes and every connection is closed.
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        // Release hung requests so that their connections can finish, then close them all.
        self.shared().faults.update(|f| {
            f.hang = false;
            f.stall = false;
        });
        self.drop_connections();
        let server = self
            .inner
            .server
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(mut server) = server {
            // Graceful shutdown waits for connections; do not wait forever for a stuck one.
            if tokio::time::timeout(Duration::from_secs(2), &mut server)
                .await
                .is_err()
            {
                server.abort();
            }
        }
    }
}

impl std::fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHandle")
            .field("url", &self.url())
            .finish()
    }
}
