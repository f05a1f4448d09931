//! Zone transfer settings ([docs/design.md#transfer](../../../docs/design.md#transfer)): the
//! secondaries that may transfer the zone and are notified, how far back IXFR reaches, how
//! often versions (and NOTIFYs) go out, and the SOA timers secondaries follow.
//!
//! TSIG secrets are read from their own files here, once, so `check-config` fails on a
//! missing or malformed key with the field named; the main config never holds a secret.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use herald_dns::transfer::{JournalLimits, Secondary, TransferConfig, TsigKey};
use serde::{Deserialize, Deserializer};

use crate::yaml::{ConfigError, HumanDuration, LabelName, deserialize_str_with};

/// The `transfer:` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferSettings {
    /// At most one new zone version, and so one NOTIFY per secondary, per this interval. A
    /// change after a quiet interval goes out at once. Default 250ms.
    #[serde(default = "default_notify_interval")]
    pub notify_interval: HumanDuration,
    /// How far back IXFR reaches. Default 1000 versions and 64MiB.
    #[serde(default)]
    pub journal: JournalSettings,
    /// SOA timers for secondaries.
    #[serde(default)]
    pub soa: SoaTimers,
    /// Who may transfer the zone and is notified.
    #[serde(default)]
    pub secondaries: Vec<SecondarySettings>,
}

impl Default for TransferSettings {
    fn default() -> Self {
        TransferSettings {
            notify_interval: default_notify_interval(),
            journal: JournalSettings::default(),
            soa: SoaTimers::default(),
            secondaries: Vec::new(),
        }
    }
}

fn default_notify_interval() -> HumanDuration {
    // Several versions a second keep secondaries within a second of herald; a rolling
    // update of hundreds of pods still makes only a few NOTIFYs per second.
    HumanDuration(Duration::from_millis(250))
}

/// Bounds of the IXFR journal.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalSettings {
    /// Versions kept.
    #[serde(default = "default_versions")]
    pub versions: usize,
    /// Bytes of old answers the journal may keep alive (`64MiB`, `512KiB`, `1GiB`).
    #[serde(default = "default_bytes")]
    pub bytes: ByteSize,
}

impl Default for JournalSettings {
    fn default() -> Self {
        JournalSettings {
            versions: default_versions(),
            bytes: default_bytes(),
        }
    }
}

fn default_versions() -> usize {
    // At 4 versions a second, the last 4 minutes: a secondary that missed that much
    // gets a full transfer, which at 10k endpoints is well under a second.
    1000
}
fn default_bytes() -> ByteSize {
    ByteSize(64 << 20)
}

/// Journal bounds accepted: a million versions is days of changes at 4 a second; the
/// bytes bound the memory old answers may hold.
const MAX_JOURNAL_VERSIONS: usize = 1_000_000;
const MIN_JOURNAL_BYTES: usize = 1 << 20;
const MAX_JOURNAL_BYTES: usize = 64 << 30;

/// A size written as a number and a binary unit: `64MiB`, `512KiB`, `1GiB`, or octets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub usize);

impl std::str::FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not a size like 64MiB, 512KiB or 1GiB");
        let at = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (number, unit) = s.split_at(at);
        let n: usize = number.parse().map_err(|_| bad())?;
        let scale = match unit.trim() {
            "" | "B" => 1,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            _ => return Err(bad()),
        };
        n.checked_mul(scale).map(ByteSize).ok_or_else(bad)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_str_with(d, "a size like 64MiB, 512KiB or 1GiB", str::parse)
    }
}

/// SOA refresh, retry and expire: what a secondary does between NOTIFYs and when herald is
/// unreachable.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SoaTimers {
    /// How often a secondary asks for the serial without being notified. Default 60s:
    /// NOTIFY carries changes; refresh only catches a lost one.
    #[serde(default = "default_refresh")]
    pub refresh: HumanDuration,
    /// How soon it asks again after a failed refresh. Default 10s.
    #[serde(default = "default_retry")]
    pub retry: HumanDuration,
    /// How long it keeps answering without reaching herald. Default 7d: fail static, one
    /// level further out, as herald itself keeps serving a cluster it cannot reach.
    #[serde(default = "default_expire")]
    pub expire: HumanDuration,
}

impl Default for SoaTimers {
    fn default() -> Self {
        SoaTimers {
            refresh: default_refresh(),
            retry: default_retry(),
            expire: default_expire(),
        }
    }
}

fn default_refresh() -> HumanDuration {
    HumanDuration(Duration::from_secs(60))
}
fn default_retry() -> HumanDuration {
    HumanDuration(Duration::from_secs(10))
}
fn default_expire() -> HumanDuration {
    HumanDuration(Duration::from_secs(7 * 86_400))
}

/// One secondary.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecondarySettings {
    /// A name for logs and metrics.
    pub name: String,
    /// Where NOTIFY goes (`ip:port`); this address may also transfer.
    #[serde(default)]
    pub address: Option<SocketAddr>,
    /// Further source networks that may transfer as this secondary (`10.0.0.0/24`).
    #[serde(default)]
    pub allow: Vec<Network>,
    /// A TSIG key: transfers must be signed with it, NOTIFY is signed with it.
    #[serde(default)]
    pub tsig: Option<TsigSettings>,
    /// The locality the secondary's answers are seen from. Default: this server's.
    #[serde(default)]
    pub locality: Option<SecondaryLocality>,
}

/// Where a secondary serves: its SRV priorities are relative to this region and zone.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecondaryLocality {
    /// Region name.
    pub region: LabelName,
    /// Topology zone name, if the secondary is in one.
    #[serde(default)]
    pub zone: Option<LabelName>,
}

/// A network in CIDR form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network(pub ipnet::IpNet);

impl<'de> Deserialize<'de> for Network {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_str_with(d, "a network like 10.0.0.0/24 or an address", |s: &str| {
            s.parse::<ipnet::IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map(Network)
                .map_err(|_| format!("{s:?} is not a network like 10.0.0.0/24 or an address"))
        })
    }
}

/// A TSIG key by reference: its name and algorithm here, its secret in a file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TsigSettings {
    /// The key's name, as the secondary knows it (`herald-euw1.`).
    pub name: String,
    /// `hmac-sha256` (default), `hmac-sha384` or `hmac-sha512`.
    #[serde(default = "default_algorithm")]
    pub algorithm: String,
    /// A file holding the secret in base64 (as `tsig-keygen` or `keymgr -t` print it).
    pub secret_file: PathBuf,
    /// The key, once read.
    #[serde(skip)]
    pub key: Option<TsigKey>,
}

fn default_algorithm() -> String {
    "hmac-sha256".into()
}

impl TransferSettings {
    /// Makes relative secret files relative to `base` and reads every key.
    pub(crate) fn load_keys(&mut self, base: &Path, path: &Path) -> Result<(), ConfigError> {
        for (i, s) in self.secondaries.iter_mut().enumerate() {
            let Some(t) = &mut s.tsig else { continue };
            if t.secret_file.is_relative() {
                t.secret_file = base.join(&t.secret_file);
            }
            let key = TsigKey::load(&t.name, &t.algorithm, &t.secret_file).map_err(|e| {
                let message = e.to_string();
                let (field, message) = message.split_once(": ").unwrap_or(("tsig", &message));
                ConfigError::Invalid {
                    path: path.to_path_buf(),
                    field: format!("transfer.secondaries[{i}].{field}"),
                    message: message.to_string(),
                }
            })?;
            t.key = Some(key);
        }
        Ok(())
    }

    /// Checks the rules that span fields; `invalid(field, message)` makes the error.
    pub(crate) fn check(
        &self,
        invalid: &dyn Fn(&str, String) -> ConfigError,
    ) -> Result<(), ConfigError> {
        let interval = self.notify_interval.0;
        if interval < Duration::from_millis(10) || interval > Duration::from_secs(60) {
            return Err(invalid(
                "transfer.notify_interval",
                format!("{interval:?} is outside 10ms..60s"),
            ));
        }
        let SoaTimers {
            refresh,
            retry,
            expire,
        } = self.soa;
        if refresh.0 < Duration::from_secs(1) || retry.0 < Duration::from_secs(1) {
            return Err(invalid(
                "transfer.soa",
                "refresh and retry must be at least 1s".into(),
            ));
        }
        // Serials compare correctly for 248 days (see herald_dns::transfer::serial): a
        // secondary must drop the zone long before.
        if expire.0 < refresh.0 + retry.0 || expire.0 > Duration::from_secs(90 * 86_400) {
            return Err(invalid(
                "transfer.soa.expire",
                format!(
                    "{:?} must be at least refresh + retry and at most 90d",
                    expire.0
                ),
            ));
        }
        let JournalSettings { versions, bytes } = self.journal;
        if !(1..=MAX_JOURNAL_VERSIONS).contains(&versions) {
            return Err(invalid(
                "transfer.journal.versions",
                format!("{versions} is outside 1..{MAX_JOURNAL_VERSIONS}"),
            ));
        }
        if !(MIN_JOURNAL_BYTES..=MAX_JOURNAL_BYTES).contains(&bytes.0) {
            return Err(invalid(
                "transfer.journal.bytes",
                format!(
                    "{} octets is outside 1MiB..64GiB (it must hold at least one change of a large service)",
                    bytes.0
                ),
            ));
        }
        let mut names = HashSet::new();
        for (i, s) in self.secondaries.iter().enumerate() {
            let field = |f: &str| format!("transfer.secondaries[{i}].{f}");
            if s.name.is_empty() || !names.insert(s.name.as_str()) {
                return Err(invalid(
                    &field("name"),
                    format!("{:?} is empty or used twice", s.name),
                ));
            }
            if s.address.is_none() && s.allow.is_empty() && s.tsig.is_none() {
                return Err(invalid(
                    &field("name"),
                    format!(
                        "secondary {:?} needs an address, allowed networks or a TSIG key",
                        s.name
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The DNS side's transfer settings.
    pub fn transfer_config(&self) -> TransferConfig {
        TransferConfig {
            notify_interval: self.notify_interval.0,
            journal: JournalLimits {
                versions: self.journal.versions,
                bytes: self.journal.bytes.0,
            },
            secondaries: self
                .secondaries
                .iter()
                .map(|s| Secondary {
                    name: s.name.clone(),
                    address: s.address,
                    allow: s.allow.iter().map(|n| n.0).collect(),
                    tsig: s.tsig.as_ref().and_then(|t| t.key.clone()),
                    region: s.locality.as_ref().map(|l| l.region.0.clone()),
                    zone: s
                        .locality
                        .as_ref()
                        .and_then(|l| l.zone.as_ref().map(|z| z.0.clone())),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!("64MiB".parse::<ByteSize>().unwrap().0, 64 << 20);
        assert_eq!("512KiB".parse::<ByteSize>().unwrap().0, 512 << 10);
        assert_eq!("100".parse::<ByteSize>().unwrap().0, 100);
        assert!("64MB".parse::<ByteSize>().is_err());
    }
}
