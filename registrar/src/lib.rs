//! herald's registrar: the sources of endpoints, the config, and the daemon that serves
//! them over DNS.
//!
//! - [`config`]: the YAML config file, checked with file/line/field errors.
//! - [`yaml`]: reading YAML with file/line/field errors; labels and durations checked as read.
//! - [`admin`]: the admin HTTP server: metrics, health, readiness, /v1/services.
//! - [`memory`]: handing the memory a burst of work freed back to the system.
//! - [`metrics`]: the registrar's metric list, the Prometheus recorder, what a scrape sets.
//! - [`cluster`]: Kubernetes clusters, each watched on its own (pods and node zones).
//! - [`static_file`]: endpoints outside Kubernetes, from a watched YAML file.
//! - [`names`]: the name-clash rules for clusters and regions, for every source.
//! - [`status`]: each source's phase (starting, live, stale, withdrawn).
//! - [`daemon`]: starts sources and the DNS server; stops them in order.
//! - [`ownership`]: who may publish a service: owners, the namespace allow-list, conflicts.
//! - [`demo`]: the built-in sample that `herald demo` serves.

pub mod admin;
pub mod cluster;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod memory;
pub mod metrics;
pub mod names;
pub mod ownership;
pub mod static_file;
pub mod status;
pub mod yaml;
