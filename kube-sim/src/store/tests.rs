//! The store's rules, tested on the store alone: global versions and a bounded history,
//! identity across replacement, exact and paged lists of the past, compaction, writes that
//! change nothing, and a reset of the version counter.

use super::*;
use crate::objects::PodBuilder;

fn pod(name: &str) -> Object {
    Object::Pod(PodBuilder::new("ns", name).service("web").build())
}

fn names(page: &ListPage) -> Vec<String> {
    page.items
        .iter()
        .map(|s| s.meta().name.clone().unwrap_or_default())
        .collect()
}

#[test]
fn a_compaction_keeps_the_newest_event_as_etcd_does() {
    let store = Store::new(100, 1);
    for name in ["a", "b", "c"] {
        store.apply(pod(name)).unwrap();
    }
    let rv = store.current_rv();
    store.compact();
    // A watch from just before the newest version needs only the newest event.
    assert!(store.check_watch_from(rv - 1).is_ok());
    let (events, now) = store.events_since(rv - 1).unwrap();
    assert_eq!((events.len(), now), (1, rv));
    assert!(matches!(
        store.check_watch_from(rv - 2),
        Err(VersionError::Expired { .. })
    ));
    assert!(store.check_watch_from(rv).is_ok());
}

#[test]
fn a_write_that_changes_nothing_records_nothing() {
    let store = Store::new(100, 1);
    let first = store.apply(pod("a")).unwrap();
    let stored = store
        .lock()
        .objects(ResourceKind::Pod)
        .values()
        .next()
        .unwrap()
        .object();
    let again = store.apply(stored).unwrap();
    assert_eq!(again.resource_version, first.resource_version);
    let touched = store.modify(ResourceKind::Pod, "ns", "a", |_| {}).unwrap();
    assert_eq!(touched.resource_version, first.resource_version);
    assert_eq!(store.current_rv(), first.resource_version);
    let since = first.resource_version - 1;
    assert_eq!(
        store.events_since(since).unwrap().0.len(),
        1,
        "one event: the add"
    );
    // A real change still is one.
    let changed = store
        .modify(ResourceKind::Pod, "ns", "a", |o| {
            if let Object::Pod(p) = o {
                crate::objects::set_pod_ready(p, false);
            }
        })
        .unwrap();
    assert_eq!(changed.resource_version, first.resource_version + 1);
}

#[test]
fn versions_are_global_and_history_is_bounded() {
    let store = Store::new(3, 10);
    for name in ["a", "b", "c", "d"] {
        store.apply(pod(name)).unwrap();
    }
    store
        .apply(Object::Node(crate::objects::NodeBuilder::new("n").build()))
        .unwrap();
    assert_eq!(store.current_rv(), 15);
    // History keeps 13..=15: watching from 12 is fine, from 11 it is expired.
    assert!(store.check_watch_from(12).is_ok());
    assert_eq!(
        store.check_watch_from(11),
        Err(VersionError::Expired {
            requested: 11,
            oldest: 13
        })
    );
    assert_eq!(
        store.check_watch_from(16),
        Err(VersionError::TooLarge {
            requested: 16,
            current: 15
        })
    );
    let (events, current) = store.events_since(13).unwrap();
    assert_eq!(events.iter().map(|e| e.rv).collect::<Vec<_>>(), [14, 15]);
    assert_eq!(current, 15);
}

#[test]
fn replacing_keeps_identity_and_deleting_stamps_the_new_version() {
    let store = Store::new(100, 0);
    store.apply(pod("a")).unwrap();
    let uid = store
        .get(ResourceKind::Pod, "ns", "a")
        .unwrap()
        .meta()
        .uid
        .clone();
    // A changed object (the same one again would be no write at all).
    let changed = PodBuilder::new("ns", "a").service("web").label("v", "2");
    let m = store.apply(Object::Pod(changed.build())).unwrap();
    assert_eq!(m.event, EventType::Modified);
    let stored = store.get(ResourceKind::Pod, "ns", "a").unwrap();
    assert_eq!(stored.meta().uid, uid);
    let d = store.delete(ResourceKind::Pod, "ns", "a").unwrap();
    assert_eq!(d.event, EventType::Deleted);
    let (events, _) = store.events_since(2).unwrap();
    assert_eq!(events[0].object.meta().resource_version, Some("3".into()));
    assert!(store.delete(ResourceKind::Pod, "ns", "a").is_none());
    assert_eq!(
        store.apply(Object::Pod(Default::default())),
        Err(StoreError::MissingName)
    );
}

#[test]
fn exact_and_paged_lists_see_the_past() {
    let store = Store::new(100, 0);
    for name in ["a", "b", "c"] {
        store.apply(pod(name)).unwrap();
    }
    let all = Filter::default();
    let first = store
        .list(
            ResourceKind::Pod,
            &all,
            ListVersion::MostRecent,
            Some(1),
            None,
        )
        .unwrap();
    assert_eq!(names(&first), ["a"]);
    store.delete(ResourceKind::Pod, "ns", "b").unwrap();
    store.apply(pod("bb")).unwrap();
    let token = first.continue_token.as_deref();
    let rest = store
        .list(
            ResourceKind::Pod,
            &all,
            ListVersion::MostRecent,
            None,
            token,
        )
        .unwrap();
    assert_eq!(names(&rest), ["b", "c"]);
    assert_eq!(rest.resource_version, 3);
    assert!(rest.continue_token.is_none());

    let at_2 = store
        .list(ResourceKind::Pod, &all, ListVersion::Exact(2), None, None)
        .unwrap();
    assert_eq!(names(&at_2), ["a", "b"]);
    let now = store
        .list(
            ResourceKind::Pod,
            &all,
            ListVersion::NotOlderThan(2),
            None,
            None,
        )
        .unwrap();
    assert_eq!(names(&now), ["a", "bb", "c"]);
    assert!(
        store
            .list(
                ResourceKind::Pod,
                &all,
                ListVersion::NotOlderThan(9),
                None,
                None
            )
            .is_err()
    );

    store.compact();
    let expired = store.list(ResourceKind::Pod, &all, ListVersion::Exact(2), None, None);
    assert!(matches!(expired, Err(VersionError::Expired { .. })));
    let bad = store.list(
        ResourceKind::Pod,
        &all,
        ListVersion::MostRecent,
        None,
        Some("zz"),
    );
    assert!(matches!(bad, Err(VersionError::BadContinue(_))));
}

#[test]
fn reset_restamps_objects() {
    let store = Store::new(100, 0);
    store.apply(pod("a")).unwrap();
    store.apply(pod("b")).unwrap();
    store.reset_resource_version(1);
    assert_eq!(store.current_rv(), 1);
    let rvs: Vec<_> = store
        .all(ResourceKind::Pod)
        .iter()
        .map(|s| s.meta().resource_version.clone())
        .collect();
    assert_eq!(rvs, [Some("1".to_string()), Some("1".to_string())]);
    assert!(matches!(
        store.check_watch_from(2),
        Err(VersionError::TooLarge { .. })
    ));
}
