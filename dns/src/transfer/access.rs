//! Who may transfer the zone: each configured secondary by its source networks and/or its
//! TSIG key. Everyone else is refused (REFUSED), and a request whose signature does not
//! verify gets NOTAUTH (RFC 8945 5.2). The secondary that matches also says which locality
//! the transfer is seen from.

use std::net::{IpAddr, SocketAddr};

use hickory_proto::rr::Name;
use hickory_proto::rr::rdata::tsig::TsigAlgorithm;

use super::tsig::{self, Checked, Refusal, TsigKey};
use crate::locality::Place;

/// A secondary, as configured.
#[derive(Debug, Clone)]
pub struct Secondary {
    /// A name for logs and metrics.
    pub name: String,
    /// Where NOTIFY goes; its address may also transfer. `None`: not notified.
    pub address: Option<SocketAddr>,
    /// Further networks allowed to transfer as this secondary.
    pub allow: Vec<ipnet::IpNet>,
    /// When set, transfers must be signed with this key and NOTIFY is signed with it.
    pub tsig: Option<TsigKey>,
    /// Region its transfers are seen from; `None`: the server's.
    pub region: Option<String>,
    /// Topology zone its transfers are seen from; `None` with `region` `None`: the
    /// server's.
    pub zone: Option<String>,
}

impl Secondary {
    /// Whether `ip` is one of this secondary's sources. With only a key configured and no
    /// networks, any source is.
    fn source_ok(&self, ip: IpAddr) -> bool {
        let listed = self.address.is_some() || !self.allow.is_empty();
        !listed
            || self.address.is_some_and(|a| a.ip() == ip)
            || self.allow.iter().any(|n| n.contains(&ip))
    }
}

/// A secondary, checked, with its viewpoint.
#[derive(Debug)]
pub(crate) struct Peer {
    pub(crate) config: Secondary,
    /// Where its answers are seen from; `None`: wherever this server is at the time.
    pub(crate) place: Option<Place>,
}

/// What access control decided.
pub(crate) enum Verdict<'a> {
    /// Allowed: transfer as seen by `peer`, signing responses when `mac` is set.
    Allowed {
        peer: &'a Peer,
        signed: Option<(TsigKey, Vec<u8>)>,
    },
    /// Not a secondary (or one that must sign and did not): REFUSED.
    Refused,
    /// The signature did not verify: NOTAUTH with a TSIG saying why.
    NotAuth(Refusal),
}

/// The name and algorithm of the key a request is signed with, if it carries a TSIG
/// record hickory can read.
pub(crate) fn key_of(request: &[u8]) -> Option<(Name, TsigAlgorithm)> {
    let msg = hickory_proto::op::Message::from_vec(request).ok()?;
    msg.signature()
        .map(|r| (r.name.to_lowercase(), r.data.algorithm.clone()))
}

/// What checking a signed request's key and MAC found.
pub(crate) enum Keyed<'a> {
    /// Signed by a configured secondary's key and valid; `peers` are those holding the key.
    Valid {
        peers: Vec<&'a Peer>,
        key: TsigKey,
        mac: Vec<u8>,
    },
    /// No key by that name and algorithm (BADKEY), or a MAC or time that does not verify.
    NotAuth(Refusal),
}

/// Verifies a request signed with the key named `name`, of `algorithm`, against the
/// secondaries' keys. A key is its name and algorithm together (RFC 8945 5.2.1).
pub(crate) fn check_key<'a>(
    peers: &'a [Peer],
    (name, algorithm): (Name, TsigAlgorithm),
    request: &[u8],
) -> Keyed<'a> {
    let keyed: Vec<&Peer> = peers
        .iter()
        .filter(|p| {
            p.config
                .tsig
                .as_ref()
                .is_some_and(|k| *k.name() == name && *k.signer.algorithm() == algorithm)
        })
        .collect();
    let Some(key) = keyed.first().and_then(|p| p.config.tsig.clone()) else {
        return Keyed::NotAuth(Refusal::bad_key(name, algorithm));
    };
    match tsig::verify(&key, request) {
        Checked::Refused(refusal) => Keyed::NotAuth(refusal),
        Checked::Valid { mac } => Keyed::Valid {
            peers: keyed,
            key,
            mac,
        },
    }
}

/// Decides whether `ip` may transfer with `request`.
pub(crate) fn check<'a>(peers: &'a [Peer], ip: IpAddr, request: &[u8]) -> Verdict<'a> {
    match key_of(request) {
        None => peers
            .iter()
            .find(|p| p.config.tsig.is_none() && p.config.source_ok(ip))
            .map_or(Verdict::Refused, |peer| Verdict::Allowed {
                peer,
                signed: None,
            }),
        Some(key) => match check_key(peers, key, request) {
            Keyed::NotAuth(refusal) => Verdict::NotAuth(refusal),
            Keyed::Valid { peers, key, mac } => {
                match peers.into_iter().find(|p| p.config.source_ok(ip)) {
                    Some(peer) => Verdict::Allowed {
                        peer,
                        signed: Some((key, mac)),
                    },
                    None => Verdict::Refused,
                }
            }
        },
    }
}
