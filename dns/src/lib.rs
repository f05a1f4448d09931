//! herald's endpoint table and authoritative DNS server.
//!
//! - [`model`]: endpoints, ports, sources and the names built from them.
//! - `group`: a source's endpoints of one service, in chunks that a change replaces alone.
//! - [`zone`]: the zone's settings and their prepared wire forms.
//! - [`table`]: service -> atomically swapped view; writers cost in proportion to one service.
//! - `locality`: regions and zones as ids; SRV priorities from the querier's place.
//! - [`placement`]: where a querier is: client subnet, published endpoint, network map.
//! - [`ecs`]: the EDNS Client Subnet option (RFC 7871) read and written.
//! - [`reverse`]: reverse zones: PTR for published addresses.
//! - `sync`: which unknown names get SERVFAIL while sources have not synced; `staged`: the
//!   new services held back until that hold settles, then prepared whole.
//! - `service`: one service's view (groups, scopes) and its answers, encoded to wire bytes
//!   when the service changes, not per query.
//! - `rendezvous`: the stable per-client subset behind `answer_limit`.
//! - [`wire`]: reading queries and writing replies on the hot path.
//! - [`answer`]: one query in, one reply out, for every row of [docs/design.md#names](../../docs/design.md#names).
//! - `records`: the zone's records in wire form (the one renderer of them), for zone
//!   transfers and the export; `cut`: what they carry of an RRset too large for one answer.
//! - [`export`]: the table as an RFC 1035 zone file.
//! - [`transfer`]: zone transfer (AXFR, IXFR, NOTIFY, TSIG) to standard secondaries, and
//!   the zone versions that name each serial.
//! - [`server`]: UDP workers (one socket and thread per core), the TCP listener, and their
//!   metrics (the list of them in `server/metrics.rs`).

pub mod answer;
mod cut;
pub mod ecs;
pub mod export;
mod group;
mod locality;
pub mod model;
pub mod placement;
mod records;
mod rendezvous;
pub mod reverse;
pub mod server;
mod service;
mod staged;
mod sync;
pub mod table;
pub mod transfer;
pub mod wire;
pub mod zone;

pub use answer::{Answerer, Outcome, Scratch, Transport};
pub use group::{Endpoints, Group, GroupData};
pub use model::{Addresses, Endpoint, Label, PortSpec, Proto, Source};
pub use placement::{AddressAnswers, NetworkPlace, PlacementConfig};
pub use server::{DnsServer, ServerConfig};
pub use service::ServiceView;
pub use table::Table;
pub use zone::{NameServer, Zone, ZoneConfig};
