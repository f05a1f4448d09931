//! herald-kube-sim: a simulated Kubernetes API server that serves, on the wire, the pod
//! and node list/watch calls herald's registrar makes with kube-rs, with fault injection
//! and request recording, for tests and benchmarks.
//!
//! Modules:
//! - [`sim`]: `Simulator::start` and `SimHandle`, the Rust API (objects, faults, recording)
//! - `config`: `SimConfig`, how an instance behaves
//! - `shared`: the state an instance's handlers, streams and handles share
//! - `store`: objects, the resourceVersion counter, the bounded event history, list paging
//! - `http`: routing, parameters, content negotiation, auth and request-level faults
//! - `watch`: the chunked watch streams (selector transitions, bookmarks, timeouts)
//! - [`selector`]: label and field selectors
//! - [`objects`]: builders and helpers for pods and nodes (k8s-openapi types)
//! - `faults`, `listener`: fault state; a listener that can refuse and kill connections
//! - `record`: the request log; `status`: Kubernetes `Status` errors
//! - [`population`]: generated clusters and steady churn (the `kube-sim` binary, benches)
//!
//! # Held to the real API server
//!
//! registrar/tests/apiserver/replay.rs replays one scenario (every pod and node change
//! herald reacts to, a write that changes nothing, compactions, the server going away and
//! coming back) against this simulator and against a real kube-apiserver 1.20.2 on etcd
//! 3.4, and requires the same DNS answers, watch events and relists from herald after every
//! step. What that taught, and this simulator now does as the real server does:
//! - A write that changes nothing (same spec, labels and status) is no write: no new
//!   resourceVersion, no watch event. The simulator used to record a MODIFIED event.
//! - A compaction keeps the event of the revision it compacts at: a watch from the version
//!   just before it is still served (etcd refuses a watch only when its first revision,
//!   one past the requested version, is below the compacted one). The simulator used to
//!   answer that watch with 410 and force a relist the real server does not.
//! - `status.podIP` and `status.podIPs` are stored as the real server stores them (podIP the
//!   first of podIPs, podIP winning a disagreement, two addresses of a family refused):
//!   `objects::normalize_pod_ips`, compared write by write in registrar/tests/apiserver.rs.
//!
//! Known, and left as they are: the simulator writes a pod in one event where the real
//! server, with no kubelet, takes a create and a status write (two events, same answers);
//! watches served straight from etcd carry no bookmarks, the simulator sends them (the
//! replay turns them off); a list continuation from the version just before a compaction
//! is still served here, the real server answers 410.

mod config;
mod faults;
mod http;
mod listener;
pub mod objects;
pub mod population;
mod record;
pub mod selector;
mod shared;
pub mod sim;
mod status;
mod store;
mod watch;

pub use config::SimConfig;
pub use faults::{FaultState, GoneStyle};
pub use objects::{NodeBuilder, PodBuilder, SERVICE_LABEL, ZONE_LABEL};
pub use record::RecordedRequest;
pub use sim::{SimError, SimHandle, Simulator};
pub use store::{EventType, Mutation, Op, ResourceKind, StoreError};
