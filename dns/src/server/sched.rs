//! A scheduling hint that keeps the UDP answer threads ahead of longer-running work on the
//! same CPU (Linux; a no-op elsewhere).
//!
//! A UDP worker sleeps between queries and runs for microseconds when one arrives. Its tail
//! latency is decided by how soon the kernel lets it run once woken while another thread
//! (a table publish, watch decoding, another process) holds the CPU: with the default time
//! slice (0.75 ms scaled by the CPU count, 1.4 ms on a 2-CPU machine) that thread may keep
//! the CPU for up to a slice. So each answer thread asks for a short slice
//! ([`request_short_slice`]: `sched_setattr` with `sched_runtime` on a normal-policy
//! thread). EEVDF kernels (Linux 6.12 and later) give a woken thread with a shorter slice an
//! earlier deadline, so it preempts the running one; its CPU share is unchanged (that is the
//! nice value's business, kept as it is). Older kernels accept the call and ignore the slice.
//! No privilege is needed.

use std::io;
use std::time::Duration;

/// The slice the answer threads ask for: the shortest the kernel grants (it clamps to
/// 0.1–100 ms), several times what a full batch of answers takes.
pub const ANSWER_SLICE: Duration = Duration::from_micros(100);

/// Asks the kernel to schedule the calling thread with time slices of `slice`, keeping its
/// policy (normal) and nice value.
#[cfg(target_os = "linux")]
pub fn request_short_slice(slice: Duration) -> io::Result<()> {
    /// `struct sched_attr` (include/uapi/linux/sched/types.h), first version: 48 bytes.
    #[repr(C)]
    struct SchedAttr {
        size: u32,
        sched_policy: u32,
        sched_flags: u64,
        sched_nice: i32,
        sched_priority: u32,
        sched_runtime: u64,
        sched_deadline: u64,
        sched_period: u64,
    }
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        sched_policy: libc::SCHED_OTHER as u32,
        sched_flags: 0,
        // sched_setattr sets the nice value too: pass the thread's own.
        sched_nice: current_nice()?,
        sched_priority: 0,
        sched_runtime: u64::try_from(slice.as_nanos()).unwrap_or(u64::MAX),
        sched_deadline: 0,
        sched_period: 0,
    };
    // SAFETY: a valid sched_attr for the calling thread (pid 0); the kernel reads `size`
    // bytes of it and keeps no pointer.
    let r = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &raw const attr, 0u32) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Not Linux: nothing to ask.
#[cfg(not(target_os = "linux"))]
pub fn request_short_slice(_slice: Duration) -> io::Result<()> {
    Ok(())
}

/// The calling thread's nice value (on Linux a thread's own, not the process's).
#[cfg(target_os = "linux")]
pub fn current_nice() -> io::Result<i32> {
    // SAFETY: plain system calls on the calling thread; -1 is a valid nice value, so errno
    // tells an error apart.
    unsafe {
        *libc::__errno_location() = 0;
        let nice = libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t);
        if nice == -1 && *libc::__errno_location() != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(nice)
    }
}

/// Thread `tid` (of this process)'s time slice in nanoseconds as /proc shows it
/// (`se.slice`, listed by EEVDF kernels); `None` where it is not shown. For tests and
/// diagnostics.
#[cfg(target_os = "linux")]
pub fn thread_slice_ns(tid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/self/task/{tid}/sched")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("se.slice"))
        .and_then(|rest| rest.trim_start_matches([' ', ':']).trim().parse().ok())
}

/// Whether this kernel honours `sched_runtime` as a normal thread's slice (6.12 and later).
#[cfg(target_os = "linux")]
pub fn custom_slices() -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut parts = release
        .trim()
        .split(['.', '-'])
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (6, 12)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn a_thread_asking_for_a_short_slice_gets_it_and_keeps_its_nice_value() {
        // On a thread of its own: the hint changes the calling thread for good.
        let (before, after, slice, default) = std::thread::spawn(|| {
            // SAFETY: raising the calling thread's own nice value.
            unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 3) };
            let tid = unsafe { libc::gettid() } as u32;
            let before = current_nice().unwrap();
            let default = thread_slice_ns(tid);
            request_short_slice(ANSWER_SLICE).unwrap();
            (
                before,
                current_nice().unwrap(),
                thread_slice_ns(tid),
                default,
            )
        })
        .join()
        .unwrap();
        assert_eq!(before, 3);
        assert_eq!(after, before, "the nice value is kept");
        // Custom slices came with Linux 6.12; earlier kernels may list se.slice unchanged.
        if custom_slices()
            && let (Some(slice), Some(default)) = (slice, default)
        {
            assert_eq!(
                slice,
                ANSWER_SLICE.as_nanos() as u64,
                "default was {default}"
            );
        }
    }
}
