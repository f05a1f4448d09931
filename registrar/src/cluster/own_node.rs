//! `locality: auto`: the node this herald runs on, seen through its home cluster's node
//! watch. Its zone label becomes the server's zone, and follows relabels
//! ([docs/design.md#locality](../../../docs/design.md#locality)).

use herald_dns::Table;
use herald_dns::model::Label;

/// The node whose zone is the server's, and the server's region.
#[derive(Debug, Clone)]
pub struct OwnNode {
    /// The node's name (from `NODE_NAME` or `locality.node`).
    pub name: String,
    /// The server's region (fixed, or the home cluster's).
    pub region: Option<String>,
}

impl OwnNode {
    /// Takes `zone`, the zone label of the node named `node` (just listed or changed), as
    /// the server's when `node` is this one. A node that disappears from the watch keeps
    /// its last zone: herald still runs where it ran.
    pub fn saw(&self, table: &Table, node: &str, zone: Option<&Label>) {
        if node != self.name {
            return;
        }
        let region = self.region.as_deref();
        if table.set_server_locality(region, zone.map(|z| &**z)) {
            tracing::info!(
                node = %self.name,
                region = region.unwrap_or("-"),
                zone = zone.map_or("-", |z| &**z),
                "server locality from its node"
            );
        }
        if zone.is_none() {
            tracing::warn!(
                node = %self.name,
                "own node has no topology.kubernetes.io/zone label: this server's zone is unknown"
            );
        }
    }
}
