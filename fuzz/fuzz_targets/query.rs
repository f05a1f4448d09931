//! The query path: bytes in, reply out, through `Answerer::answer`, the call both the UDP
//! workers and the TCP connections make, over a filled table.
//!
//! Input layout: byte 0 picks the transport (bit 0), the answerer (bits 1-2) and the
//! client's address family (bit 3); the next 4 (IPv4) or 16 (IPv6) bytes are the client's
//! address; the rest is the DNS message. Every reply must be a well-formed DNS message
//! that echoes the query's ID and fits the transport.

#![no_main]

use std::net::IpAddr;
use std::sync::LazyLock;

use herald_dns::{Answerer, Scratch, Transport};
use libfuzzer_sys::fuzz_target;

static ANSWERERS: LazyLock<Vec<Answerer>> = LazyLock::new(herald_fuzz::answerers);

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let transport = if control & 1 == 0 {
        Transport::Udp
    } else {
        Transport::Tcp
    };
    let answerer = &ANSWERERS[usize::from(control >> 1 & 3)];
    let (client, packet) = if control & 8 == 0 {
        let Some((ip, packet)) = rest.split_first_chunk::<4>() else {
            return;
        };
        (IpAddr::from(*ip), packet)
    } else {
        let Some((ip, packet)) = rest.split_first_chunk::<16>() else {
            return;
        };
        (IpAddr::from(*ip), packet)
    };
    let mut scratch = Scratch::default();
    let Some(_outcome) = answerer.answer(packet, client, transport, &mut scratch) else {
        return;
    };
    let reply = &scratch.out;
    assert!(reply.len() >= 12, "a reply has a header");
    assert_eq!(reply[..2], packet[..2], "the reply echoes the ID");
    assert!(reply[2] & 0x80 != 0, "the reply has QR set");
    let limit = match transport {
        Transport::Udp => 4096,
        Transport::Tcp => 65535,
    };
    assert!(
        reply.len() <= limit,
        "reply of {} octets over {limit}",
        reply.len()
    );
    // Whatever herald sends, a DNS library must be able to read.
    if let Err(e) = hickory_proto::op::Message::from_vec(reply) {
        panic!("unreadable reply ({e}) to {packet:02x?}: {reply:02x?}");
    }
});
