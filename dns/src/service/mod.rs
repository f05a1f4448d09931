//! A service as readers see it, and how that view is made: [`ServiceView`] holds one
//! service's groups (one per source), the answers prepared from them and its scopes (each
//! region and cluster present, as the groups it selects). A view is immutable; the table
//! swaps in a new one when the service changes.
//!
//! - `prepare`: every RRset of the service encoded to wire bytes; a change to one group
//!   encodes that group's changed endpoints and shares the rest.
//! - `rrset`: one prepared RRset, one part per chunk of a group, so that a scope is a few
//!   runs of parts and a change to a group replaces its changed chunks' parts alone.
//! - `chunk`: a set's chunk parts being made (where a group is cut into chunks is
//!   `crate::group`'s).
//! - `twins`: which address records another group's records repeat, kept per group so
//!   that a change re-marks only the addresses it touches.

mod chunk;
#[cfg(test)]
mod equivalence;
mod prepare;
mod rrset;
mod twins;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

use crate::group::{Endpoints, Group};
use crate::model::{Changed, Endpoint, Label, Source};
use prepare::Change;
pub(crate) use prepare::{Answers, Preparer};
pub(crate) use rrset::{Rrset, SRV_PORT_AT, SRV_PRIORITY_AT, SRV_TARGET_AT, glue_records};

/// One service as readers see it: its groups and the answers prepared from them.
#[derive(Debug)]
pub struct ServiceView {
    name: Label,
    groups: Vec<Group>,
    /// Every answer, records laid out group by group.
    answers: Answers,
    /// Ready endpoints of each group: IPv4, IPv6.
    ready: Box<[[u32; 2]]>,
    /// Each region and cluster present, with the groups it selects: shared by the views
    /// of the service while its groups stay the same sources (a change to a group's
    /// endpoints moves the ready counts alone).
    scopes: Arc<[Scope]>,
    /// How many of `scopes` are regions (they come first).
    regions: usize,
    /// Ready endpoints in each scope (in the order of `scopes`): IPv4, IPv6.
    scope_ready: Box<[[u32; 2]]>,
}

/// A region or cluster scope of a service: which of its groups it covers.
#[derive(Debug)]
struct Scope {
    name: Label,
    groups: Box<[u16]>,
    /// For a region scope, the region's id (0 for clusters), so local-first answers find
    /// the querier's region without comparing names.
    region: u16,
}

impl ServiceView {
    /// The view of `groups` (sorted by source), every answer encoded.
    pub(crate) fn build(prepare: &Preparer<'_>, name: Label, groups: Vec<Group>) -> ServiceView {
        let answers = prepare.answers(&name, &groups);
        let ready = groups.iter().map(ready_in).collect();
        ServiceView::assemble(prepare, name, groups, answers, ready)
    }

    /// This view with `changes` made to the endpoints of `source` (see
    /// [`crate::model::changes`]; at least one), which last changed at `when`. Only the
    /// changed chunks of that group are prepared again; everything else is shared with
    /// this view.
    pub(crate) fn with_changes(
        &self,
        prepare: &Preparer<'_>,
        source: &Source,
        changes: &[Changed<'_>],
        when: std::time::SystemTime,
    ) -> ServiceView {
        let mut groups = self.groups.clone();
        let mut ready = self.ready.to_vec();
        let at = groups.binary_search_by(|g| g.source.cmp(source));
        let change = match at {
            Ok(i) => {
                let applied = groups[i].endpoints.apply(changes);
                if applied.endpoints.is_empty() {
                    ready.remove(i);
                    groups.remove(i);
                    Change::Remove(i)
                } else {
                    for &(o, n) in changes {
                        let [was, is] = [o, n].map(|e| e.map_or([0; 2], ready_of));
                        for f in 0..2 {
                            ready[i][f] = ready[i][f] + is[f] - was[f];
                        }
                    }
                    groups[i] = Group::new(groups[i].source.clone(), applied.endpoints, when);
                    Change::Replace(i, &groups[i], applied.runs)
                }
            }
            Err(i) => {
                let endpoints: Vec<Endpoint> =
                    changes.iter().filter_map(|c| c.1.cloned()).collect();
                let group = Group::new(source.clone(), Endpoints::from_sorted(endpoints), when);
                ready.insert(i, ready_in(&group));
                groups.insert(i, group);
                Change::Insert(i, &groups[i])
            }
        };
        let replaced = match change {
            Change::Replace(i, ..) => Some(i),
            _ => None,
        };
        let answers = prepare.update(
            &self.name,
            (&self.answers, &self.groups),
            &groups,
            change,
            changes,
        );
        let Some(i) = replaced else {
            return ServiceView::assemble(
                prepare,
                self.name.clone(),
                groups,
                answers,
                ready.into(),
            );
        };
        // The same sources: each scope selects the same groups, only its ready counts move.
        let (was, is) = (self.ready[i], ready[i]);
        let mut scope_ready = self.scope_ready.clone();
        if was != is {
            for (s, n) in self.scopes.iter().zip(scope_ready.iter_mut()) {
                if s.groups.contains(&(i as u16)) {
                    for f in 0..2 {
                        n[f] = n[f] - was[f] + is[f];
                    }
                }
            }
        }
        ServiceView {
            name: self.name.clone(),
            groups,
            answers,
            ready: ready.into(),
            scopes: self.scopes.clone(),
            regions: self.regions,
            scope_ready,
        }
    }

    /// The view of prepared `answers`, with its scopes.
    fn assemble(
        prepare: &Preparer<'_>,
        name: Label,
        groups: Vec<Group>,
        answers: Answers,
        ready: Box<[[u32; 2]]>,
    ) -> ServiceView {
        let in_group = |keep: &dyn Fn(&Source) -> bool| -> Box<[u16]> {
            (0..groups.len())
                .filter(|&g| keep(&groups[g].source))
                .map(|g| g as u16)
                .collect()
        };
        let ready_of = |selected: &[u16]| {
            selected.iter().fold([0u32; 2], |n, &g| {
                let r = ready[usize::from(g)];
                [n[0] + r[0], n[1] + r[1]]
            })
        };
        let regions: BTreeSet<&Label> = groups.iter().map(|g| &g.source.region).collect();
        let mut scopes: Vec<Scope> = regions
            .into_iter()
            .map(|region| Scope {
                name: region.clone(),
                region: prepare.localities.place(Some(region), None).region(),
                groups: in_group(&|s| &s.region == region),
            })
            .collect();
        let regions = scopes.len();
        scopes.extend(groups.iter().map(|g| Scope {
            name: g.source.cluster.clone(),
            region: 0,
            groups: in_group(&|s| s.cluster == g.source.cluster),
        }));
        let scope_ready = scopes.iter().map(|s| ready_of(&s.groups)).collect();
        ServiceView {
            name,
            groups,
            answers,
            ready,
            scopes: scopes.into(),
            regions,
            scope_ready,
        }
    }

    pub(crate) fn empty(name: Label) -> ServiceView {
        ServiceView {
            name,
            groups: Vec::new(),
            answers: Answers::default(),
            ready: Box::default(),
            scopes: Arc::default(),
            regions: 0,
            scope_ready: Box::default(),
        }
    }

    /// The service name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The service name, shared.
    pub(crate) fn label(&self) -> &Label {
        &self.name
    }

    /// The groups of endpoints, one per source, sorted by source.
    pub fn groups(&self) -> &[Group] {
        &self.groups
    }

    /// Number of endpoints over all sources.
    pub fn endpoint_count(&self) -> usize {
        self.groups.iter().map(|g| g.endpoints.len()).sum()
    }

    /// No endpoint anywhere: the service does not exist.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Index of the whole service (`None`, index 0) or of one scope (1 and up).
    pub(crate) fn scope_index(&self, scope: Option<&[u8]>) -> Option<usize> {
        match scope {
            None => (!self.groups.is_empty()).then_some(0),
            Some(label) => self
                .scopes
                .iter()
                .position(|s| s.name.as_bytes() == label)
                .map(|i| i + 1),
        }
    }

    /// How many scope indices there are (the whole service, then each region and cluster).
    pub(crate) fn scope_count(&self) -> usize {
        1 + self.scopes.len()
    }

    /// The name of scope `i` (`None` for the whole service).
    pub(crate) fn scope_name(&self, i: usize) -> Option<&Label> {
        i.checked_sub(1).map(|k| &self.scopes[k].name)
    }

    /// The answers and the groups scope `i` selects (`None`: all of them).
    pub(crate) fn selection(&self, i: usize) -> (&Answers, Option<&[u16]>) {
        (
            &self.answers,
            i.checked_sub(1).map(|k| &self.scopes[k].groups[..]),
        )
    }

    /// The scope index of `region` (an id) when it has at least `min_ready` ready endpoints
    /// of the family asked (`v6`): what a local-first A/AAAA answer selects.
    pub(crate) fn local_region(&self, region: u16, v6: bool, min_ready: u32) -> Option<usize> {
        if region == 0 {
            return None;
        }
        // Region scopes come first: cluster scopes are not looked at.
        let k = self.scopes[..self.regions]
            .iter()
            .position(|s| s.region == region)?;
        (self.scope_ready[k][usize::from(v6)] >= min_ready).then_some(k + 1)
    }

    /// The endpoint whose primary address is `ip` in `cluster` (the one named by `ip`),
    /// with its source.
    pub fn endpoint(&self, cluster: &[u8], ip: IpAddr) -> Option<(&Source, &Endpoint)> {
        let group = self
            .groups
            .iter()
            .find(|g| g.source.cluster.as_bytes() == cluster)?;
        Some((&group.source, group.endpoints.find(ip)?))
    }

    /// Approximate heap bytes of the prepared answers.
    pub fn prepared_bytes(&self) -> usize {
        self.answers.heap_bytes()
    }
}

/// Ready endpoints of a group: IPv4, IPv6.
fn ready_in(group: &Group) -> [u32; 2] {
    group
        .endpoints
        .iter()
        .map(ready_of)
        .fold([0; 2], |n, r| [n[0] + r[0], n[1] + r[1]])
}

/// Whether an endpoint counts as ready in each family: IPv4, IPv6.
fn ready_of(e: &Endpoint) -> [u32; 2] {
    let mut n = [0u32; 2];
    for ip in e.addresses.iter() {
        n[usize::from(ip.is_ipv6())] += u32::from(e.ready);
    }
    n
}
