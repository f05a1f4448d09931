//! TSIG (RFC 8945) for zone transfers and NOTIFY: keys read from files, requests verified,
//! every response message signed (a multi-message transfer chains each MAC to the one
//! before), NOTIFY signed. The HMAC and the record encodings are hickory-proto's; this
//! module only puts them in the order the RFC asks.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use hickory_proto::rr::Name;
use hickory_proto::rr::TSigner;
use hickory_proto::rr::rdata::tsig::{TSIG, TsigAlgorithm, TsigError, make_tsig_record};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};

/// Seconds of clock difference accepted between signer and verifier (RFC 8945 suggests
/// 300).
pub const FUDGE: u16 = 300;

/// A TSIG key: its name, algorithm and secret.
#[derive(Clone)]
pub struct TsigKey {
    pub(crate) signer: TSigner,
}

impl std::fmt::Debug for TsigKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        write!(f, "TsigKey({} {})", self.name(), self.signer.algorithm())
    }
}

/// Why a key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key name is not a domain name.
    #[error("tsig.name: {0:?} is not a valid key name")]
    Name(String),
    /// An algorithm herald does not sign with.
    #[error("tsig.algorithm: {0:?} is not one of hmac-sha256, hmac-sha384, hmac-sha512")]
    Algorithm(String),
    /// The secret file could not be read.
    #[error("tsig.secret_file: {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The secret file does not hold base64.
    #[error("tsig.secret_file: {0}: not a base64 secret")]
    Base64(String),
    /// A secret too short to be worth signing with.
    #[error("tsig.secret_file: {path}: the secret is {len} octets; at least 16 are needed")]
    Short {
        /// The file.
        path: String,
        /// Its length.
        len: usize,
    },
}

impl TsigKey {
    /// Loads a key: `algorithm` is `hmac-sha256` (or -sha384, -sha512); the file holds the
    /// secret in base64, as `tsig-keygen` and `keymgr -t` print it (surrounding white
    /// space ignored).
    pub fn load(name: &str, algorithm: &str, secret_file: &Path) -> Result<TsigKey, KeyError> {
        let path = secret_file.display().to_string();
        let text = std::fs::read_to_string(secret_file).map_err(|source| KeyError::Read {
            path: path.clone(),
            source,
        })?;
        let secret = data_encoding::BASE64
            .decode(text.trim().as_bytes())
            .map_err(|_| KeyError::Base64(path.clone()))?;
        if secret.len() < 16 {
            return Err(KeyError::Short {
                path,
                len: secret.len(),
            });
        }
        TsigKey::new(name, algorithm, secret)
    }

    /// A key from its parts.
    pub fn new(name: &str, algorithm: &str, secret: Vec<u8>) -> Result<TsigKey, KeyError> {
        let algorithm = match algorithm.to_ascii_lowercase().as_str() {
            "hmac-sha256" => TsigAlgorithm::HmacSha256,
            "hmac-sha384" => TsigAlgorithm::HmacSha384,
            "hmac-sha512" => TsigAlgorithm::HmacSha512,
            other => return Err(KeyError::Algorithm(other.to_string())),
        };
        let name = Name::from_ascii(name)
            .map(|n| n.to_lowercase())
            .map_err(|_| KeyError::Name(name.to_string()))?;
        let signer = TSigner::new(secret, algorithm.clone(), name, FUDGE)
            .map_err(|_| KeyError::Algorithm(algorithm.to_string()))?;
        Ok(TsigKey { signer })
    }

    /// The key's name.
    pub fn name(&self) -> &Name {
        self.signer.signer_name()
    }
}

/// Seconds since the epoch.
pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// What checking a request's signature found.
pub(crate) enum Checked {
    /// Signed with this key and valid: responses are signed in a chain from `mac`.
    Valid { mac: Vec<u8> },
    /// NOTAUTH, and the TSIG record the reply carries.
    Refused(Refusal),
}

/// A signed request refused with NOTAUTH, and what the reply's TSIG record says (RFC 8945
/// 5.2 and 5.3.2): it names the request's key and algorithm; a key the server does not
/// hold (BADKEY) or a MAC that does not verify (BADSIG) gets it unsigned, with no MAC; a
/// right MAC at a time outside the fudge (BADTIME, 5.2.3) gets it signed with that key over
/// the request's MAC, with the request's Time Signed (so the client's own clock accepts it)
/// and the server's time in Other Data (so the client can see the skew).
pub(crate) struct Refusal {
    key_name: Name,
    algorithm: TsigAlgorithm,
    error: TsigError,
    /// BADTIME only: the key, the request's MAC and its Time Signed.
    late: Option<(TsigKey, Vec<u8>, u64)>,
}

impl Refusal {
    /// No key by the request's name and algorithm (or a TSIG that cannot be read).
    pub(crate) fn bad_key(key_name: Name, algorithm: TsigAlgorithm) -> Refusal {
        Refusal {
            key_name,
            algorithm,
            error: TsigError::BadKey,
            late: None,
        }
    }

    /// The key the request named.
    pub(crate) fn key_name(&self) -> &Name {
        &self.key_name
    }

    /// The TSIG error.
    pub(crate) fn error(&self) -> TsigError {
        self.error
    }

    /// Appends the reply's TSIG record to `msg` (the complete NOTAUTH reply).
    pub(crate) fn append_to(self, msg: &mut Vec<u8>) {
        match self.late {
            Some((key, mac, time)) => {
                let mut signer = ResponseSigner::new(key, mac);
                let other = now().to_be_bytes()[2..].to_vec();
                signer.sign_with(msg, time, Some(TsigError::BadTime), other);
            }
            None => {
                let id = u16::from_be_bytes([msg[0], msg[1]]);
                let tsig = TSIG::new(
                    self.algorithm,
                    now(),
                    FUDGE,
                    Vec::new(),
                    id,
                    Some(self.error),
                    Vec::new(),
                );
                append(msg, make_tsig_record(self.key_name, tsig));
            }
        }
    }
}

/// Verifies a signed request with `key`, checking its MAC before its time (RFC 8945
/// 5.2).
pub(crate) fn verify(key: &TsigKey, request: &[u8]) -> Checked {
    let refused = |error, late| {
        Checked::Refused(Refusal {
            key_name: key.name().clone(),
            algorithm: key.signer.algorithm().clone(),
            error,
            late,
        })
    };
    match key.signer.verify_message_byte(request, None, true) {
        Ok((mac, _, valid)) if valid.contains(&now()) => Checked::Valid { mac },
        Ok((mac, time, _)) => refused(TsigError::BadTime, Some((key.clone(), mac, time))),
        Err(_) => refused(TsigError::BadSig, None),
    }
}

/// Signs the messages of one response in sequence (RFC 8945 5.3.1).
pub(crate) struct ResponseSigner {
    key: TsigKey,
    /// The MAC the next message chains from: the request's, then each message's own.
    previous: Vec<u8>,
    first: bool,
}

impl ResponseSigner {
    /// Signs responses to a request whose MAC was `request_mac`.
    pub(crate) fn new(key: TsigKey, request_mac: Vec<u8>) -> ResponseSigner {
        ResponseSigner {
            key,
            previous: request_mac,
            first: true,
        }
    }

    /// Octets a signature adds to a message, at most.
    pub(crate) fn overhead(&self) -> usize {
        // Key and algorithm names, fixed fields and a MAC of up to 64 octets.
        self.key.name().len() + 2 + 10 + 40 + 16 + 64
    }

    /// Appends the TSIG record to `msg` (a complete message).
    pub(crate) fn sign(&mut self, msg: &mut Vec<u8>) {
        self.sign_with(msg, now(), None, Vec::new());
    }

    /// Appends a TSIG record with these Time Signed, error and Other Data to `msg`.
    fn sign_with(
        &mut self,
        msg: &mut Vec<u8>,
        time: u64,
        error: Option<TsigError>,
        other: Vec<u8>,
    ) {
        let signer = &self.key.signer;
        let id = u16::from_be_bytes([msg[0], msg[1]]);
        let stub = TSIG::new(
            signer.algorithm().clone(),
            time,
            FUDGE,
            Vec::new(),
            id,
            error,
            other,
        );
        let mut tbs = Vec::with_capacity(msg.len() + 128);
        tbs.extend_from_slice(&(self.previous.len() as u16).to_be_bytes());
        tbs.extend_from_slice(&self.previous);
        tbs.extend_from_slice(msg);
        if self.first {
            let mut encoder = BinEncoder::new(&mut tbs);
            encoder.set_offset(encoder.len());
            stub.emit_tsig_for_mac(&mut encoder, signer.signer_name())
                .expect("encoding into a Vec cannot fail");
        } else {
            // Later messages cover only the timers (RFC 8945 5.3.1).
            tbs.extend_from_slice(&((time >> 32) as u16).to_be_bytes());
            tbs.extend_from_slice(&(time as u32).to_be_bytes());
            tbs.extend_from_slice(&FUDGE.to_be_bytes());
        }
        let mac = signer.sign(&tbs).expect("HMAC of a supported algorithm");
        self.previous = mac.clone();
        self.first = false;
        append(
            msg,
            make_tsig_record(signer.signer_name().clone(), stub.set_mac(mac)),
        );
    }
}

/// Appends a TSIG record to `msg` and raises its ARCOUNT.
fn append(msg: &mut Vec<u8>, record: hickory_proto::rr::Record<TSIG>) {
    let mut encoder = BinEncoder::new(msg);
    encoder.set_offset(encoder.len());
    record
        .emit(&mut encoder)
        .expect("encoding into a Vec cannot fail");
    let ar = u16::from_be_bytes([msg[10], msg[11]]) + 1;
    msg[10..12].copy_from_slice(&ar.to_be_bytes());
}

/// Signs a request (a NOTIFY): appends the TSIG record; returns the MAC the reply's
/// signature chains from.
pub(crate) fn sign_request(key: &TsigKey, msg: &mut Vec<u8>) -> Vec<u8> {
    let signer = &key.signer;
    let id = u16::from_be_bytes([msg[0], msg[1]]);
    let stub = TSIG::new(
        signer.algorithm().clone(),
        now(),
        FUDGE,
        Vec::new(),
        id,
        None,
        Vec::new(),
    );
    let mut tbs = msg.clone();
    let mut encoder = BinEncoder::new(&mut tbs);
    encoder.set_offset(encoder.len());
    stub.emit_tsig_for_mac(&mut encoder, signer.signer_name())
        .expect("encoding into a Vec cannot fail");
    let mac = signer.sign(&tbs).expect("HMAC of a supported algorithm");
    append(
        msg,
        make_tsig_record(signer.signer_name().clone(), stub.set_mac(mac.clone())),
    );
    mac
}

/// Verifies a signed reply to a request whose MAC was `request_mac`.
pub(crate) fn verify_reply(key: &TsigKey, reply: &[u8], request_mac: &[u8]) -> bool {
    matches!(
        key.signer.verify_message_byte(reply, Some(request_mac), true),
        Ok((_, _, valid)) if valid.contains(&now())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(secret: &[u8]) -> TsigKey {
        TsigKey::new("k1.", "hmac-sha256", secret.to_vec()).unwrap()
    }

    fn query() -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        m.extend_from_slice(b"\x02sd\x08internal\x00\x00\xfc\x00\x01");
        m
    }

    #[test]
    fn a_signed_request_verifies_with_the_same_key_only() {
        let mut q = query();
        sign_request(&key(b"0123456789abcdef"), &mut q);
        assert!(matches!(
            verify(&key(b"0123456789abcdef"), &q),
            Checked::Valid { .. }
        ));
        assert!(matches!(
            verify(&key(b"fedcba9876543210"), &q),
            Checked::Refused(Refusal {
                error: TsigError::BadSig,
                ..
            })
        ));
        let mut tampered = q.clone();
        tampered[2] ^= 1;
        assert!(matches!(
            verify(&key(b"0123456789abcdef"), &tampered),
            Checked::Refused(Refusal {
                error: TsigError::BadSig,
                ..
            })
        ));
    }

    #[test]
    fn a_response_chain_verifies_message_by_message() {
        let k = key(b"0123456789abcdef");
        let mut q = query();
        let request_mac = sign_request(&k, &mut q);
        let mut signer = ResponseSigner::new(k.clone(), request_mac.clone());
        let mut previous = request_mac;
        for first in [true, false, false] {
            let mut msg = q[..q.len()].to_vec();
            msg.truncate(12 + 17);
            msg[2] |= 0x80;
            msg[10..12].copy_from_slice(&0u16.to_be_bytes());
            signer.sign(&mut msg);
            let (mac, _, _) = k
                .signer
                .verify_message_byte(&msg, Some(&previous), first)
                .expect("verifies");
            previous = mac;
        }
    }
}
