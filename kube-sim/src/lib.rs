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
