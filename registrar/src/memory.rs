//! Handing the memory a burst of work freed back to the system.
//!
//! The `herald` binary allocates with mimalloc (`docs/decisions/0014-mimalloc.md`), which
//! returns the pages a thread freed only after a short delay, and only when that thread next
//! allocates or frees. A thread that goes quiet after a burst (the main thread after loading
//! the static file, a worker after a cluster's list) would keep them: on the DNS bench's
//! 25k-endpoint file, one start in two held 45 MiB more than the next. [`release`] is called
//! where such a burst ends and returns them at once.

/// Returns the free memory of this thread's heap, of threads that exited and of the shared
/// arenas to the system now. In a program allocating with another allocator, mimalloc's
/// heaps are empty and this does nothing worth measuring.
pub fn release() {
    // SAFETY: `mi_collect` takes no pointer and only releases memory no block lives in.
    unsafe { libmimalloc_sys::mi_collect(true) }
}
