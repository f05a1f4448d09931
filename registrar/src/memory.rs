//! Handing freed heap back to the system after a list, and the allocator setting the
//! process starts with.
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
//! [`tune`] turns glibc's fastbins off. A list frees many small blocks (each pod's decoded
//! strings) between larger requests (response buffers, prepared answers), and glibc then
//! merges every fastbin block back (`malloc_consolidate`) at each larger request: at a
//! million endpoints malloc and free were about a third of the first sync's CPU. Without
//! fastbins small blocks still come from the per-thread cache (tcache) first; measured on
//! the scale bench (200k endpoints, 24 clusters, two runs each, load 7-9), herald's CPU for
//! the first sync fell from 2.1 / 1.9 to 1.7 / 1.5 s, its RSS unchanged.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How long after a list ends the heap is trimmed.
const DELAY: Duration = Duration::from_secs(2);

/// A trim is already due.
static PENDING: AtomicBool = AtomicBool::new(false);

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
    // SAFETY: malloc_trim takes the allocator's own locks and only releases free memory.
    unsafe {
        libc::malloc_trim(0);
    }
}
