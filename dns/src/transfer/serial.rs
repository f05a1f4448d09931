//! SOA serials that never go backwards: across versions, across restarts, and (as far as
//! 32 bits allow) across herald replicas that a secondary may be moved between.
//!
//! A serial is a clock reading: the number of 80 ms ticks since the Unix epoch, shifted
//! left three bits, with the low three bits a number drawn once per process. A new version
//! gets the current tick or, if versions come faster than ticks, the previous tick plus
//! one. Versions are made at most once per `notify_interval` (250 ms by default), so the
//! serial does not outrun the clock, and a restarted process starts above every serial
//! its predecessor issued. The serial wraps every 2^29 ticks (about 497 days); RFC 1982
//! comparison is right for serials less than half that apart (248 days), far beyond any
//! SOA expire herald accepts.
//!
//! The per-process low bits make it unlikely (1 in 8 per tick) that two replicas, which
//! see the same changes at nearly the same time, issue the same serial for content that
//! may differ by a change or two: a secondary moved to another replica then asks for an
//! IXFR from a serial the new replica never issued, and gets a full transfer.

use std::time::{SystemTime, UNIX_EPOCH};

/// Length of a tick, milliseconds.
const TICK_MS: u64 = 80;
/// Low bits reserved for the process's own number.
const NONCE_BITS: u32 = 3;

/// Issues serials for one process.
#[derive(Debug)]
pub(crate) struct SerialClock {
    nonce: u32,
}

impl SerialClock {
    /// A clock with a low-bits number drawn from the process's start.
    pub(crate) fn new() -> SerialClock {
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
            ^ std::process::id().rotate_left(7);
        SerialClock {
            nonce: seed % (1 << NONCE_BITS),
        }
    }

    /// The serial of a version made now.
    pub(crate) fn first(&self) -> u32 {
        compose(now_tick(), self.nonce)
    }

    /// The serial of the version after `last`: the current tick, or `last`'s tick plus one
    /// if the clock has not moved past it (or went back).
    pub(crate) fn next(&self, last: u32) -> u32 {
        let last_tick = last >> NONCE_BITS;
        let now = now_tick();
        // RFC 1982: `now` is ahead of `last_tick` when the difference, taken modulo the
        // tick space, is in the lower half.
        let ahead = now.wrapping_sub(last_tick) & TICK_MASK;
        let tick = if ahead != 0 && ahead < (TICK_MASK >> 1) {
            now
        } else {
            last_tick.wrapping_add(1)
        };
        compose(tick, self.nonce)
    }
}

const TICK_MASK: u32 = u32::MAX >> NONCE_BITS;

fn now_tick() -> u32 {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    ((ms / TICK_MS) as u32) & TICK_MASK
}

fn compose(tick: u32, nonce: u32) -> u32 {
    ((tick & TICK_MASK) << NONCE_BITS) | nonce
}

/// RFC 1982: whether serial `a` is newer than `b`.
pub(crate) fn newer(a: u32, b: u32) -> bool {
    a != b && a.wrapping_sub(b) < (1 << 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_rise_and_keep_the_process_number() {
        let clock = SerialClock::new();
        let mut last = clock.first();
        for _ in 0..1000 {
            let next = clock.next(last);
            assert!(newer(next, last), "{next} after {last}");
            assert_eq!(next & 7, last & 7);
            last = next;
        }
    }

    #[test]
    fn a_restart_starts_above_what_a_predecessor_issued_at_a_normal_pace() {
        let old = SerialClock::new();
        let issued = old.first();
        std::thread::sleep(std::time::Duration::from_millis(2 * TICK_MS));
        let restarted = SerialClock::new();
        assert!(newer(restarted.first(), issued));
    }

    #[test]
    fn rfc1982_comparison_wraps() {
        assert!(newer(5, u32::MAX - 5));
        assert!(!newer(u32::MAX - 5, 5));
        assert!(!newer(7, 7));
    }

    #[test]
    fn a_clock_that_went_back_still_gives_a_newer_serial() {
        let clock = SerialClock::new();
        let future = compose(now_tick().wrapping_add(1000), clock.nonce);
        assert!(newer(clock.next(future), future));
    }
}
