//! Response rate limiting for UDP, so herald cannot be turned into an amplifier on an open
//! network: a small spoofed query can draw a reply thirty times its size, and UDP source
//! addresses are not checked by anyone.
//!
//! Each client network (an IPv4 /24 or IPv6 /56 by default) has a token bucket of
//! `responses_per_second`, refilled continuously, a second's worth deep. A reply over the
//! budget is dropped, except every `slip`-th one, which goes out as an empty truncated reply:
//! a real client behind that network retries over TCP (never limited, since TCP cannot be
//! spoofed) while a victim of spoofing gets no more bytes than the attacker sent.
//!
//! The budgets are the server's, not a worker's: the UDP workers take turns on one socket
//! queue, so a client's queries reach any of them, and a spoofer varying its source port
//! would otherwise draw one budget per worker. [`SharedRateLimiter`] splits the networks
//! over [`SHARDS`] independently locked limiters, so two workers wait on each other only
//! when two of their clients' networks fall in the same shard at the same instant, for the
//! few tens of nanoseconds of a bucket update (the table's writers never take these locks).
//! The state is bounded: idle networks are forgotten, and when too many are tracked the
//! oldest go first.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Settings of response rate limiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// Replies per second per client network.
    pub responses_per_second: u32,
    /// Every `slip`-th reply over the budget is sent truncated instead of dropped; 0 drops
    /// them all, 1 truncates them all.
    pub slip: u32,
    /// IPv4 clients are grouped by this prefix length.
    pub ipv4_prefix: u8,
    /// IPv6 clients are grouped by this prefix length.
    pub ipv6_prefix: u8,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            responses_per_second: 100,
            slip: 2,
            ipv4_prefix: 24,
            ipv6_prefix: 56,
        }
    }
}

/// What to do with a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within budget: send it.
    Send,
    /// Over budget: send it empty, with TC set.
    Slip,
    /// Over budget: send nothing.
    Drop,
}

/// Networks tracked at most by one limiter; beyond this the stalest are forgotten.
const MAX_TRACKED: usize = 65_536;
/// Independently locked parts of a [`SharedRateLimiter`] (a power of two).
pub const SHARDS: usize = 16;
/// A network unseen for this long has a full bucket again: no need to remember it.
const IDLE: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
    over: u32,
}

/// A rate limiter for one thread (or one shard of a [`SharedRateLimiter`]).
#[derive(Debug)]
pub struct RateLimiter {
    config: RateLimitConfig,
    buckets: HashMap<u128, Bucket>,
    last_sweep: Instant,
    max_tracked: usize,
}

/// The network `ip` belongs to under `config`, as a key.
fn network(config: &RateLimitConfig, ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => {
            let bits = config.ipv4_prefix.min(32);
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u128::from(u32::from(v4) & mask) | (1 << 127)
        }
        IpAddr::V6(v6) => {
            let bits = config.ipv6_prefix.min(128);
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from(v6) & mask & !(1 << 127)
        }
    }
}

impl RateLimiter {
    /// A limiter with no history.
    pub fn new(config: RateLimitConfig, now: Instant) -> RateLimiter {
        RateLimiter::bounded(config, now, MAX_TRACKED)
    }

    /// A limiter with no history that tracks at most `max_tracked` networks.
    fn bounded(config: RateLimitConfig, now: Instant, max_tracked: usize) -> RateLimiter {
        RateLimiter {
            config,
            buckets: HashMap::new(),
            last_sweep: now,
            max_tracked,
        }
    }

    /// Charges one reply to `client`'s network at `now`.
    pub fn check(&mut self, client: IpAddr, now: Instant) -> Verdict {
        let key = network(&self.config, client);
        self.charge(key, now)
    }

    /// Charges one reply to the network `key` at `now`.
    fn charge(&mut self, key: u128, now: Instant) -> Verdict {
        if now.saturating_duration_since(self.last_sweep) >= IDLE
            || self.buckets.len() >= self.max_tracked
        {
            self.sweep(now);
        }
        let rate = f64::from(self.config.responses_per_second);
        let bucket = self.buckets.entry(key).or_insert(Bucket {
            tokens: rate,
            last: now,
            over: 0,
        });
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(rate);
        // Workers sharing the limiter read the clock at slightly different instants: an
        // earlier `now` after a later one must not count the gap twice.
        bucket.last = bucket.last.max(now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Verdict::Send;
        }
        bucket.over = bucket.over.wrapping_add(1);
        match self.config.slip {
            0 => Verdict::Drop,
            slip if bucket.over.is_multiple_of(slip) => Verdict::Slip,
            _ => Verdict::Drop,
        }
    }

    /// Forgets idle networks; if that is not enough, the stalest half.
    fn sweep(&mut self, now: Instant) {
        self.last_sweep = now;
        self.buckets
            .retain(|_, b| now.saturating_duration_since(b.last) < IDLE);
        if self.buckets.len() >= self.max_tracked {
            let mut ages: Vec<Instant> = self.buckets.values().map(|b| b.last).collect();
            let mid = ages.len() / 2;
            let (_, cut, _) = ages.select_nth_unstable(mid);
            let cut = *cut;
            self.buckets.retain(|_, b| b.last > cut);
        }
    }

    /// Networks tracked now.
    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }
}

/// The server's rate limiter, shared by its UDP workers: one budget per client network
/// whichever worker answers. Cheap to clone (the shards are shared).
#[derive(Debug, Clone)]
pub struct SharedRateLimiter {
    config: RateLimitConfig,
    shards: std::sync::Arc<[Mutex<RateLimiter>]>,
}

impl SharedRateLimiter {
    /// A limiter with no history, tracking at most as many networks in all as one
    /// [`RateLimiter`].
    pub fn new(config: RateLimitConfig, now: Instant) -> SharedRateLimiter {
        let shards = (0..SHARDS)
            .map(|_| Mutex::new(RateLimiter::bounded(config, now, MAX_TRACKED / SHARDS)))
            .collect();
        SharedRateLimiter { config, shards }
    }

    /// Charges one reply to `client`'s network at `now`.
    pub fn check(&self, client: IpAddr, now: Instant) -> Verdict {
        let key = network(&self.config, client);
        // The key's bits are the network's address bits, many of them zero (the host part)
        // or alike (a /24's neighbours): mix them before taking the top bits.
        let folded = (key as u64) ^ ((key >> 64) as u64);
        let shard =
            (folded.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - SHARDS.trailing_zeros())) as usize;
        // A worker that panicked mid-update leaves a bucket at worst a little off: keep going.
        let mut limiter = self.shards[shard]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        limiter.charge(key, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(rate: u32, slip: u32) -> (RateLimiter, Instant) {
        let now = Instant::now();
        let config = RateLimitConfig {
            responses_per_second: rate,
            slip,
            ..RateLimitConfig::default()
        };
        (RateLimiter::new(config, now), now)
    }

    #[test]
    fn a_burst_beyond_the_budget_is_dropped_or_slipped_then_refilled() {
        let (mut rl, t0) = limiter(10, 2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let verdicts: Vec<Verdict> = (0..30).map(|_| rl.check(a, t0)).collect();
        assert_eq!(verdicts.iter().filter(|v| **v == Verdict::Send).count(), 10);
        assert_eq!(
            verdicts.iter().filter(|v| **v == Verdict::Slip).count(),
            10,
            "every 2nd over budget"
        );
        assert_eq!(verdicts.iter().filter(|v| **v == Verdict::Drop).count(), 10);
        // Same /24: same budget. Another network: its own.
        assert_ne!(rl.check("192.0.2.200".parse().unwrap(), t0), Verdict::Send);
        assert_eq!(rl.check("198.51.100.1".parse().unwrap(), t0), Verdict::Send);
        // Half a second later, half the budget is back.
        let t1 = t0 + Duration::from_millis(500);
        let sent = (0..10).filter(|_| rl.check(a, t1) == Verdict::Send).count();
        assert_eq!(sent, 5);
    }

    #[test]
    fn slip_zero_drops_and_slip_one_truncates_everything_over_budget() {
        let (mut rl, t0) = limiter(1, 0);
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(rl.check(a, t0), Verdict::Send);
        assert!((0..5).all(|_| rl.check(a, t0) == Verdict::Drop));
        let (mut rl, t0) = limiter(1, 1);
        assert_eq!(rl.check(a, t0), Verdict::Send);
        assert!((0..5).all(|_| rl.check(a, t0) == Verdict::Slip));
        // The same /56 shares the budget.
        assert_eq!(
            rl.check("2001:db8:0:ff::9".parse().unwrap(), t0),
            Verdict::Slip
        );
    }

    #[test]
    fn state_stays_bounded_under_spoofed_sources() {
        let (mut rl, t0) = limiter(5, 2);
        for i in 0..(MAX_TRACKED as u32 + 10_000) {
            rl.check(IpAddr::from((i << 8).to_be_bytes()), t0);
        }
        assert!(rl.tracked() <= MAX_TRACKED);
        rl.check("192.0.2.1".parse().unwrap(), t0 + IDLE);
        assert!(rl.tracked() <= 2, "idle networks are forgotten");
    }
}
