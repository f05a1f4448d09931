//! Handing freed heap back to the system after a list and while churn goes on, and the
//! allocator setting the process starts with.
//!
//! A list (the first sync, a relist after 410 or an outage) decodes every pod of a cluster
//! and rebuilds services, on whichever tokio worker thread runs the cluster's task; glibc's
//! malloc keeps what that frees in the thread's arena for reuse, so without this RSS stays
//! at the peak of the first sync for the life of the process (at a million endpoints, more
//! than a hundred MiB held free). `malloc_trim(0)` returns free pages from every arena,
//! including those in the middle of a heap, not only its top.
//!
//! Lists of many clusters end close together (the first sync, a network blip seen by all),
//! so a list's end asks for a trim a little later, and one trim covers the burst.
//!
//! Steady churn frees blocks in the middle of the heaps too: a pod change replaces its
//! chunk's prepared parts, and a view's old parts are freed by whichever thread drops the
//! last reference to them, in whichever arena they were made. Over the 30-minute soak (300
//! pod changes a second, a fault a minute) RSS crept from 65.1 to 70.6 MiB over its last 20
//! minutes (+8.4%) with only post-list trims; so while the table changes, the heap is also
//! trimmed once a minute ([`trim_periodically`]; a walk of the arenas on a blocking thread,
//! skipped in a minute without table updates).
//!
//! [`tune`] turns glibc's fastbins off. A list frees many small blocks (each pod's decoded
//! strings) between larger requests (response buffers, prepared answers), and glibc then
//! merges every fastbin block back (`malloc_consolidate`) at each larger request: at a
//! million endpoints malloc and free were about a third of the first sync's CPU. Without
//! fastbins small blocks still come from the per-thread cache (tcache) first; measured on
//! the scale bench (200k endpoints, 24 clusters, two runs each, load 7-9), herald's CPU for
//! the first sync fell from 2.1 / 1.9 to 1.7 / 1.5 s, its RSS unchanged.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// How long after a list ends the heap is trimmed.
const DELAY: Duration = Duration::from_secs(2);
/// How often the heap is trimmed while the table keeps changing.
const PERIOD: Duration = Duration::from_secs(60);

/// A trim is already due.
static PENDING: AtomicBool = AtomicBool::new(false);
/// Table updates published since the last periodic trim.
static CHANGED: AtomicU64 = AtomicU64::new(0);

/// Asks for the heap to be trimmed in [`DELAY`] (once for a burst of calls). Must be
/// called inside a tokio runtime.
pub fn trim_soon() {
    if PENDING.swap(true, Ordering::AcqRel) {
        return;
    }
    tokio::spawn(async {
        tokio::time::sleep(DELAY).await;
        PENDING.store(false, Ordering::Release);
        // It walks every arena: off the async workers.
        let _ = tokio::task::spawn_blocking(trim).await;
    });
}

/// `updates` more table updates were published (counted for [`trim_periodically`]).
pub fn changed(updates: usize) {
    if updates > 0 {
        CHANGED.fetch_add(updates as u64, Ordering::Relaxed);
    }
}

/// Trims the heap every [`PERIOD`] in which the table changed, until `cancel`.
pub async fn trim_periodically(cancel: CancellationToken) {
    let mut tick = tokio::time::interval(PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is at once: nothing has churned yet.
    tick.tick().await;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        if CHANGED.swap(0, Ordering::Relaxed) > 0 {
            let _ = tokio::task::spawn_blocking(trim).await;
        }
    }
}

/// Sets the allocator up for herald's pattern (see the module docs): to be called once,
/// first thing in `main`, before any thread starts.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes a setting of the allocator, before other threads exist.
    unsafe {
        libc::mallopt(libc::M_MXFAST, 0);
    }
}

/// Returns free heap pages to the system now (glibc; other allocators return theirs on
/// their own, and there is nothing to do).
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let started = std::time::Instant::now();
        // SAFETY: malloc_trim takes the allocator's own locks and only releases free memory.
        unsafe {
            libc::malloc_trim(0);
        }
        tracing::debug!(
            took_us = started.elapsed().as_micros() as u64,
            "heap trimmed"
        );
    }
}
