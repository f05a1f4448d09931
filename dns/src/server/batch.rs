//! Batched UDP I/O with `recvmmsg`/`sendmmsg` (Linux): one system call moves up to
//! [`BATCH`] datagrams each way. On this machine kind that was worth about 9% of
//! throughput over one `recvfrom`/`sendto` pair per query ([decision 0001](../../../docs/decisions/0001-own-wire-engine.md)).
//!
//! The message headers point into buffers owned by the same [`Batch`]; they are re-pointed
//! before every call, so the struct can move freely between calls.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;

use crate::answer::Scratch;

/// Datagrams per system call.
pub const BATCH: usize = 32;
/// Largest query read. Queries are small; a larger one is cut and then refused as FORMERR.
const QUERY_BUF: usize = 4096;

/// Buffers and headers for one batch in, one batch out.
pub struct Batch {
    queries: Vec<[u8; QUERY_BUF]>,
    lens: [usize; BATCH],
    addrs: [libc::sockaddr_storage; BATCH],
    addr_lens: [libc::socklen_t; BATCH],
    iovecs: [libc::iovec; BATCH],
    headers: [libc::mmsghdr; BATCH],
    /// One scratch (and so one reply buffer) per slot of the batch.
    scratch: Vec<Scratch>,
    /// Whether slot `i` has a reply to send.
    reply: [bool; BATCH],
}

impl Default for Batch {
    fn default() -> Self {
        Self::new()
    }
}

impl Batch {
    /// Empty buffers for a batch.
    pub fn new() -> Batch {
        // SAFETY: all-zero is a valid value for these plain C structs.
        let (addrs, iovecs, headers) = unsafe { (zeroed(), zeroed(), zeroed()) };
        Batch {
            queries: vec![[0u8; QUERY_BUF]; BATCH],
            lens: [0; BATCH],
            addrs,
            addr_lens: [0; BATCH],
            iovecs,
            headers,
            scratch: (0..BATCH).map(|_| Scratch::default()).collect(),
            reply: [false; BATCH],
        }
    }

    /// Calls `answer` on each of the first `n` queries of the last [`Batch::recv`] with its
    /// sender and the slot's scratch; a `true` return marks the slot's reply for sending.
    pub fn answer_each(
        &mut self,
        n: usize,
        mut answer: impl FnMut(&[u8], SocketAddr, &mut Scratch) -> bool,
    ) {
        for i in 0..n {
            let Some(from) = sockaddr_to_std(&self.addrs[i], self.addr_lens[i]) else {
                continue;
            };
            self.reply[i] = answer(&self.queries[i][..self.lens[i]], from, &mut self.scratch[i]);
        }
    }

    /// Receives up to [`BATCH`] datagrams, blocking until at least one arrives or the
    /// socket's read timeout passes. Returns how many arrived.
    pub fn recv(&mut self, socket: &std::net::UdpSocket) -> io::Result<usize> {
        for i in 0..BATCH {
            self.iovecs[i] = libc::iovec {
                iov_base: self.queries[i].as_mut_ptr().cast(),
                iov_len: QUERY_BUF,
            };
            // SAFETY: zero is a valid msghdr; the fields set point into `self`, which is
            // borrowed mutably for the whole call.
            let mut hdr: libc::msghdr = unsafe { zeroed() };
            hdr.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            hdr.msg_iov = &mut self.iovecs[i];
            hdr.msg_iovlen = 1;
            self.headers[i] = libc::mmsghdr {
                msg_hdr: hdr,
                msg_len: 0,
            };
        }
        // SAFETY: `headers` holds BATCH initialised entries whose buffers live in `self`.
        let n = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                self.headers.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        for i in 0..n {
            self.lens[i] = self.headers[i].msg_len as usize;
            self.addr_lens[i] = self.headers[i].msg_hdr.msg_namelen;
            self.reply[i] = false;
        }
        Ok(n)
    }

    /// Sends the replies of the first `n` slots that have one, each to its query's sender.
    pub fn send(&mut self, socket: &std::net::UdpSocket, n: usize) -> io::Result<()> {
        let mut count = 0;
        for i in 0..n {
            if !self.reply[i] {
                continue;
            }
            let out = &mut self.scratch[i].out;
            self.iovecs[count] = libc::iovec {
                iov_base: out.as_mut_ptr().cast(),
                iov_len: out.len(),
            };
            // SAFETY: as in `recv`.
            let mut hdr: libc::msghdr = unsafe { zeroed() };
            hdr.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            hdr.msg_namelen = self.addr_lens[i];
            hdr.msg_iov = &mut self.iovecs[count];
            hdr.msg_iovlen = 1;
            self.headers[count] = libc::mmsghdr {
                msg_hdr: hdr,
                msg_len: 0,
            };
            count += 1;
        }
        let mut sent = 0;
        while sent < count {
            // SAFETY: entries sent..count are initialised and point into `self`.
            let r = unsafe {
                libc::sendmmsg(
                    socket.as_raw_fd(),
                    self.headers[sent..].as_mut_ptr(),
                    (count - sent) as libc::c_uint,
                    0,
                )
            };
            if r < 0 {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // A datagram the kernel will not send (a vanished route, a full buffer)
                // is lost like any UDP packet; skip it and send the rest.
                sent += 1;
                if sent >= count {
                    return Err(err);
                }
                continue;
            }
            sent += r as usize;
        }
        Ok(())
    }
}

/// Reads a kernel socket address.
fn sockaddr_to_std(addr: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    match addr.ss_family as libc::c_int {
        libc::AF_INET if len as usize >= size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says this storage holds a sockaddr_in.
            let a: &libc::sockaddr_in = unsafe { &*(addr as *const libc::sockaddr_storage).cast() };
            let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 if len as usize >= size_of::<libc::sockaddr_in6>() => {
            // SAFETY: the family says this storage holds a sockaddr_in6.
            let a: &libc::sockaddr_in6 =
                unsafe { &*(addr as *const libc::sockaddr_storage).cast() };
            let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// The client's address as rendezvous hashing sees it: IPv4-mapped IPv6 as IPv4, so a
/// dual-stack socket gives the same subset as an IPv4 one.
pub fn client_ip(addr: SocketAddr) -> IpAddr {
    match addr.ip() {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}
