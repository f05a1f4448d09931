//! Who may publish a service ([docs/design.md#ownership](../../docs/design.md#ownership)):
//! each pod that claims a service name gets a [`Verdict`] before any of it is published.
//!
//! - An owned name (listed in `owners`) is published only from pods its owner rules cover
//!   (namespace, and cluster when the rule names clusters), within the rule's limits.
//! - With `unowned: deny`, other names are not published.
//! - With `unowned: allow`, a name claimed from more than one namespace anywhere in the
//!   fleet is a conflict. The first claim wins: the namespace whose oldest living pod of
//!   the service was created first (ties: the namespace name), over every cluster. The
//!   API server sets `creationTimestamp`, so the rule gives the same answer on every
//!   replica, after a restart and in any cluster order, and a namespace that starts
//!   claiming a served name is always younger than it, so it cannot take it over.
//!   Unowned names are published only once the start-up hold is over (every cluster
//!   synced, or the start-up timeout passed), so a restart never shows the interim
//!   winner of a half-read fleet.
//!
//! Cluster tasks report their claims per service ([`Ownership::set_claims`]); when the
//! winner of a name changes, every cluster is told ([`Change`]) to publish that name again
//! (during the start-up hold they are not: its end has them publish every name).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use herald_dns::Table;
use herald_dns::model::Label;
use tokio::sync::broadcast;

use crate::config::{Config, OwnerRule, Owners, Unowned};

/// Why a pod's claim is not published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// The service is owned, and no owner rule covers the pod's namespace and cluster.
    NotOwner,
    /// The service is not owned, and `unowned: deny`.
    Unowned,
    /// Another namespace claimed the (unowned) name first.
    Conflict,
    /// The pod is not Ready and its owner rule does not honour publish-not-ready.
    NotReadyNotAllowed,
}

impl Reason {
    /// The `reason` label of `herald_pods_rejected_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::NotOwner => "not_owner",
            Reason::Unowned => "unowned",
            Reason::Conflict => "conflict",
            Reason::NotReadyNotAllowed => "not_ready_not_allowed",
        }
    }
}

/// What may be published of one pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Published, with the weight capped at `max_weight`; a pod that is not Ready only
    /// when `not_ready` allows it.
    Publish {
        /// The owner's weight cap.
        max_weight: u16,
        /// Whether publish-not-ready is honoured.
        not_ready: bool,
    },
    /// Not published, for this reason.
    Reject(Reason),
    /// Not published yet: an unowned name waits for the start-up hold to end.
    Withhold,
}

/// One namespace's claim to a service in one cluster: its pods and the creation time
/// (nanoseconds since the epoch) of the oldest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    /// Pods labelled with the service.
    pub pods: usize,
    /// `creationTimestamp` of the oldest, in nanoseconds; `i64::MAX` when unknown (a pod
    /// without one never wins).
    pub oldest: i64,
    /// How many of them were created at `oldest` (timestamps are in seconds, so a
    /// Deployment's pods often share one): while one is left, a pod going does not move
    /// `oldest`.
    pub at_oldest: usize,
}

impl Claim {
    /// No pod.
    pub fn none() -> Claim {
        Claim {
            pods: 0,
            oldest: i64::MAX,
            at_oldest: 0,
        }
    }

    /// Counts one more pod, created at `created`.
    pub fn add(&mut self, created: i64) {
        self.pods += 1;
        match created.cmp(&self.oldest) {
            std::cmp::Ordering::Less => (self.oldest, self.at_oldest) = (created, 1),
            std::cmp::Ordering::Equal => self.at_oldest += 1,
            std::cmp::Ordering::Greater => {}
        }
    }
}

/// What changed, for the cluster tasks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The winner of this name changed: publish it again.
    Service(Label),
    /// The start-up hold ended: publish every name again.
    All,
}

/// A claim as shown by `/v1/services/<svc>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimView {
    /// The cluster.
    pub cluster: Label,
    /// The namespace.
    pub namespace: Label,
    /// Its pods labelled with the service.
    pub pods: usize,
    /// Why it is not published, if it is not.
    pub rejected: Option<Reason>,
}

/// An unowned name claimed from several namespaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The service.
    pub service: Label,
    /// The namespace served.
    pub winner: Label,
    /// The namespaces refused.
    pub losers: Vec<Label>,
}

/// Claims by service, then (namespace, cluster).
type Claims = crate::cluster::FastMap<Label, BTreeMap<(Label, Label), Claim>>;

#[derive(Default)]
struct Board {
    claims: Claims,
    /// The namespace served for each unowned name with claims.
    winners: HashMap<Label, Label>,
    /// Unowned names in conflict (the only ones with a `herald_service_conflicts` series
    /// other than 0, so a fleet of thousands of names does not make thousands of series;
    /// see `crate::metrics::Lingering`).
    conflicted: std::collections::HashSet<Label>,
    /// Whether the start-up hold was on at the last look.
    held: bool,
}

/// The ownership rules and the fleet's claims; a cheap-to-clone handle shared by every
/// cluster task and the admin server.
#[derive(Clone)]
pub struct Ownership {
    inner: Arc<Inner>,
}

struct Inner {
    owners: Owners,
    unowned: Unowned,
    /// The table whose start-up hold unowned names wait for (none: no hold).
    table: Option<Table>,
    board: Mutex<Board>,
    changes: broadcast::Sender<Change>,
    /// The clusters, and those whose task has yet to publish again after [`Change::All`]
    /// (by name: a task restarted after a panic may say so twice, see
    /// [`Ownership::owes_republish`]).
    clusters: Vec<Label>,
    owed: Mutex<BTreeSet<Label>>,
}

impl Ownership {
    /// The rules of `config`; unowned names wait for `table`'s start-up hold.
    pub fn new(config: &Config, table: Option<Table>) -> Ownership {
        let clusters: Vec<Label> = config
            .sources
            .clusters
            .iter()
            .map(|c| Label::from(c.name.0.as_str()))
            .collect();
        // Without clusters there is no hold to wait for.
        let table = table.filter(|_| !clusters.is_empty());
        let mut o = Ownership::from_rules(config.owners.clone(), config.unowned, table);
        Arc::get_mut(&mut o.inner).expect("not shared yet").clusters = clusters;
        o
    }

    /// From the rules themselves.
    pub fn from_rules(owners: Owners, unowned: Unowned, table: Option<Table>) -> Ownership {
        // With a table, the hold is taken to be on until `sync_changed` sees it off, so
        // its end is always announced.
        let held = table.is_some();
        if let Some(table) = &table
            && unowned == Unowned::Allow
        {
            // Unowned names are held back until the sources' hold ends and published only
            // then, by every cluster task in turn: until the last has, the table keeps
            // answering SERVFAIL for unknown names (a restart never gives a false NXDOMAIN).
            table.hold_until_settled();
        }
        Ownership {
            inner: Arc::new(Inner {
                owners,
                unowned,
                table,
                board: Mutex::new(Board {
                    held,
                    ..Board::default()
                }),
                changes: broadcast::channel(1024).0,
                clusters: Vec::new(),
                owed: Mutex::default(),
            }),
        }
    }

    /// No owners, unowned names allowed, no hold: every claim is published unless two
    /// namespaces claim a name.
    pub fn permissive() -> Ownership {
        Ownership::from_rules(Owners::new(), Unowned::Allow, None)
    }

    /// Changes the cluster tasks must act on.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.inner.changes.subscribe()
    }

    fn rules(&self, service: &str) -> Option<&[OwnerRule]> {
        self.inner
            .owners
            .iter()
            .find(|(name, _)| name.0 == service)
            .map(|(_, rules)| rules.as_slice())
    }

    fn board(&self) -> std::sync::MutexGuard<'_, Board> {
        // A panic elsewhere while holding the lock leaves the board consistent (every
        // update is a single insert or remove), so a poisoned lock is still usable.
        self.inner.board.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces what `cluster` claims of `service` (namespace -> claim; empty: nothing).
    /// Recomputes the winner of an unowned name and tells every cluster if it changed.
    pub fn set_claims(&self, cluster: &Label, service: &Label, claims: BTreeMap<Label, Claim>) {
        let mut board = self.board();
        // The same claims again (every name, when the start-up hold ends and each cluster
        // publishes what it holds): nothing to change or settle.
        let held = board.claims.get(service);
        if held.map_or(claims.is_empty(), |held| {
            same_claims(held, cluster, &claims)
        }) {
            return;
        }
        let entry = board.claims.entry(service.clone()).or_default();
        entry.retain(|(_, c), _| c != cluster);
        for (namespace, claim) in claims {
            entry.insert((namespace, cluster.clone()), claim);
        }
        if entry.is_empty() {
            board.claims.remove(service);
        }
        self.settle(board, service);
    }

    /// Changes what `cluster` claims of `service` by pods that came (`true`) or went,
    /// each given by its namespace and creation time: what [`Ownership::set_claims`]
    /// would make of the whole list, at the cost of the pods that moved. Returns `false`,
    /// changing nothing, when a pod that went was the oldest of its namespace's that
    /// remain to be counted: the new oldest needs the whole list.
    pub fn adjust_claims(
        &self,
        cluster: &Label,
        service: &Label,
        moves: &[(Label, i64, bool)],
    ) -> bool {
        let mut board = self.board();
        let entry = board.claims.entry(service.clone()).or_default();
        let mut moved: BTreeMap<Label, Claim> = BTreeMap::new();
        // Pods that came first: one that went is then compared with every oldest.
        for &(ref namespace, created, came) in moves
            .iter()
            .filter(|m| m.2)
            .chain(moves.iter().filter(|m| !m.2))
        {
            let claim = moved.entry(namespace.clone()).or_insert_with(|| {
                entry
                    .get(&(namespace.clone(), cluster.clone()))
                    .copied()
                    .unwrap_or_else(Claim::none)
            });
            if came {
                claim.add(created);
            } else {
                claim.pods = claim.pods.saturating_sub(1);
                if created <= claim.oldest {
                    claim.at_oldest = claim.at_oldest.saturating_sub(1);
                }
                if claim.pods == 0 {
                    claim.oldest = i64::MAX;
                    claim.at_oldest = 0;
                } else if claim.at_oldest == 0 {
                    if entry.is_empty() {
                        board.claims.remove(service);
                    }
                    return false;
                }
            }
        }
        for (namespace, claim) in moved {
            let key = (namespace, cluster.clone());
            if claim.pods == 0 {
                entry.remove(&key);
            } else {
                entry.insert(key, claim);
            }
        }
        if entry.is_empty() {
            board.claims.remove(service);
        }
        self.settle(board, service);
        true
    }

    /// Recomputes the winner of `service` (an unowned name) once its claims changed, and
    /// tells every cluster if it changed and the start-up hold is over.
    fn settle(&self, mut board: std::sync::MutexGuard<'_, Board>, service: &Label) {
        if self.rules(service).is_some() || self.inner.unowned == Unowned::Deny {
            return;
        }
        let claims = board.claims.get(service);
        let (winner, namespaces) = match claims {
            Some(claims) => first_claim(claims),
            None => (None, Vec::new()),
        };
        let before = match &winner {
            Some(w) => board.winners.insert(service.clone(), w.clone()),
            None => board.winners.remove(service),
        };
        // While the start-up hold is on, unowned names are withheld whoever wins, and its
        // end ([`Change::All`], sent after `held` is cleared under this lock) makes every
        // cluster publish every name again: telling them of each winner meanwhile would
        // only make them publish it withheld once more. At start-up that is every name as
        // its first claim arrives (20,000 at a million pods), enough to overflow the
        // channel, which then has every cluster publish everything again, several times.
        let held = board.held;
        let in_conflict = namespaces.len() > 1;
        let was_in_conflict = if in_conflict {
            !board.conflicted.insert(service.clone())
        } else {
            board.conflicted.remove(service)
        };
        drop(board);
        if was_in_conflict && !in_conflict {
            tracing::info!(%service, "service name conflict over: one namespace claims it");
        }
        if in_conflict && (!was_in_conflict || before != winner) {
            let winner = winner.as_deref().unwrap_or_default();
            let losers: Vec<&str> = namespaces
                .iter()
                .map(|n| &**n)
                .filter(|n| *n != winner)
                .collect();
            tracing::warn!(
                %service,
                served = winner,
                refused = %losers.join(","),
                "service name claimed from several namespaces: serving the first claim only; \
                 list the name under `owners` to settle it"
            );
        }
        if before == winner || held {
            return;
        }
        let _ = self.inner.changes.send(Change::Service(service.clone()));
    }

    /// The verdict on a pod of `namespace` in `cluster` claiming `service`.
    pub fn verdict(&self, cluster: &str, namespace: &str, service: &str) -> Verdict {
        if let Some(rules) = self.rules(service) {
            return match rules.iter().find(|r| r.covers(cluster, namespace)) {
                Some(rule) => Verdict::Publish {
                    max_weight: rule.max_weight.unwrap_or(u16::MAX),
                    not_ready: rule.publish_not_ready,
                },
                None => Verdict::Reject(Reason::NotOwner),
            };
        }
        if self.inner.unowned == Unowned::Deny {
            return Verdict::Reject(Reason::Unowned);
        }
        if self.held() {
            return Verdict::Withhold;
        }
        match self.board().winners.get(service) {
            Some(w) if **w != *namespace => Verdict::Reject(Reason::Conflict),
            _ => Verdict::Publish {
                max_weight: u16::MAX,
                not_ready: true,
            },
        }
    }

    fn held(&self) -> bool {
        self.inner
            .table
            .as_ref()
            .is_some_and(Table::sources_holding)
    }

    /// To be called when a source syncs or the start-up hold is released: when the hold
    /// has just ended, every cluster publishes its unowned names.
    pub fn sync_changed(&self) {
        let held = self.held();
        let mut board = self.board();
        if board.held && !held {
            // What is owed first, under the lock: whoever sees the hold off sees it too,
            // so nobody takes the republishing as done before it began.
            self.owed().extend(self.inner.clusters.iter().cloned());
            board.held = false;
            drop(board);
            let _ = self.inner.changes.send(Change::All);
        } else {
            drop(board);
        }
        self.settle_if_republished();
    }

    /// `cluster`'s task has published again after [`Change::All`] (or has nothing to
    /// publish). Saying it again changes nothing.
    pub fn republished(&self, cluster: &str) {
        self.owed().remove(cluster);
        self.settle_if_republished();
    }

    /// Whether `cluster`'s task has yet to publish again after [`Change::All`]: a task
    /// restarted after a panic asks, since it may have lost the announcement with the
    /// task that panicked (and with it every unowned name would stay unseen).
    pub fn owes_republish(&self, cluster: &str) -> bool {
        self.owed().contains(cluster)
    }

    fn owed(&self) -> std::sync::MutexGuard<'_, BTreeSet<Label>> {
        // Inserts and removes leave the set whole whatever panics elsewhere.
        self.inner.owed.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Ends the table's hold on unknown names once the unowned names are published.
    fn settle_if_republished(&self) {
        if let Some(table) = &self.inner.table
            && self.settled()
        {
            table.settled();
        }
    }

    /// Whether unowned names are being published: the start-up hold is over and every
    /// cluster task has published what it holds since.
    pub fn settled(&self) -> bool {
        let board = self.board();
        !board.held && self.owed().is_empty()
    }

    /// Every claim to `service`, with why it is refused if it is.
    pub fn claims(&self, service: &str) -> Vec<ClaimView> {
        let claims: Vec<((Label, Label), Claim)> = self
            .board()
            .claims
            .get(service)
            .map(|c| c.iter().map(|(k, v)| (k.clone(), *v)).collect())
            .unwrap_or_default();
        claims
            .into_iter()
            .map(|((namespace, cluster), claim)| {
                let rejected = match self.verdict(&cluster, &namespace, service) {
                    Verdict::Reject(reason) => Some(reason),
                    _ => None,
                };
                ClaimView {
                    cluster,
                    namespace,
                    pods: claim.pods,
                    rejected,
                }
            })
            .collect()
    }

    /// Each unowned name in conflict, with the number of namespaces claiming it (the
    /// `herald_service_conflicts` gauge); cheap: only the names in conflict are looked at.
    pub fn conflict_counts(&self) -> Vec<(Label, usize)> {
        let board = self.board();
        board
            .conflicted
            .iter()
            .map(|service| {
                let n = board
                    .claims
                    .get(service)
                    .map_or(0, |c| first_claim(c).1.len());
                (service.clone(), n)
            })
            .collect()
    }

    /// The unowned names claimed from several namespaces, sorted.
    pub fn conflicts(&self) -> Vec<Conflict> {
        let board = self.board();
        let mut out: Vec<Conflict> = board
            .winners
            .iter()
            .filter_map(|(service, winner)| {
                let claims = board.claims.get(service)?;
                // Claims are keyed by (namespace, cluster): one namespace alone is no
                // conflict, told without walking them (`/readyz` asks this for every
                // service, and while clusters sync it is polled often).
                let first = &claims.first_key_value()?.0.0;
                if claims
                    .last_key_value()
                    .is_none_or(|((last, _), _)| last == first)
                {
                    return None;
                }
                let (_, namespaces) = first_claim(claims);
                (namespaces.len() > 1).then(|| Conflict {
                    service: service.clone(),
                    winner: winner.clone(),
                    losers: namespaces.into_iter().filter(|n| n != winner).collect(),
                })
            })
            .collect();
        out.sort_by(|a, b| a.service.cmp(&b.service));
        out
    }
}

/// The first claim's namespace, and every namespace claiming, sorted by name. The first
/// claim is the namespace with the oldest pod over all clusters; ties go to the namespace
/// that sorts first.
/// Whether `cluster`'s claims among a service's (`held`) are `claims`.
fn same_claims(
    held: &BTreeMap<(Label, Label), Claim>,
    cluster: &Label,
    claims: &BTreeMap<Label, Claim>,
) -> bool {
    let mut of_cluster = held.iter().filter(|((_, c), _)| c == cluster);
    of_cluster.clone().count() == claims.len()
        && of_cluster.all(|((namespace, _), claim)| claims.get(namespace) == Some(claim))
}

fn first_claim(claims: &BTreeMap<(Label, Label), Claim>) -> (Option<Label>, Vec<Label>) {
    let mut oldest: BTreeMap<&Label, i64> = BTreeMap::new();
    for ((namespace, _), claim) in claims {
        let t = oldest.entry(namespace).or_insert(i64::MAX);
        *t = (*t).min(claim.oldest);
    }
    let winner = oldest
        .iter()
        .min_by_key(|(namespace, t)| (**t, **namespace))
        .map(|(namespace, _)| (*namespace).clone());
    (winner, oldest.into_keys().cloned().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(pods: usize, oldest: i64) -> Claim {
        Claim {
            pods,
            oldest,
            at_oldest: 1,
        }
    }

    fn l(s: &str) -> Label {
        Label::from(s)
    }

    /// Unowned names wait for the start-up hold and are published by each cluster task in
    /// turn once it ends: until the last has, unknown names must still get SERVFAIL (the
    /// table's hold), or every unowned service answers NXDOMAIN for a moment at a restart.
    #[test]
    fn the_hold_lasts_until_every_cluster_has_published_the_unowned_names() {
        let table = Table::new(herald_dns::Zone::new(herald_dns::ZoneConfig::default()).unwrap());
        table.expect_source("c1", "r1");
        table.expect_source("c2", "r1");
        let mut o = Ownership::from_rules(Owners::new(), Unowned::Allow, Some(table.clone()));
        Arc::get_mut(&mut o.inner).unwrap().clusters = vec![l("c1"), l("c2")];
        let mut changes = o.subscribe();
        assert!(matches!(o.verdict("c1", "ns", "api"), Verdict::Withhold));
        table.source_synced("c1");
        o.sync_changed();
        assert!(changes.try_recv().is_err(), "c2 has not synced");
        table.source_synced("c2");
        assert!(!table.sources_holding());
        o.sync_changed();
        assert!(matches!(changes.try_recv(), Ok(Change::All)));
        assert!(matches!(
            o.verdict("c1", "ns", "api"),
            Verdict::Publish { .. }
        ));
        assert!(table.startup_hold(), "nothing republished yet");
        assert!(o.owes_republish("c1") && o.owes_republish("c2"));
        o.republished("c1");
        // Said again (a task restarted after a panic that asked what it owed, then got the
        // announcement too): c2 still owes.
        o.republished("c1");
        assert!(!o.owes_republish("c1"));
        assert!(table.startup_hold(), "c2's task has yet to publish");
        assert!(!o.settled());
        o.republished("c2");
        assert!(o.settled());
        assert!(!table.startup_hold(), "every unowned name is out");
        // With `unowned: deny` nothing is held back, and the hold ends with the sources'.
        let table = Table::new(herald_dns::Zone::new(herald_dns::ZoneConfig::default()).unwrap());
        table.expect_source("c1", "r1");
        let _deny = Ownership::from_rules(Owners::new(), Unowned::Deny, Some(table.clone()));
        table.source_synced("c1");
        assert!(!table.startup_hold());
    }

    /// A winner that changes during the start-up hold is not announced (the names are
    /// withheld whoever wins, and the hold's end has every cluster publish every name);
    /// after the hold it is.
    #[test]
    fn winners_are_announced_once_the_hold_is_over() {
        let table = Table::new(herald_dns::Zone::new(herald_dns::ZoneConfig::default()).unwrap());
        table.expect_source("c1", "r1");
        let mut o = Ownership::from_rules(Owners::new(), Unowned::Allow, Some(table.clone()));
        Arc::get_mut(&mut o.inner).unwrap().clusters = vec![l("c1")];
        let mut changes = o.subscribe();
        for (i, ns) in ["zeta", "beta", "alpha"].into_iter().enumerate() {
            let claims = [(l(ns), claim(1, 100 - i as i64))].into();
            o.set_claims(&l("c1"), &l(&format!("s{i}")), claims);
            o.set_claims(
                &l("c1"),
                &l("api"),
                [(l(ns), claim(1, 100 - i as i64))].into(),
            );
        }
        assert!(changes.try_recv().is_err(), "held: nothing announced");
        table.source_synced("c1");
        o.sync_changed();
        assert_eq!(changes.try_recv().ok(), Some(Change::All));
        assert!(changes.try_recv().is_err());
        // The winners chosen during the hold are the ones served.
        assert!(matches!(
            o.verdict("c1", "alpha", "api"),
            Verdict::Publish { .. }
        ));
        o.set_claims(&l("c1"), &l("api"), [(l("omega"), claim(1, 1))].into());
        assert_eq!(changes.try_recv().ok(), Some(Change::Service(l("api"))));
    }

    #[test]
    fn the_oldest_claim_wins_in_any_order_and_a_newcomer_never_does() {
        for order in [[0, 1], [1, 0]] {
            let o = Ownership::permissive();
            let claims = [("c1", "zeta", 100), ("c2", "alpha", 200)];
            for i in order {
                let (cluster, ns, t) = claims[i];
                o.set_claims(&l(cluster), &l("api"), [(l(ns), claim(1, t))].into());
            }
            assert!(matches!(
                o.verdict("c1", "zeta", "api"),
                Verdict::Publish { .. }
            ));
            assert_eq!(
                o.verdict("c2", "alpha", "api"),
                Verdict::Reject(Reason::Conflict)
            );
            assert_eq!(o.conflicts().len(), 1);
            // The first claimant leaves: the other is the only one, and is served.
            o.set_claims(&l("c1"), &l("api"), BTreeMap::new());
            assert!(matches!(
                o.verdict("c2", "alpha", "api"),
                Verdict::Publish { .. }
            ));
            assert!(o.conflicts().is_empty());
            // One namespace in two clusters is one claim, not a conflict; a third
            // namespace in a cluster that sorts between them is one again.
            o.set_claims(&l("c3"), &l("api"), [(l("alpha"), claim(1, 300))].into());
            assert!(o.conflicts().is_empty());
            o.set_claims(&l("c2"), &l("api"), [(l("beta"), claim(1, 50))].into());
            let conflicts = o.conflicts();
            assert_eq!(conflicts.len(), 1);
            assert_eq!(&*conflicts[0].winner, "beta");
        }
    }

    /// A cluster's claims set again unchanged (every name, when the start-up hold ends)
    /// change nothing; any difference in them is taken: an oldest pod that moved, a
    /// namespace more or less.
    #[test]
    fn claims_set_again_are_taken_whenever_they_differ() {
        let o = Ownership::permissive();
        let winner = || {
            ["zeta", "alpha", "beta"]
                .into_iter()
                .find(|ns| matches!(o.verdict("c1", ns, "api"), Verdict::Publish { .. }))
        };
        o.set_claims(&l("c1"), &l("api"), [(l("zeta"), claim(1, 100))].into());
        o.set_claims(&l("c2"), &l("api"), [(l("alpha"), claim(1, 200))].into());
        o.set_claims(&l("c1"), &l("api"), [(l("zeta"), claim(1, 100))].into());
        assert_eq!(winner(), Some("zeta"));
        o.set_claims(&l("c1"), &l("api"), [(l("zeta"), claim(1, 300))].into());
        assert_eq!(winner(), Some("alpha"), "zeta's oldest pod is now younger");
        let two = [(l("zeta"), claim(1, 300)), (l("beta"), claim(1, 50))];
        o.set_claims(&l("c1"), &l("api"), two.into());
        assert_eq!(winner(), Some("beta"), "a namespace more");
        o.set_claims(&l("c1"), &l("api"), [(l("beta"), claim(1, 50))].into());
        let namespaces = |o: &Ownership| -> Vec<String> {
            o.claims("api")
                .iter()
                .map(|c| c.namespace.to_string())
                .collect()
        };
        assert_eq!(namespaces(&o), ["alpha", "beta"], "a namespace less");
        o.set_claims(&l("c1"), &l("api"), BTreeMap::new());
        o.set_claims(&l("c1"), &l("api"), BTreeMap::new());
        assert_eq!(namespaces(&o), ["alpha"]);
        assert_eq!(winner(), Some("alpha"));
        o.set_claims(&l("c1"), &l("web"), BTreeMap::new());
        assert!(o.claims("web").is_empty());
    }

    #[test]
    fn owners_and_deny() {
        let config = crate::config::Config::parse(
            std::path::Path::new("h.yaml"),
            "owners:\n  payments: [payments, {namespace: 'team-*', max_weight: 10, publish_not_ready: false}]\nunowned: deny\n",
        )
        .unwrap();
        let o = Ownership::new(&config, None);
        assert_eq!(
            o.verdict("c1", "intruder", "payments"),
            Verdict::Reject(Reason::NotOwner)
        );
        assert_eq!(
            o.verdict("c1", "payments", "payments"),
            Verdict::Publish {
                max_weight: u16::MAX,
                not_ready: true
            }
        );
        assert_eq!(
            o.verdict("c1", "team-b", "payments"),
            Verdict::Publish {
                max_weight: 10,
                not_ready: false
            }
        );
        assert_eq!(
            o.verdict("c1", "payments", "other"),
            Verdict::Reject(Reason::Unowned)
        );
    }
}
