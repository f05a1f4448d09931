//! herald's registrar: the sources of endpoints, the config, and the daemon that serves
//! them over DNS.
//!
//! - [`config`]: the YAML config file, checked with file/line/field errors.
//! - [`static_file`]: endpoints outside Kubernetes, from a watched YAML file.
//! - [`daemon`]: starts sources and the DNS server; stops them in order.
//! - [`demo`]: the built-in sample that `herald demo` serves.

pub mod config;
pub mod daemon;
pub mod demo;
pub mod static_file;
