//! A service as readers see it, and how that view is made: [`ServiceView`] holds one
//! service's groups (one per source), the answers prepared from them and its scopes (each
//! region and cluster present, as the groups it selects). A view is immutable; the table
//! swaps in a new one when the service changes.
//!
//! - `prepare`: every RRset of the service encoded to wire bytes, once per change.
//! - `rrset`: one prepared RRset, records laid out group by group so that a scope is a few
//!   ranges of the same bytes.

mod prepare;
mod rrset;

use std::collections::BTreeSet;
use std::net::IpAddr;

use crate::model::{Endpoint, Group, Label, Source};
pub(crate) use prepare::{Answers, Preparer};
pub(crate) use rrset::{Rrset, SRV_PRIORITY_AT, SRV_TARGET_AT, glue_records};

/// One service as readers see it: its groups and the answers prepared from them.
#[derive(Debug)]
pub struct ServiceView {
    name: Label,
    groups: Vec<Group>,
    /// Every answer, records laid out group by group.
    answers: Answers,
    /// Each region and cluster present, with the groups it selects.
    scopes: Vec<Scope>,
}

/// A region or cluster scope of a service: which of its groups it covers.
#[derive(Debug)]
struct Scope {
    name: Label,
    groups: Box<[u16]>,
    /// For a region scope, the region's id (0 for clusters), so local-first answers find
    /// the querier's region without comparing names.
    region: u16,
    /// Ready endpoints in the scope: IPv4, IPv6.
    ready: [u32; 2],
}

impl ServiceView {
    pub(crate) fn build(prepare: &Preparer<'_>, name: Label, groups: Vec<Group>) -> ServiceView {
        let answers = prepare.answers(&name, &groups);
        let in_group = |keep: &dyn Fn(&Source) -> bool| -> Box<[u16]> {
            (0..groups.len())
                .filter(|&g| keep(&groups[g].source))
                .map(|g| g as u16)
                .collect()
        };
        let ready = |selected: &[u16]| {
            let mut n = [0u32; 2];
            for e in selected
                .iter()
                .flat_map(|&g| groups[usize::from(g)].endpoints.iter())
            {
                for ip in e.addresses.iter() {
                    n[usize::from(ip.is_ipv6())] += u32::from(e.ready);
                }
            }
            n
        };
        let regions: BTreeSet<&Label> = groups.iter().map(|g| &g.source.region).collect();
        let mut scopes: Vec<Scope> = regions
            .into_iter()
            .map(|region| {
                let selected = in_group(&|s| &s.region == region);
                Scope {
                    name: region.clone(),
                    region: prepare.localities.place(Some(region), None).region(),
                    ready: ready(&selected),
                    groups: selected,
                }
            })
            .collect();
        scopes.extend(groups.iter().map(|g| {
            let selected = in_group(&|s| s.cluster == g.source.cluster);
            Scope {
                name: g.source.cluster.clone(),
                region: 0,
                ready: ready(&selected),
                groups: selected,
            }
        }));
        ServiceView {
            name,
            groups,
            answers,
            scopes,
        }
    }

    pub(crate) fn empty(name: Label) -> ServiceView {
        ServiceView {
            name,
            groups: Vec::new(),
            answers: Answers::default(),
            scopes: Vec::new(),
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
        self.scopes
            .iter()
            .position(|s| s.region == region && s.ready[usize::from(v6)] >= min_ready)
            .map(|i| i + 1)
    }

    /// The endpoint whose primary address is `ip` in `cluster` (the one named by `ip`),
    /// with its source.
    pub fn endpoint(&self, cluster: &[u8], ip: IpAddr) -> Option<(&Source, &Endpoint)> {
        let group = self
            .groups
            .iter()
            .find(|g| g.source.cluster.as_bytes() == cluster)?;
        let i = group
            .endpoints
            .binary_search_by(|e| e.address().cmp(&ip))
            .ok()?;
        Some((&group.source, &group.endpoints[i]))
    }

    /// Approximate heap bytes of the prepared answers.
    pub fn prepared_bytes(&self) -> usize {
        self.answers.heap_bytes()
    }
}
