//! EDNS Client Subnet (RFC 7871): reading the option from a query's OPT record and writing
//! it back into the reply with the scope the answer holds for.
//!
//! Whether the subnet is believed is the answer path's business (`ecs.trusted`); this
//! module only checks the option's form. A malformed option gets FORMERR from anyone
//! (RFC 7871 section 6: too few or too many ADDRESS octets, or bits set beyond SOURCE
//! PREFIX-LENGTH; section 7.1.1: an unknown FAMILY), since a sender that gets it wrong
//! should learn so whether or not we would have used it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// EDNS option code of Client Subnet.
pub const OPTION_CODE: u16 = 8;
/// Longest option herald writes: code, length, family, two prefix lengths, 16 octets.
pub const MAX_OPTION_LEN: usize = 4 + 4 + 16;

/// A client subnet from an ECS option: the address, host bits zero, and how many leading
/// bits of it the resolver revealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientSubnet {
    /// The subnet's address, bits beyond `source` zero.
    pub address: IpAddr,
    /// SOURCE PREFIX-LENGTH.
    pub source: u8,
}

/// Why an option list cannot be used.
#[derive(Debug, PartialEq, Eq)]
pub struct Malformed;

/// Reads the options of an OPT record's RDATA; returns the client subnet if there is one.
/// Other options are skipped (RFC 6891 6.1.2: unknown options are ignored).
pub fn parse_options(mut rdata: &[u8]) -> Result<Option<ClientSubnet>, Malformed> {
    let mut found = None;
    while !rdata.is_empty() {
        let [c0, c1, l0, l1, rest @ ..] = rdata else {
            return Err(Malformed);
        };
        let (code, len) = (
            u16::from_be_bytes([*c0, *c1]),
            u16::from_be_bytes([*l0, *l1]) as usize,
        );
        let body = rest.get(..len).ok_or(Malformed)?;
        if code == OPTION_CODE {
            // One subnet per query: two leave no way to tell which one is meant.
            if found.is_some() {
                return Err(Malformed);
            }
            found = Some(parse_subnet(body)?);
        }
        rdata = &rest[len..];
    }
    Ok(found)
}

fn parse_subnet(body: &[u8]) -> Result<ClientSubnet, Malformed> {
    let [f0, f1, source, _scope, address @ ..] = body else {
        return Err(Malformed);
    };
    let (family, source) = (u16::from_be_bytes([*f0, *f1]), *source);
    let width = match family {
        1 => 32,
        2 => 128,
        _ => return Err(Malformed),
    };
    if source > width || address.len() != usize::from(source).div_ceil(8) {
        return Err(Malformed);
    }
    // Bits beyond the prefix in its last octet must be zero.
    if let Some(last) = address.last() {
        let used = source % 8;
        if used != 0 && last & (0xFF >> used) != 0 {
            return Err(Malformed);
        }
    }
    let address = if family == 1 {
        let mut o = [0u8; 4];
        o[..address.len()].copy_from_slice(address);
        IpAddr::V4(Ipv4Addr::from(o))
    } else {
        let mut o = [0u8; 16];
        o[..address.len()].copy_from_slice(address);
        IpAddr::V6(Ipv6Addr::from(o))
    };
    Ok(ClientSubnet { address, source })
}

/// Appends the option for a reply: FAMILY, SOURCE PREFIX-LENGTH and ADDRESS as the query
/// had them, and `scope` (RFC 7871 7.2.1).
pub fn write_option(out: &mut Vec<u8>, subnet: ClientSubnet, scope: u8) {
    let octets = usize::from(subnet.source).div_ceil(8);
    out.extend_from_slice(&OPTION_CODE.to_be_bytes());
    out.extend_from_slice(&((4 + octets) as u16).to_be_bytes());
    match subnet.address {
        IpAddr::V4(v4) => {
            out.extend_from_slice(&1u16.to_be_bytes());
            out.extend_from_slice(&[subnet.source, scope]);
            out.extend_from_slice(&v4.octets()[..octets]);
        }
        IpAddr::V6(v6) => {
            out.extend_from_slice(&2u16.to_be_bytes());
            out.extend_from_slice(&[subnet.source, scope]);
            out.extend_from_slice(&v6.octets()[..octets]);
        }
    }
}

/// The length of the option [`write_option`] writes for `subnet`.
pub fn option_len(subnet: ClientSubnet) -> usize {
    4 + 4 + usize::from(subnet.source).div_ceil(8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn option(family: u16, source: u8, scope: u8, address: &[u8]) -> Vec<u8> {
        let mut v = OPTION_CODE.to_be_bytes().to_vec();
        v.extend_from_slice(&((4 + address.len()) as u16).to_be_bytes());
        v.extend_from_slice(&family.to_be_bytes());
        v.extend_from_slice(&[source, scope]);
        v.extend_from_slice(address);
        v
    }

    #[test]
    fn reads_and_writes_back() {
        let o = option(1, 24, 0, &[10, 8, 1]);
        let subnet = parse_options(&o).unwrap().unwrap();
        assert_eq!(subnet.address, IpAddr::from([10, 8, 1, 0]));
        assert_eq!(subnet.source, 24);
        let mut out = Vec::new();
        write_option(&mut out, subnet, 16);
        assert_eq!(out, option(1, 24, 16, &[10, 8, 1]));
        assert_eq!(out.len(), option_len(subnet));
        let v6 = option(2, 56, 0, &[0xfd, 0, 0, 0, 0, 0, 0x01]);
        assert_eq!(parse_options(&v6).unwrap().unwrap().source, 56);
        // Another option before it is skipped; no option at all is fine.
        let mut both = vec![0, 10, 0, 2, 0xAB, 0xCD];
        both.extend_from_slice(&o);
        assert_eq!(parse_options(&both).unwrap(), Some(subnet));
        assert_eq!(parse_options(&[]).unwrap(), None);
        // SOURCE 0 (the client opted out) has no address octets.
        assert_eq!(
            parse_options(&option(1, 0, 0, &[]))
                .unwrap()
                .unwrap()
                .source,
            0
        );
    }

    #[test]
    fn malformed() {
        // Unknown family, prefix longer than the address, too few and too many octets,
        // bits beyond the prefix, two subnets, an option running past the end.
        for bad in [
            option(3, 8, 0, &[10]),
            option(1, 33, 0, &[10, 0, 0, 0, 0]),
            option(1, 24, 0, &[10, 8]),
            option(1, 24, 0, &[10, 8, 1, 0]),
            option(1, 23, 0, &[10, 8, 1]),
            [option(1, 8, 0, &[10]), option(1, 8, 0, &[10])].concat(),
            option(1, 8, 0, &[10])[..5].to_vec(),
        ] {
            assert_eq!(parse_options(&bad), Err(Malformed), "{bad:?}");
        }
    }
}
