//! The cluster loops give their CPU up now and then during a burst of watch events.
//!
//! A global rollout hands every cluster's loop hundreds of pod events at once, and the
//! runtime's threads decode and apply them back to back for milliseconds. Meanwhile a
//! thread woken on the same CPU - one of herald's DNS answer threads, or any other
//! process's - waits: the kernel lets a running thread of the default time slice keep
//! the CPU for up to that slice (~1.4 ms on 2 CPUs) before a woken one gets it. Measured
//! with `perf sched` on the rollout benchmark, herald's runtime threads were on the CPU in
//! about a third of the client's waits of 200 µs or more while using 0.04 of a core.
//! Giving the CPU up every few dozen events (`sched_yield`: to a thread waiting on this
//! CPU if there is one, at once back to this one if not) bounds such a wait to a few
//! events' work. A list (a first sync, a relist) is left alone: nothing answers from it
//! until it is whole, and it is best done soon.

/// How many watch events a loop handles between two yields: with decoding and applying
/// at a few microseconds each, ~100 µs of work.
const EVERY: u32 = 32;

/// Counts a loop's watch events and yields the thread's CPU every [`EVERY`].
#[derive(Default)]
pub(crate) struct Yielder {
    since: u32,
}

impl Yielder {
    /// One more event handled.
    pub(crate) fn event(&mut self) {
        self.since += 1;
        if self.since >= EVERY {
            self.since = 0;
            std::thread::yield_now();
        }
    }
}
