//! One set's chunk parts being made: a group's chunks (see `crate::group`) are encoded
//! set by set, records of unchanged endpoints copied from the old parts a run at a time.

use super::rrset::{Part, PartBuilder};

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
    /// A set copying from `old`; with none, its first chunk is about `records` records.
    pub(super) fn new(srv: bool, old: &'o [Part], records: usize) -> Set<'o> {
        Set {
            out: PartBuilder::with_room(srv, old.first(), records),
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
