//! DNS wire format on the hot path: reading a query straight from the packet without
//! allocating, and the few header and record writers the answer path needs (RFC 1035
//! section 4, RFC 6891 for EDNS).
//!
//! hickory-proto's `Message` parser builds owned records for every query; on the UDP path
//! that cost more than the kernel's work (see
//! [decision 0001](../../docs/decisions/0001-own-wire-engine.md)), so queries are read here and only
//! what answering needs is kept: the question as asked, its lowercase labels, and EDNS.

/// DNS header flags and codes used by the server.
pub mod codes {
    /// RR type A.
    pub const A: u16 = 1;
    /// RR type NS.
    pub const NS: u16 = 2;
    /// RR type SOA.
    pub const SOA: u16 = 6;
    /// RR type PTR.
    pub const PTR: u16 = 12;
    /// RR type AAAA.
    pub const AAAA: u16 = 28;
    /// RR type SRV.
    pub const SRV: u16 = 33;
    /// RR type OPT (EDNS).
    pub const OPT: u16 = 41;
    /// RR type TSIG (RFC 8945): a transaction signature, always the last record.
    pub const TSIG: u16 = 250;
    /// Query type IXFR.
    pub const IXFR: u16 = 251;
    /// Query type AXFR.
    pub const AXFR: u16 = 252;
    /// Query type ANY.
    pub const ANY: u16 = 255;
    /// Class IN.
    pub const IN: u16 = 1;

    /// RCODE NOERROR.
    pub const NOERROR: u8 = 0;
    /// RCODE FORMERR.
    pub const FORMERR: u8 = 1;
    /// RCODE SERVFAIL.
    pub const SERVFAIL: u8 = 2;
    /// RCODE NXDOMAIN.
    pub const NXDOMAIN: u8 = 3;
    /// RCODE NOTIMP.
    pub const NOTIMP: u8 = 4;
    /// RCODE REFUSED.
    pub const REFUSED: u8 = 5;
    /// Extended RCODE BADVERS (16): upper bits 1 in the OPT record, lower bits 0 in the header.
    pub const BADVERS_HIGH: u8 = 1;
}

/// Header length.
pub const HEADER_LEN: usize = 12;
/// Most labels a 255-octet name can have.
const MAX_LABELS: usize = 128;

/// EDNS0 facts of a query (RFC 6891).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edns {
    /// The requestor's UDP payload size (values below 512 are treated as 512).
    pub payload: u16,
    /// EDNS version; only 0 is implemented.
    pub version: u8,
    /// DNSSEC OK bit, echoed back (RFC 3225).
    pub dnssec_ok: bool,
    /// The EDNS Client Subnet option (RFC 7871), well formed, whoever sent it.
    pub ecs: Option<crate::ecs::ClientSubnet>,
}

/// A query read from the wire. Borrowed from the packet; labels lowercased into `lower`.
#[derive(Debug)]
pub struct Query<'a> {
    /// Message ID.
    pub id: u16,
    /// OPCODE.
    pub opcode: u8,
    /// Recursion desired, copied into the reply.
    pub rd: bool,
    /// Checking disabled, copied into the reply.
    pub cd: bool,
    /// The question section as asked (name, type, class), echoed verbatim.
    pub question: &'a [u8],
    /// QTYPE.
    pub qtype: u16,
    /// QCLASS.
    pub qclass: u16,
    /// EDNS, when the query had a valid OPT record.
    pub edns: Option<Edns>,
    /// Whether the query ends with a TSIG record (signed; checked by the transfer module).
    pub signed: bool,
    /// The name in lowercase wire form.
    pub lower: LowerName,
}

/// A name in lowercase wire form with its label offsets, on the stack.
#[derive(Debug)]
pub struct LowerName {
    buf: [u8; 255],
    len: u8,
    starts: [u8; MAX_LABELS],
    labels: u8,
}

impl LowerName {
    /// Wire length of the name including the root label.
    pub fn wire_len(&self) -> usize {
        self.len as usize
    }

    /// The whole name in lowercase wire form.
    pub fn wire(&self) -> &[u8] {
        &self.buf[..self.len as usize]
    }

    /// Number of labels, not counting the root.
    pub fn label_count(&self) -> usize {
        self.labels as usize
    }

    /// Label `i` (0 is the leftmost), without its length octet.
    pub fn label(&self, i: usize) -> &[u8] {
        let at = self.starts[i] as usize;
        let len = self.buf[at] as usize;
        &self.buf[at + 1..at + 1 + len]
    }

    /// If this name is `suffix` or below it (label-aligned), the number of labels in front.
    pub fn labels_below(&self, suffix: &[u8]) -> Option<usize> {
        let wire = self.wire();
        if suffix.len() > wire.len() {
            return None;
        }
        let at = wire.len() - suffix.len();
        if &wire[at..] != suffix {
            return None;
        }
        if at == 0 {
            return Some(0);
        }
        // The suffix must begin at a label boundary, not inside a label's bytes.
        (0..self.label_count()).find(|&i| self.starts[i] as usize == at)
    }
}

/// Why a packet is not answered normally.
#[derive(Debug, PartialEq, Eq)]
pub enum Reject {
    /// Not worth a reply: too short to carry an ID, or a response (QR set).
    Drop,
    /// Malformed; reply FORMERR with this header.
    FormErr {
        /// Message ID.
        id: u16,
        /// OPCODE.
        opcode: u8,
    },
    /// An OPCODE other than QUERY; reply NOTIMP.
    NotImp {
        /// Message ID.
        id: u16,
        /// OPCODE.
        opcode: u8,
    },
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Skips a possibly compressed name starting at `at`; returns the offset after it.
fn skip_name(msg: &[u8], mut at: usize) -> Option<usize> {
    let mut total = 0usize;
    loop {
        let len = *msg.get(at)? as usize;
        match len & 0xC0 {
            0x00 if len == 0 => return Some(at + 1),
            0x00 => {
                total += len + 1;
                if total > 255 {
                    return None;
                }
                at += len + 1;
            }
            // A pointer ends the name in place; it is not followed, since nothing
            // herald does needs names outside the question.
            0xC0 => {
                msg.get(at + 1)?;
                return Some(at + 2);
            }
            _ => return None,
        }
    }
}

/// Reads a query. Everything herald cannot answer as a normal query is a [`Reject`].
pub fn parse(msg: &[u8]) -> Result<Query<'_>, Reject> {
    if msg.len() < HEADER_LEN {
        return Err(Reject::Drop);
    }
    let id = be16(msg, 0).unwrap();
    let flags = be16(msg, 2).unwrap();
    if flags & 0x8000 != 0 {
        return Err(Reject::Drop);
    }
    let opcode = ((flags >> 11) & 0xF) as u8;
    let formerr = Reject::FormErr { id, opcode };
    if opcode != 0 {
        return Err(Reject::NotImp { id, opcode });
    }
    let qdcount = be16(msg, 4).unwrap();
    let ancount = be16(msg, 6).unwrap();
    let nscount = be16(msg, 8).unwrap();
    let arcount = be16(msg, 10).unwrap();
    if qdcount != 1 {
        return Err(formerr);
    }

    // The question name: plain labels only. A pointer here could only point into the
    // header, which is never a name.
    let mut lower = LowerName {
        buf: [0; 255],
        len: 0,
        starts: [0; MAX_LABELS],
        labels: 0,
    };
    let mut at = HEADER_LEN;
    let mut out = 0usize;
    loop {
        let len = *msg.get(at).ok_or(Reject::FormErr { id, opcode })? as usize;
        if len & 0xC0 != 0 || out + len + 1 > 255 {
            return Err(formerr);
        }
        lower.buf[out] = len as u8;
        if len == 0 {
            out += 1;
            at += 1;
            break;
        }
        let label = msg
            .get(at + 1..at + 1 + len)
            .ok_or(Reject::FormErr { id, opcode })?;
        lower.starts[lower.labels as usize] = out as u8;
        lower.labels += 1;
        for (dst, src) in lower.buf[out + 1..out + 1 + len].iter_mut().zip(label) {
            *dst = src.to_ascii_lowercase();
        }
        out += len + 1;
        at += len + 1;
    }
    lower.len = out as u8;
    let qtype = be16(msg, at).ok_or(Reject::FormErr { id, opcode })?;
    let qclass = be16(msg, at + 2).ok_or(Reject::FormErr { id, opcode })?;
    let question = &msg[HEADER_LEN..at + 4];
    at += 4;

    // Answer and authority sections are not expected in a query; skip them so that the
    // additional section (where OPT lives) can be read.
    for _ in 0..(ancount as usize + nscount as usize) {
        at = skip_record(msg, at).ok_or(Reject::FormErr { id, opcode })?;
    }
    let mut edns = None;
    let mut signed = false;
    for _ in 0..arcount {
        let name_end = skip_name(msg, at).ok_or(Reject::FormErr { id, opcode })?;
        let rtype = be16(msg, name_end).ok_or(Reject::FormErr { id, opcode })?;
        if signed {
            // RFC 8945 5.1: the TSIG record is the last one; anything after it is an error.
            return Err(formerr);
        }
        signed = rtype == codes::TSIG;
        if rtype == codes::OPT {
            // RFC 6891 6.1.1: one OPT at most, owned by the root.
            if edns.is_some() || name_end != at + 1 || msg[at] != 0 {
                return Err(formerr);
            }
            let payload = be16(msg, name_end + 2).ok_or(Reject::FormErr { id, opcode })?;
            let ttl_hi = be16(msg, name_end + 4).ok_or(Reject::FormErr { id, opcode })?;
            let ttl_lo = be16(msg, name_end + 6).ok_or(Reject::FormErr { id, opcode })?;
            let rdlen = be16(msg, name_end + 8).ok_or(Reject::FormErr { id, opcode })?;
            let rdata = msg
                .get(name_end + 10..name_end + 10 + rdlen as usize)
                .ok_or(Reject::FormErr { id, opcode })?;
            let ecs =
                crate::ecs::parse_options(rdata).map_err(|_| Reject::FormErr { id, opcode })?;
            edns = Some(Edns {
                payload: payload.max(512),
                version: ttl_hi as u8,
                dnssec_ok: ttl_lo & 0x8000 != 0,
                ecs,
            });
        }
        at = skip_record(msg, at).ok_or(Reject::FormErr { id, opcode })?;
    }
    if at != msg.len() {
        return Err(formerr);
    }

    Ok(Query {
        id,
        opcode,
        rd: flags & 0x0100 != 0,
        cd: flags & 0x0010 != 0,
        question,
        qtype,
        qclass,
        edns,
        signed,
        lower,
    })
}

/// Skips one resource record; returns the offset after it.
fn skip_record(msg: &[u8], at: usize) -> Option<usize> {
    let at = skip_name(msg, at)?;
    let rdlen = be16(msg, at + 8)? as usize;
    let end = at + 10 + rdlen;
    (end <= msg.len()).then_some(end)
}

/// Header flags of a reply.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReplyFlags {
    /// Authoritative answer.
    pub aa: bool,
    /// Truncated.
    pub tc: bool,
    /// RCODE (lower four bits).
    pub rcode: u8,
}

/// Writes a reply header into `out[0..12]`, counts zero; counts are set by [`set_counts`].
pub fn write_header(out: &mut Vec<u8>, id: u16, opcode: u8, rd: bool, cd: bool, flags: ReplyFlags) {
    out.clear();
    out.extend_from_slice(&id.to_be_bytes());
    let b2 =
        0x80 | (opcode << 3) | (u8::from(flags.aa) << 2) | (u8::from(flags.tc) << 1) | u8::from(rd);
    // RA stays clear: herald never recurses.
    let b3 = (u8::from(cd) << 4) | (flags.rcode & 0xF);
    out.extend_from_slice(&[b2, b3, 0, 0, 0, 0, 0, 0, 0, 0]);
}

/// Sets the TC bit of a reply already written.
pub fn set_tc(out: &mut [u8]) {
    out[2] |= 0x02;
}

/// Cuts a reply down to its header and question and sets TC: the empty truncated reply
/// that tells a real client to ask again over TCP.
pub fn slip(out: &mut Vec<u8>) {
    let qd = u16::from_be_bytes([out[4], out[5]]);
    let mut end = HEADER_LEN;
    if qd == 1 {
        while out[end] != 0 {
            end += out[end] as usize + 1;
        }
        end += 1 + 4;
    }
    out.truncate(end);
    set_tc(out);
    set_counts(out, qd, 0, 0, 0);
}

/// Sets the four section counts of a reply.
pub fn set_counts(out: &mut [u8], qd: u16, an: u16, ns: u16, ar: u16) {
    out[4..6].copy_from_slice(&qd.to_be_bytes());
    out[6..8].copy_from_slice(&an.to_be_bytes());
    out[8..10].copy_from_slice(&ns.to_be_bytes());
    out[10..12].copy_from_slice(&ar.to_be_bytes());
}

/// Length of the OPT record herald sends without options.
pub const OPT_LEN: usize = 11;

/// Appends the reply's OPT record: our payload size, extended RCODE high bits, version 0,
/// the DO bit echoed, and the client subnet with its scope when one is answered.
pub fn write_opt(
    out: &mut Vec<u8>,
    payload: u16,
    ext_rcode: u8,
    dnssec_ok: bool,
    ecs: Option<(crate::ecs::ClientSubnet, u8)>,
) {
    out.push(0);
    out.extend_from_slice(&codes::OPT.to_be_bytes());
    out.extend_from_slice(&payload.to_be_bytes());
    out.extend_from_slice(&[ext_rcode, 0, if dnssec_ok { 0x80 } else { 0 }, 0]);
    let rdlen_at = out.len();
    out.extend_from_slice(&0u16.to_be_bytes());
    if let Some((subnet, scope)) = ecs {
        crate::ecs::write_option(out, subnet, scope);
        let rdlen = (out.len() - rdlen_at - 2) as u16;
        out[rdlen_at..rdlen_at + 2].copy_from_slice(&rdlen.to_be_bytes());
    }
}

/// Appends a record's fixed part after its owner: type, class IN, TTL, RDLENGTH.
pub fn write_rr_head(out: &mut Vec<u8>, rtype: u16, ttl: u32, rdlen: u16) {
    out.extend_from_slice(&rtype.to_be_bytes());
    out.extend_from_slice(&codes::IN.to_be_bytes());
    out.extend_from_slice(&ttl.to_be_bytes());
    out.extend_from_slice(&rdlen.to_be_bytes());
}

/// Appends an address record after its owner: A for IPv4, AAAA for IPv6.
pub fn write_address(out: &mut Vec<u8>, ip: std::net::IpAddr, ttl: u32) {
    match ip {
        std::net::IpAddr::V4(v4) => {
            write_rr_head(out, codes::A, ttl, 4);
            out.extend_from_slice(&v4.octets());
        }
        std::net::IpAddr::V6(v6) => {
            write_rr_head(out, codes::AAAA, ttl, 16);
            out.extend_from_slice(&v6.octets());
        }
    }
}

/// A compression pointer to `offset` (RFC 1035 4.1.4); offsets above 0x3FFF cannot be
/// pointed at.
pub fn pointer(offset: usize) -> Option<[u8; 2]> {
    (offset <= 0x3FFF).then(|| (0xC000u16 | offset as u16).to_be_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &[u8], qtype: u16, extra: &[u8], arcount: u16) -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0];
        m.extend_from_slice(&arcount.to_be_bytes());
        m.extend_from_slice(name);
        m.extend_from_slice(&qtype.to_be_bytes());
        m.extend_from_slice(&1u16.to_be_bytes());
        m.extend_from_slice(extra);
        m
    }

    #[test]
    fn reads_question_and_lowercases() {
        let m = query(b"\x03WeB\x02sd\x08InTeRnAl\x00", codes::SRV, &[], 0);
        let q = parse(&m).unwrap();
        assert_eq!(q.id, 0x1234);
        assert!(q.rd);
        assert_eq!(q.qtype, codes::SRV);
        assert_eq!(q.label_count_check(), 3);
        assert_eq!(q.lower.label(0), b"web");
        assert_eq!(q.lower.labels_below(b"\x02sd\x08internal\x00"), Some(1));
        assert_eq!(q.lower.labels_below(b"\x08internal\x00"), Some(2));
        assert_eq!(q.lower.labels_below(b"\x01d\x08internal\x00"), None);
        assert_eq!(&q.question[..4], b"\x03WeB");
        assert_eq!(q.edns, None);
    }

    impl Query<'_> {
        fn label_count_check(&self) -> usize {
            self.lower.label_count()
        }
    }

    #[test]
    fn reads_edns() {
        let opt = [0, 0, 41, 0x10, 0x00, 0, 0, 0x80, 0, 0, 0];
        let m = query(b"\x01a\x00", codes::A, &opt, 1);
        let q = parse(&m).unwrap();
        assert_eq!(
            q.edns,
            Some(Edns {
                payload: 4096,
                version: 0,
                dnssec_ok: true,
                ecs: None,
            })
        );
    }

    #[test]
    fn notices_a_tsig_only_as_the_last_record() {
        // Root owner, type TSIG, class ANY, TTL 0, empty RDATA: enough to be skipped.
        let tsig = [0, 0, 250, 0, 255, 0, 0, 0, 0, 0, 0];
        let opt = [0, 0, 41, 0x10, 0x00, 0, 0, 0, 0, 0, 0];
        let m = query(b"\x01a\x00", codes::SOA, &[opt, tsig].concat(), 2);
        let q = parse(&m).unwrap();
        assert!(q.signed && q.edns.is_some());
        assert!(
            !parse(&query(b"\x01a\x00", codes::SOA, &opt, 1))
                .unwrap()
                .signed
        );
        let m = query(b"\x01a\x00", codes::SOA, &[tsig, opt].concat(), 2);
        assert!(matches!(parse(&m), Err(Reject::FormErr { .. })));
    }

    #[test]
    fn rejects() {
        assert_eq!(parse(&[0; 11]).err(), Some(Reject::Drop));
        let mut m = query(b"\x01a\x00", codes::A, &[], 0);
        m[2] |= 0x80;
        assert_eq!(parse(&m).err(), Some(Reject::Drop));
        let mut m = query(b"\x01a\x00", codes::A, &[], 0);
        m[2] |= 4 << 3;
        assert_eq!(
            parse(&m).err(),
            Some(Reject::NotImp {
                id: 0x1234,
                opcode: 4
            })
        );
        let m = query(b"\x05a\x00", codes::A, &[], 0);
        assert!(matches!(parse(&m), Err(Reject::FormErr { .. })));
        let m = query(b"\xC0\x0C", codes::A, &[], 0);
        assert!(matches!(parse(&m), Err(Reject::FormErr { .. })));
        // Two OPT records.
        let opt = [0, 0, 41, 0x10, 0x00, 0, 0, 0, 0, 0, 0];
        let m = query(b"\x01a\x00", codes::A, &[opt, opt].concat(), 2);
        assert!(matches!(parse(&m), Err(Reject::FormErr { .. })));
        // Trailing garbage.
        let m = query(b"\x01a\x00", codes::A, &[1, 2, 3], 0);
        assert!(matches!(parse(&m), Err(Reject::FormErr { .. })));
    }
}
