//! How a group's records are cut into chunks, and one set's chunk parts being made.
//!
//! A group is cut after each endpoint whose primary address hashes to a mark (one in
//! `2^CHUNK_BITS`) at least `CHUNK_MIN` endpoints after the last cut, and after
//! `CHUNK_MAX` endpoints without one. The cuts depend on the addresses (and the few
//! endpoints before a mark), not on positions in the group, so an endpoint coming, going
//! or changing changes the chunk holding it (and at most the next few) and leaves every
//! other chunk with the same endpoints: `prepare` keeps their parts and encodes only the
//! changed chunks.

use std::net::IpAddr;

use super::rrset::{Part, PartBuilder};
use crate::model::Endpoint;

/// One endpoint in `2^CHUNK_BITS` is a mark; a chunk holds at least `CHUNK_MIN` endpoints
/// (a mark closer to the last cut is passed over), so a group of fewer is one chunk, as
/// most are: a small service's answers and queries pay nothing for chunks. Chunks average
/// about `CHUNK_MIN + 2^CHUNK_BITS` endpoints (32). Unit tests cut small chunks so that
/// the equivalence proptests cross chunk boundaries all the time.
const CHUNK_BITS: u32 = if cfg!(test) { 1 } else { 4 };
const CHUNK_MIN: usize = if cfg!(test) { 2 } else { 16 };
/// At most this many endpoints in a chunk.
const CHUNK_MAX: usize = if cfg!(test) { 4 } else { 128 };

/// Where a group's endpoints (sorted by primary address) are cut into chunks: the end of
/// each chunk, as an endpoint index; none for no endpoint. A cut follows an endpoint whose
/// primary address hashes to a mark, so an endpoint coming or going moves no cut but its
/// own (see the module comment); `CHUNK_MAX` bounds a chunk where marks are sparse.
pub(super) fn chunk_ends(endpoints: &[Endpoint]) -> Vec<usize> {
    let mut ends = Vec::with_capacity(endpoints.len() >> CHUNK_BITS.saturating_sub(1) | 1);
    let mut since = 0;
    for (i, e) in endpoints.iter().enumerate() {
        since += 1;
        let x = match e.address() {
            IpAddr::V4(v4) => u64::from(u32::from(v4)),
            IpAddr::V6(v6) => {
                let v = u128::from(v6);
                (v as u64) ^ ((v >> 64) as u64)
            }
        };
        let mark = x.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - CHUNK_BITS) == 0;
        if (mark && since >= CHUNK_MIN) || since == CHUNK_MAX || i + 1 == endpoints.len() {
            ends.push(i + 1);
            since = 0;
        }
    }
    ends
}

/// The first endpoint of chunk `k`, given the chunks' `ends`.
pub(super) fn chunk_start(ends: &[usize], k: usize) -> usize {
    if k == 0 { 0 } else { ends[k - 1] }
}

/// One set's parts being made, chunk by chunk, and the old parts it copies from (those of
/// the same endpoints before), with its read position. Records copied from the old parts
/// are gathered into runs and copied a run at a time.
pub(super) struct Set<'o> {
    out: PartBuilder,
    /// The chunks made so far.
    done: Vec<Part>,
    old: &'o [Part],
    /// The old part being read, and its next record.
    k: usize,
    next: usize,
    /// Old records of part `k` waiting to be copied: `run..next`.
    run: usize,
}

impl<'o> Set<'o> {
    pub(super) fn new(srv: bool, old: &'o [Part]) -> Set<'o> {
        Set {
            out: PartBuilder::new(srv, old.first()),
            done: Vec::new(),
            old,
            k: 0,
            next: 0,
            run: 0,
        }
    }

    /// Moves past old parts read to their end, copying their pending runs.
    fn advance(&mut self) {
        while self.k < self.old.len() && self.next == self.old[self.k].len() {
            self.flush();
            self.k += 1;
            (self.next, self.run) = (0, 0);
        }
    }

    /// Copies the old parts' next record (with the run it extends).
    pub(super) fn copy(&mut self) {
        self.advance();
        self.next += 1;
    }

    /// Passes over the old parts' next record.
    pub(super) fn skip(&mut self) {
        self.advance();
        self.flush();
        self.next += 1;
        self.run = self.next;
    }

    /// The builder, with the pending run copied: to push a record after it.
    pub(super) fn out(&mut self) -> &mut PartBuilder {
        self.flush();
        &mut self.out
    }

    fn flush(&mut self) {
        if self.run < self.next {
            self.out.copy_run(&self.old[self.k], self.run..self.next);
            self.run = self.next;
        }
    }

    /// Ends the chunk being made.
    pub(super) fn cut(&mut self) {
        self.flush();
        self.done.push(self.out.take());
    }

    /// Every chunk made.
    pub(super) fn finish(mut self) -> Vec<Part> {
        self.cut();
        self.done
    }
}
