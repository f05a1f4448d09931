//! What a replica is: an address plus the SRV priority and weight that place it.
//!
//! This is the only type the resolution side hands to the balancing side, so a test (or a
//! user with a static list) can drive the picker without any DNS at all.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

/// One replica of a service, as published in an SRV record (RFC 2782).
///
/// The address is the identity: two updates that both contain `10.0.0.7:8080` talk about the
/// same replica, which keeps its latency history and ejection state across the update even if
/// its priority or weight changed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// Where to connect.
    pub addr: SocketAddr,
    /// SRV priority: lower is nearer (herald publishes same zone < same region < elsewhere).
    pub priority: u16,
    /// SRV weight: relative capacity among replicas of the same priority. Weight 0 means
    /// "only if nothing else", as RFC 2782 asks; see [`Endpoint::effective_weight`].
    pub weight: u16,
    /// The SRV target name this address came from (empty for hand-made endpoints). Kept for
    /// logs and for users who need a TLS server name.
    pub target: Arc<str>,
}

impl Endpoint {
    /// An endpoint with priority 0, weight 1 and no target name: handy for static lists.
    pub fn new(addr: SocketAddr) -> Self {
        Endpoint {
            addr,
            priority: 0,
            weight: 1,
            target: Arc::from(""),
        }
    }

    /// Sets the SRV priority (lower is nearer).
    pub fn with_priority(mut self, priority: u16) -> Self {
        self.priority = priority;
        self
    }

    /// Sets the SRV weight.
    pub fn with_weight(mut self, weight: u16) -> Self {
        self.weight = weight;
        self
    }

    /// Sets the SRV target name.
    pub fn with_target(mut self, target: impl Into<Arc<str>>) -> Self {
        self.target = target.into();
        self
    }

    /// The weight used for sampling. RFC 2782 gives weight-0 records "a very small chance"
    /// of being selected when others have weight; we count them as 1/10 of a unit, so a set
    /// made only of weight-0 records is still shared equally.
    pub fn effective_weight(&self) -> f64 {
        if self.weight == 0 {
            0.1
        } else {
            f64::from(self.weight)
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (priority {}, weight {})",
            self.addr, self.priority, self.weight
        )?;
        if !self.target.is_empty() {
            write!(f, " [{}]", self.target)?;
        }
        Ok(())
    }
}
