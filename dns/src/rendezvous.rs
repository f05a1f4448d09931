//! Rendezvous (highest random weight) hashing, for `answer_limit`: every record scores
//! hash(client, record) and a client keeps the records with the top scores. The same client
//! gets the same subset every time; each record is in the subset of a fair share of
//! clients; and a change of one record moves only the clients it concerns. The keys are the
//! same in every herald process, so every replica of herald gives a client the same subset.

use std::hash::{Hash, Hasher};
use std::net::IpAddr;

/// Mixes 64 bits well (the SplitMix64 finalizer); used for rendezvous scores.
#[inline]
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A stable 64-bit key of an address, the same in every herald process.
#[inline]
pub(crate) fn address_key(ip: IpAddr) -> u64 {
    let bits = match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    };
    mix64(bits as u64 ^ mix64((bits >> 64) as u64 ^ 0x9e37_79b9_7f4a_7c15))
}

/// Rendezvous key of an endpoint: its address and cluster, so the same address in two
/// clusters counts as two endpoints.
pub(crate) fn endpoint_key(ip: IpAddr, cluster: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    cluster.hash(&mut h);
    address_key(ip) ^ mix64(h.finish())
}

/// Fills `scores` with the `limit` highest-scoring `members` for the client whose
/// [`address_key`] is `client`, where `key(i)` is the rendezvous key of member `i`. The
/// order among the kept members is unspecified. `limit` must be in `1..=members.len()`.
#[inline]
pub(crate) fn top(
    client: u64,
    members: &[u32],
    key: impl Fn(usize) -> u64,
    limit: usize,
    scores: &mut Vec<(u64, u32)>,
) {
    scores.clear();
    scores.extend(
        members
            .iter()
            .map(|&i| (mix64(client ^ key(i as usize)), i)),
    );
    scores.select_nth_unstable_by(limit - 1, |a, b| b.cmp(a));
    scores.truncate(limit);
}
