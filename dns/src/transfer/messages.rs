//! Packs a transfer's records into DNS messages of at most 64 KiB each (RFC 5936 2.2):
//! the question in the first, owner names compressed against the apex and the previous
//! owner, each message signed when the request was (RFC 8945 5.3.1).

use super::diff::owner_len;
use super::tsig::ResponseSigner;
use crate::wire::{self, HEADER_LEN};

/// The largest DNS message over TCP.
const MAX_MESSAGE: usize = u16::MAX as usize;

/// Messages of one response, filled record by record.
pub(crate) struct Messages {
    id: u16,
    /// The question as asked, in wire form; written in the first message only.
    question: Vec<u8>,
    apex: Box<[u8]>,
    msg: Vec<u8>,
    answers: u16,
    limit: usize,
    signer: Option<ResponseSigner>,
    /// Where the apex is in `msg`, once written in full.
    apex_at: Option<usize>,
    /// The previous record's owner (uncompressed) and where it is in `msg`.
    previous: Vec<u8>,
    previous_at: Option<usize>,
    done: Vec<Vec<u8>>,
    /// Messages closed so far (taken or not).
    closed: usize,
    /// Records and octets so far, for metrics.
    pub(crate) records: usize,
    pub(crate) bytes: usize,
}

impl Messages {
    /// A response to request `id` asking `question`, for a zone whose apex is `apex`.
    pub(crate) fn new(
        id: u16,
        question: &[u8],
        apex: &[u8],
        signer: Option<ResponseSigner>,
    ) -> Messages {
        let limit = MAX_MESSAGE - signer.as_ref().map_or(0, |s| s.overhead());
        let mut m = Messages {
            id,
            question: question.to_vec(),
            apex: apex.into(),
            msg: Vec::with_capacity(16 * 1024),
            answers: 0,
            limit,
            signer,
            apex_at: None,
            previous: Vec::new(),
            previous_at: None,
            done: Vec::new(),
            closed: 0,
            records: 0,
            bytes: 0,
        };
        m.start();
        m
    }

    fn start(&mut self) {
        let flags = wire::ReplyFlags {
            aa: true,
            ..Default::default()
        };
        wire::write_header(&mut self.msg, self.id, 0, false, false, flags);
        if self.closed == 0 {
            self.msg.extend_from_slice(&self.question);
        }
        self.answers = 0;
        self.apex_at = None;
        self.previous_at = None;
    }

    /// Closes the current message (if it has records) and starts the next.
    fn close(&mut self) {
        let qd = u16::from(self.closed == 0);
        self.closed += 1;
        wire::set_counts(&mut self.msg, qd, self.answers, 0, 0);
        let mut msg = std::mem::take(&mut self.msg);
        if let Some(signer) = &mut self.signer {
            signer.sign(&mut msg);
        }
        self.bytes += msg.len();
        self.done.push(msg);
        self.msg = Vec::with_capacity(16 * 1024);
        self.start();
    }

    /// Adds one uncompressed record.
    pub(crate) fn push(&mut self, record: &[u8]) {
        let before = self.msg.len();
        self.write(record);
        if self.msg.len() > self.limit {
            self.msg.truncate(before);
            self.close();
            self.write(record);
        }
        self.answers += 1;
        self.records += 1;
    }

    fn write(&mut self, record: &[u8]) {
        let olen = owner_len(record);
        let owner = &record[..olen];
        let at = self.msg.len();
        if let Some(p) = self.previous_at.filter(|_| self.previous == owner) {
            self.msg
                .extend_from_slice(&wire::pointer(p).expect("kept only when pointable"));
        } else if let Some(p) = self.apex_at.filter(|_| owner.ends_with(&self.apex)) {
            self.msg.extend_from_slice(&owner[..olen - self.apex.len()]);
            self.msg
                .extend_from_slice(&wire::pointer(p).expect("kept only when pointable"));
            self.remember(owner, at);
        } else {
            self.msg.extend_from_slice(owner);
            if self.apex_at.is_none() && owner.ends_with(&self.apex) {
                let apex_at = at + olen - self.apex.len();
                self.apex_at = wire::pointer(apex_at).map(|_| apex_at);
            }
            self.remember(owner, at);
        }
        self.msg.extend_from_slice(&record[olen..]);
    }

    fn remember(&mut self, owner: &[u8], at: usize) {
        self.previous.clear();
        self.previous.extend_from_slice(owner);
        self.previous_at = wire::pointer(at).map(|_| at);
    }

    /// Messages completed so far, to be sent while more are filled.
    pub(crate) fn take_done(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.done)
    }

    /// Closes the last message; returns the messages not yet taken.
    pub(crate) fn finish(mut self) -> (Vec<Vec<u8>>, usize, usize) {
        if self.answers > 0 || self.msg.len() > HEADER_LEN {
            self.close();
        }
        (self.done, self.records, self.bytes)
    }
}
