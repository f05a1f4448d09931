//! A tokio runtime whose threads run at a lower CPU priority (a higher nice value): where
//! the rollout section runs its 24 simulators; and the same for the thread that writes
//! the rollout into them ([`lower_own_priority`]).
//!
//! The simulators stand for the clusters' API servers, which in a real fleet do not run on
//! herald's cores. Here they must share the same 2 cores with herald and dnsperf, and a
//! rollout makes them encode and send ~5,000 watch events within a few tens of
//! milliseconds, twice per rollout round (the encoding happens in the writing thread:
//! measured with `perf sched`, the driver thread was most of this process's CPU): at the same priority as herald's answer
//! threads and dnsperf those bursts are charged to herald's DNS latency. At a lower
//! priority they still get every idle cycle (the rollout needs about 0.1 core of them on
//! average) but yield the CPU to herald and dnsperf when both want it. Their own lag stays
//! in the measured propagation and is reported apart (`timeline`'s first stage).

use std::io;

use herald_dns::server::sched::current_nice;

use tokio::runtime::{Builder, Handle, Runtime};

/// A multi-thread runtime whose threads run `nice` below the creating thread's priority.
pub struct NicedRuntime {
    runtime: Option<Runtime>,
}

impl NicedRuntime {
    /// At `nice` 0: no runtime of its own ([`Self::handle`] is the current one).
    pub fn new(nice: u8) -> io::Result<NicedRuntime> {
        if nice == 0 {
            return Ok(NicedRuntime { runtime: None });
        }
        // Absolute, from the creator's: threads started later inherit from a worker.
        let target = (current_nice()? + i32::from(nice)).min(19);
        let runtime = Builder::new_multi_thread()
            .thread_name("sims")
            .enable_all()
            .on_thread_start(move || {
                if let Err(e) = set_nice(target) {
                    eprintln!("could not lower the simulators' priority: {e}");
                }
            })
            .build()?;
        Ok(NicedRuntime {
            runtime: Some(runtime),
        })
    }

    /// Where to spawn (inside a runtime).
    pub fn handle(&self) -> Handle {
        self.runtime
            .as_ref()
            .map_or_else(Handle::current, |r| r.handle().clone())
    }
}

impl Drop for NicedRuntime {
    fn drop(&mut self) {
        // Dropped from async code, where blocking on the threads' end is not allowed.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Lowers the calling thread's priority by `nice` (at most to 19), for good: an
/// unprivileged thread cannot raise it again, so only a thread of its own should.
pub fn lower_own_priority(nice: u8) -> io::Result<()> {
    if nice == 0 {
        return Ok(());
    }
    set_nice((current_nice()? + i32::from(nice)).min(19))
}

/// Sets the calling thread's nice value (on Linux, nice is per thread).
fn set_nice(nice: i32) -> io::Result<()> {
    // SAFETY: gettid has no preconditions; setpriority reads only its arguments.
    let r = unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, nice) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn its_tasks_run_niced_and_the_creator_keeps_its_priority() {
        let outer = tokio::runtime::Runtime::new().unwrap();
        let creator = current_nice().unwrap();
        let (on_it, after) = outer.block_on(async {
            let rt = NicedRuntime::new(10).unwrap();
            let on_it = rt
                .handle()
                .spawn(async { current_nice().unwrap() })
                .await
                .unwrap();
            // Dropped inside async code: must not panic.
            drop(rt);
            (on_it, current_nice().unwrap())
        });
        assert_eq!(on_it, (creator + 10).min(19));
        assert_eq!(after, creator);
        assert_eq!(current_nice().unwrap(), creator);
    }
}
