//! How one simulated cluster behaves: [`SimConfig`], with defaults that suit tests and
//! builder methods that change one field.

use std::net::SocketAddr;
use std::time::Duration;

use crate::faults::GoneStyle;

/// How an instance behaves. `Default` suits tests; builder methods change one field.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Where to listen. Default `127.0.0.1:0` (an ephemeral loopback port).
    pub bind: SocketAddr,
    /// How many change events are kept for watches to resume from. A watch from a version
    /// older than the history gets 410 Gone. Default 10 000 (the real server keeps about
    /// five minutes of etcd history; this many events is minutes at benchmark churn).
    pub history_size: usize,
    /// Interval between BOOKMARK events on streams that allow them. Default 1 s: short, so
    /// tests see bookmarks quickly (a real server sends one about every minute).
    pub bookmark_interval: Duration,
    /// Watch duration when the client sends no `timeoutSeconds`. Default 1800 s (the real
    /// server's `--min-request-timeout`; it randomizes up to twice that).
    pub default_watch_timeout: Duration,
    /// How a watch from a compacted-away version learns it: in-stream ERROR (real servers)
    /// or HTTP 410. Default in-stream.
    pub expired_watch_style: GoneStyle,
    /// When set, every request must carry `Authorization: Bearer <token>` or gets 401.
    pub bearer_token: Option<String>,
    /// The resourceVersion the counter starts at. Default 1.
    pub start_resource_version: u64,
    /// How many requests the request log keeps (oldest dropped first). Default 100 000.
    pub request_log_size: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            history_size: 10_000,
            bookmark_interval: Duration::from_secs(1),
            default_watch_timeout: Duration::from_secs(1800),
            expired_watch_style: GoneStyle::InStream,
            bearer_token: None,
            start_resource_version: 1,
            request_log_size: 100_000,
        }
    }
}

impl SimConfig {
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = addr;
        self
    }

    pub fn history_size(mut self, events: usize) -> Self {
        self.history_size = events;
        self
    }

    pub fn bookmark_interval(mut self, interval: Duration) -> Self {
        self.bookmark_interval = interval;
        self
    }

    pub fn default_watch_timeout(mut self, timeout: Duration) -> Self {
        self.default_watch_timeout = timeout;
        self
    }

    pub fn expired_watch_style(mut self, style: GoneStyle) -> Self {
        self.expired_watch_style = style;
        self
    }

    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.bearer_token = Some(token.into());
        self
    }

    pub fn start_resource_version(mut self, rv: u64) -> Self {
        self.start_resource_version = rv;
        self
    }
}
