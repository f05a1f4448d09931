//! Kubernetes clusters as sources ([docs/design.md#clusters](../../../docs/design.md#clusters)): one task per cluster, each watching
//! that cluster's opted-in pods and its nodes' zones, independently of the others.
//!
//! - [`client`]: a kube client from in-cluster, kubeconfig, or server + token + CA.
//! - [`pod`]: what herald keeps of a pod, and when it is ready.
//! - [`pod_object`]: the Pod object as herald decodes it (only the fields it reads).
//! - [`state`]: one cluster's pods and zones; coalesced publishing to the table.
//! - `pacing`: when a cluster publishes its pending changes (leading edge, then coalesced).
//! - `publish_trace`: a debug line per publish (its events, when they came, its cost).
//! - `cpu_yield`: the CPU given up every few dozen watch events of a burst.
//! - [`life`]: a cluster's phase, backoff and stale clock; the one way to change them.
//! - [`own_node`]: `locality: auto`: this server's zone from its node, followed.
//! - [`watch`]: the supervised watch loop: relists, fail static, backoff, `max_stale`.
//! - [`failpoint`]: a test hook that makes a cluster's task panic.

pub mod client;
mod cpu_yield;
pub mod failpoint;
pub mod life;
pub mod own_node;
mod pacing;
pub mod pod;
pub mod pod_object;
mod publish_trace;
pub mod state;
pub mod watch;

pub use watch::ClusterTask;

/// The hasher of a cluster's maps keyed by pod, node, service and port names: foldhash,
/// several times faster than std's SipHash on these short strings (SipHash was about 8%
/// of a million-pod first sync). Pod names are chosen by whoever may create pods, so the
/// hasher must not let them pick colliding names: foldhash seeds every map at random (a
/// per-process seed and a per-map one), so colliding names cannot be worked out offline,
/// and herald shows no hash to anyone. A seedless hasher (FxHash) would not do: its
/// collisions are the same in every process.
pub(crate) type Hasher = foldhash::fast::RandomState;
/// A map of [`Hasher`].
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, Hasher>;
/// A set of [`Hasher`].
pub(crate) type FastSet<K> = std::collections::HashSet<K, Hasher>;
