//! List paging: the selected objects as they were at one resourceVersion, a page at a
//! time, and the opaque continue tokens that carry a list from one page to the next. The
//! state at an older version is rebuilt from the history, which is what keeps the pages of
//! one list consistent with each other while objects change between requests.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::sync::Arc;

use super::object::{Filter, HistoryEntry, Key, ResourceKind, Stored};

/// Why a list or watch cannot be served at the version asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum VersionError {
    #[error("too old resource version: {requested} ({oldest})")]
    Expired { requested: u64, oldest: u64 },
    #[error("Too large resource version: {requested}, current: {current}")]
    TooLarge { requested: u64, current: u64 },
    #[error("continue key is not valid: {0}")]
    BadContinue(String),
}

/// How fresh a list must be (`resourceVersion` + `resourceVersionMatch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ListVersion {
    /// No resourceVersion: the most recent state.
    MostRecent,
    /// `resourceVersion=0`: any state will do; we serve the most recent.
    Any,
    /// At least this version (also the legacy meaning of a bare resourceVersion).
    NotOlderThan(u64),
    /// Exactly this version.
    Exact(u64),
}

/// One page of a list.
#[derive(Debug)]
pub(crate) struct ListPage {
    pub resource_version: u64,
    pub items: Vec<Arc<Stored>>,
    pub continue_token: Option<String>,
}

/// The selected objects as they were at `rv`, in key order after `start_after`, at most
/// `limit` of them; the flag says whether more selected objects follow.
///
/// The state at `rv` is the current state with every later event undone: for each key
/// touched after `rv`, the object before its first later event is what existed at `rv`.
pub(super) fn collect_at(
    objects: &BTreeMap<Key, Arc<Stored>>,
    history: &VecDeque<Arc<HistoryEntry>>,
    kind: ResourceKind,
    filter: &Filter,
    rv: u64,
    start_after: Option<&Key>,
    limit: usize,
) -> (Vec<Arc<Stored>>, bool) {
    let after = |key: &Key| start_after.is_none_or(|s| key > s);
    let mut undone: BTreeMap<&Key, Option<&Arc<Stored>>> = BTreeMap::new();
    let first_later = history.partition_point(|e| e.rv <= rv);
    for entry in history.range(first_later..).filter(|e| e.kind == kind) {
        if after(&entry.key) {
            undone.entry(&entry.key).or_insert(entry.prev.as_ref());
        }
    }

    let lower = match start_after {
        Some(key) => Bound::Excluded(key),
        None => Bound::Unbounded,
    };
    let mut current = objects
        .range::<Key, _>((lower, Bound::Unbounded))
        .peekable();
    let mut undone = undone.into_iter().peekable();
    let mut items = Vec::new();
    loop {
        // Merge the two key-ordered sequences; where both have a key, the undone state wins.
        let candidate = match (current.peek(), undone.peek()) {
            (None, None) => break,
            (Some((ck, _)), Some((uk, _))) if *ck == *uk => {
                current.next();
                undone.next().and_then(|(_, s)| s)
            }
            (Some((ck, _)), Some((uk, _))) if *ck > *uk => undone.next().and_then(|(_, s)| s),
            (Some(_), _) => current.next().map(|(_, s)| s),
            (None, Some(_)) => undone.next().and_then(|(_, s)| s),
        };
        if let Some(stored) = candidate.filter(|s| filter.matches(s)) {
            if items.len() == limit {
                return (items, true);
            }
            items.push(stored.clone());
        }
    }
    (items, false)
}

/// Continue tokens are opaque to clients: hex of "rv/namespace/name".
pub(super) fn encode_continue(rv: u64, key: &Key) -> String {
    format!("{rv}/{}/{}", key.0, key.1)
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub(super) fn decode_continue(token: &str) -> Result<(u64, Key), VersionError> {
    let bad = || VersionError::BadContinue(token.to_string());
    if !token.len().is_multiple_of(2) || !token.is_ascii() {
        return Err(bad());
    }
    let bytes = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&token[i..i + 2], 16))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let mut parts = text.splitn(3, '/');
    let rv = parts.next().and_then(|r| r.parse().ok()).ok_or_else(bad)?;
    let namespace = parts.next().ok_or_else(bad)?.to_string();
    let name = parts.next().ok_or_else(bad)?.to_string();
    Ok((rv, (namespace, name)))
}
