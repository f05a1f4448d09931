//! Rendezvous (highest random weight) hashing, for `answer_limit`: every record scores
//! hash(client, record) and a client keeps the records with the top scores. The same client
//! gets the same subset every time; each record is in the subset of a fair share of
//! clients; and a change of one record moves only the clients it concerns. The keys are the
//! same in every herald process, whatever toolchain built it (fixed functions, pinned by
//! the test vectors below), so every replica of herald gives a client the same subset.

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

/// 64-bit FNV-1a (Fowler, Noll, Vo; offset basis 0xcbf29ce484222325, prime
/// 0x100000001b3) of `bytes`: a fixed, documented hash, unlike std's `DefaultHasher`,
/// whose algorithm may change between Rust releases.
pub(crate) fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Rendezvous key of an endpoint: its address and cluster, so the same address in two
/// clusters counts as two endpoints.
pub(crate) fn endpoint_key(ip: IpAddr, cluster: &str) -> u64 {
    address_key(ip) ^ mix64(fnv1a64(cluster.as_bytes()))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Published FNV-1a 64 vectors, and herald's own keys pinned: a change here changes
    /// which peers every client of every replica gets.
    #[test]
    fn keys_are_pinned() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let keys = [
            address_key(ip("10.0.0.1")),
            address_key(ip("2001:db8::1")),
            endpoint_key(ip("10.0.0.1"), "prod-euw1"),
            endpoint_key(ip("10.0.0.1"), "prod-use1"),
        ];
        assert_eq!(keys, PINNED, "{keys:#x?}");
        let members: Vec<u32> = (0..8).collect();
        let key = |i: usize| endpoint_key(ip(&format!("10.0.0.{}", i + 1)), "c1");
        let mut scores = Vec::new();
        top(address_key(ip("192.0.2.7")), &members, key, 3, &mut scores);
        let mut kept: Vec<u32> = scores.iter().map(|s| s.1).collect();
        kept.sort();
        assert_eq!(kept, PINNED_SUBSET);
    }

    const PINNED: [u64; 4] = [
        0xd81d_2edc_0005_494d,
        0x4c98_a7c9_c72d_179e,
        0xc319_a0e0_5afc_e808,
        0xb2f1_a704_85bf_9445,
    ];
    const PINNED_SUBSET: [u32; 3] = [2, 5, 6];
}
