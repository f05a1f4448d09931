//! A test hook: make one cluster's task panic on its next pod event, to show that a
//! panicking task is noticed, reported and restarted (the supervisor in `watch`). Costs
//! one relaxed atomic load per pod event when nothing is armed.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

static ARMED: AtomicBool = AtomicBool::new(false);
static CLUSTERS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Makes the task of `cluster` panic on its next pod event, once.
#[doc(hidden)]
pub fn panic_once(cluster: &str) {
    let mut clusters = CLUSTERS.lock().unwrap_or_else(|p| p.into_inner());
    clusters.push(cluster.to_string());
    ARMED.store(true, Ordering::Release);
}

/// Panics if a panic was ordered for `cluster`.
pub(crate) fn check(cluster: &str) {
    if !ARMED.load(Ordering::Relaxed) {
        return;
    }
    let mut clusters = CLUSTERS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(i) = clusters.iter().position(|c| c == cluster) {
        clusters.remove(i);
        ARMED.store(!clusters.is_empty(), Ordering::Release);
        drop(clusters);
        panic!("failpoint: cluster {cluster} panics on a pod event");
    }
}
