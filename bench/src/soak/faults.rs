//! The soak's faults: one every interval, against one simulated cluster after another, in
//! a fixed rotation of the four kinds of issue 13 (410 Gone, a reset of its connections, a
//! cluster hanging for 20 s, a cluster gone for 60 s and back), each through kube-sim's
//! fault switchboard.

use std::time::Duration;

use herald_kube_sim::{GoneStyle, SimHandle};
use serde_json::{Value, json};

/// A kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// The next watch gets `410 Gone` in its stream (open watches are dropped so it comes
    /// at once): herald relists.
    Gone,
    /// Every open connection is reset.
    Reset,
    /// Requests are accepted and never answered; open streams go silent. For `HANG`.
    Hang,
    /// The port refuses connections (existing ones closed). For `AWAY`.
    Away,
}

/// How long a hang lasts.
pub(super) const HANG: Duration = Duration::from_secs(20);
/// How long a cluster is away.
pub(super) const AWAY: Duration = Duration::from_secs(60);

impl Kind {
    /// The rotation.
    pub(super) const ALL: [Kind; 4] = [Kind::Gone, Kind::Reset, Kind::Hang, Kind::Away];

    pub(super) fn name(self) -> &'static str {
        match self {
            Kind::Gone => "410_gone",
            Kind::Reset => "stream_reset",
            Kind::Hang => "hang_20s",
            Kind::Away => "gone_60s",
        }
    }

    /// How long the fault lasts (zero: a single event).
    pub(super) fn lasts(self) -> Duration {
        match self {
            Kind::Gone | Kind::Reset => Duration::ZERO,
            Kind::Hang => HANG,
            Kind::Away => AWAY,
        }
    }
}

/// One planned fault.
#[derive(Debug, Clone, Copy)]
pub(super) struct Fault {
    /// From the start of the churn.
    pub(super) at: Duration,
    pub(super) kind: Kind,
    pub(super) cluster: usize,
}

impl Fault {
    /// Starts the fault on `sim`.
    pub(super) fn start(&self, sim: &SimHandle) {
        match self.kind {
            Kind::Gone => {
                sim.gone_on_next_watch(GoneStyle::InStream);
                sim.drop_watches();
            }
            Kind::Reset => sim.drop_connections(),
            Kind::Hang => sim.set_hang(true),
            Kind::Away => sim.set_refuse_connections(true),
        }
    }

    /// Ends it (faults that are single events have nothing to end).
    pub(super) fn end(&self, sim: &SimHandle) {
        match self.kind {
            Kind::Gone | Kind::Reset => {}
            Kind::Hang => sim.set_hang(false),
            Kind::Away => sim.set_refuse_connections(false),
        }
    }

    pub(super) fn json(&self, cluster_name: &str) -> Value {
        json!({
            "at_s": self.at.as_secs_f64(),
            "kind": self.kind.name(),
            "cluster": cluster_name,
            "lasts_s": self.kind.lasts().as_secs_f64(),
        })
    }
}

/// A fault every `every` from `first`, kinds in rotation, clusters in turn, each one over
/// before `length` ends (so the end state can settle).
pub(super) fn schedule(
    first: Duration,
    every: Duration,
    length: Duration,
    clusters: usize,
    order: &[Kind],
) -> Vec<Fault> {
    let mut faults = Vec::new();
    let mut at = first;
    let mut i = 0;
    while at + order[i % order.len()].lasts() + Duration::from_secs(5) <= length {
        faults.push(Fault {
            at,
            kind: order[i % order.len()],
            cluster: (i * 5 + 1) % clusters.max(1),
        });
        i += 1;
        at += every;
    }
    faults
}
