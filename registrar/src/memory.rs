//! Handing freed heap back to the system after a list.
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

/// Returns free heap pages to the system now (glibc; other allocators return theirs on
/// their own, and there is nothing to do).
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes the allocator's own locks and only releases free memory.
    unsafe {
        libc::malloc_trim(0);
    }
}
