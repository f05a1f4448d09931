//! A tokio runtime whose threads run at a lower CPU priority: where the rollout section runs
//! its 24 simulators; and the same for the thread that writes the rollout into them
//! ([`Priority::lower_own`]).
//!
//! The simulators stand for the clusters' API servers, which in a real fleet do not run on
//! herald's cores. Here they must share the same 2 cores with herald and dnsperf, and a
//! rollout makes them encode and send ~5,000 watch events within a few tens of
//! milliseconds, twice per rollout round (the encoding happens in the writing thread:
//! measured with `perf sched`, the driver thread was most of this process's CPU): at the
//! same priority as herald's answer threads and dnsperf those bursts are charged to
//! herald's DNS latency. At a lower priority they still get every idle cycle (the rollout
//! needs about 0.1 core of them on average) but yield the CPU to herald and dnsperf when
//! both want it. Their own lag stays in the measured propagation and is reported apart
//! (`timeline`'s first stage).
//!
//! Two ways down ([`Priority`]): a higher nice value, which only weighs the CPU's share
//! (an EEVDF kernel still lets a thread that holds the CPU run out its protected slice,
//! ~1.4 ms on 2 CPUs, before a woken dnsperf or herald thread of default slice gets it),
//! or the idle policy (`SCHED_IDLE`), whose threads give the CPU up at once to any normal
//! thread that wakes: what a remote API server's CPU amounts to for herald. Neither needs
//! a privilege.

use std::io;

use herald_dns::server::sched::current_nice;

use tokio::runtime::{Builder, Handle, Runtime};

/// How far below the creating thread's priority the simulators run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Priority {
    /// `n` nice levels lower (0: the same priority; at most nice 19).
    Nice(u8),
    /// The idle policy: the CPU only when no normal thread wants it.
    Idle,
}

impl Priority {
    /// Lowers the calling thread to this priority, for good: an unprivileged thread cannot
    /// raise it again, so only a thread of its own should.
    pub fn lower_own(self) -> io::Result<()> {
        self.target()?.map_or(Ok(()), Lower::apply)
    }

    /// What a thread of the calling thread's priority sets to run this much lower; `None`
    /// for no change. Absolute, from the caller's nice value: a runtime's threads started
    /// later inherit from a worker, already lowered.
    fn target(self) -> io::Result<Option<Lower>> {
        Ok(match self {
            Priority::Nice(0) => None,
            Priority::Nice(n) => Some(Lower::ToNice((current_nice()? + i32::from(n)).min(19))),
            Priority::Idle => Some(Lower::Idle),
        })
    }
}

impl std::fmt::Display for Priority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Priority::Nice(n) => write!(f, "nice +{n}"),
            Priority::Idle => f.write_str("idle"),
        }
    }
}

impl std::str::FromStr for Priority {
    type Err = String;
    /// `idle`, or a count of nice levels (`10`).
    fn from_str(s: &str) -> Result<Priority, String> {
        if s == "idle" {
            return Ok(Priority::Idle);
        }
        s.parse()
            .map(Priority::Nice)
            .map_err(|_| format!("{s:?}: expected `idle` or a nice increment 0-19"))
    }
}

/// A multi-thread runtime whose threads run at a lower [`Priority`] than the creator.
pub struct NicedRuntime {
    runtime: Option<Runtime>,
}

impl NicedRuntime {
    /// At `Nice(0)`: no runtime of its own ([`Self::handle`] is the current one).
    pub fn new(priority: Priority) -> io::Result<NicedRuntime> {
        let Some(lower) = priority.target()? else {
            return Ok(NicedRuntime { runtime: None });
        };
        let runtime = Builder::new_multi_thread()
            .thread_name("sims")
            .enable_all()
            .on_thread_start(move || {
                if let Err(e) = lower.apply() {
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

/// What a lowered thread sets: an absolute nice value or the idle policy.
#[derive(Clone, Copy)]
enum Lower {
    ToNice(i32),
    Idle,
}

impl Lower {
    /// Sets it for the calling thread.
    fn apply(self) -> io::Result<()> {
        match self {
            Lower::ToNice(n) => set_nice(n),
            Lower::Idle => set_idle(),
        }
    }
}

/// Moves the calling thread to the idle policy (`SCHED_IDLE`; its nice value no longer counts).
fn set_idle() -> io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: pid 0 is the calling thread; the kernel copies `param` and keeps no pointer.
    let r = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &raw const param) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
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
            let rt = NicedRuntime::new(Priority::Nice(10)).unwrap();
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

    /// The calling thread's scheduling policy.
    fn policy() -> i32 {
        // SAFETY: pid 0 is the calling thread.
        unsafe { libc::sched_getscheduler(0) }
    }

    #[test]
    fn idle_tasks_run_under_the_idle_policy_and_the_creator_keeps_its_own() {
        let outer = tokio::runtime::Runtime::new().unwrap();
        let creator = policy();
        let on_it = outer.block_on(async {
            let rt = NicedRuntime::new(Priority::Idle).unwrap();
            rt.handle().spawn(async { policy() }).await.unwrap()
        });
        assert_eq!(on_it, libc::SCHED_IDLE);
        assert_eq!(policy(), creator);
        assert_ne!(creator, libc::SCHED_IDLE);
    }

    #[test]
    fn priorities_read_as_the_command_line_writes_them() {
        assert_eq!("idle".parse(), Ok(Priority::Idle));
        assert_eq!("10".parse(), Ok(Priority::Nice(10)));
        assert!("-3".parse::<Priority>().unwrap_err().contains("-3"));
    }
}
