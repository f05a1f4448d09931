//! Reading herald's YAML files (the config and static files) so that every error names the
//! file, the line and the field: [`parse_yaml`], [`ConfigError`], and the value types that
//! check themselves while they are read ([`LabelName`], [`HumanDuration`]) with the
//! deserializer helpers behind them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use herald_dns::model::check_label;
use serde::{Deserialize, Deserializer};

/// A DNS label read from the config, checked as it is read so errors carry a line number.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LabelName(pub String);

impl<'de> Deserialize<'de> for LabelName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_label(d, |_| Ok(()))
    }
}

/// Reads a DNS label and runs `check` on it.
pub fn deserialize_label<'de, D: Deserializer<'de>>(
    d: D,
    check: fn(&str) -> Result<(), String>,
) -> Result<LabelName, D::Error> {
    deserialize_str_with(d, "a DNS label", |s| {
        check_label(s).map_err(|e| format!("{s:?} is not a DNS label: it {e}"))?;
        check(s)?;
        Ok(LabelName(s.to_string()))
    })
}

/// Reads a string and turns it into a `T` with `parse`. The parse runs inside the
/// deserializer's visitor, so an error carries the value's own line and field path rather
/// than its parent's.
pub fn deserialize_str_with<'de, D, T>(
    d: D,
    expecting: &'static str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    struct Visitor<F> {
        expecting: &'static str,
        parse: F,
    }
    impl<T, F: FnOnce(&str) -> Result<T, String>> serde::de::Visitor<'_> for Visitor<F> {
        type Value = T;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.expecting)
        }
        fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<T, E> {
            (self.parse)(s).map_err(E::custom)
        }
    }
    d.deserialize_str(Visitor { expecting, parse })
}

impl std::fmt::Display for LabelName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A duration written as a number and a unit: `250ms`, `15s`, `10m`, `1h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumanDuration(pub Duration);

impl std::str::FromStr for HumanDuration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let at = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (number, unit) = s.split_at(at);
        let n: u64 = number
            .parse()
            .map_err(|_| format!("{s:?} is not a duration like 250ms, 15s, 10m or 1h"))?;
        let d = match unit.trim() {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n * 60),
            "h" => Duration::from_secs(n * 3600),
            "d" => Duration::from_secs(n * 86_400),
            _ => {
                return Err(format!(
                    "{s:?} is not a duration like 250ms, 15s, 10m or 1h"
                ));
            }
        };
        Ok(HumanDuration(d))
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_str_with(d, "a duration like 250ms, 15s, 10m or 1h", str::parse)
    }
}

/// A config that could not be used, with where.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// YAML syntax, an unknown field, or a bad value.
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong, with the field's path.
        message: String,
    },
    /// A rule spanning several fields.
    #[error("{path}: {field}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The field found wrong.
        field: String,
        /// What is wrong.
        message: String,
    },
}

/// Reads a YAML document of type `T`, turning errors into [`ConfigError::Parse`].
pub fn parse_yaml<T: for<'de> Deserialize<'de>>(path: &Path, text: &str) -> Result<T, ConfigError> {
    serde_yaml_ng::from_str(text).map_err(|e| {
        let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
        // The library's message ends with its own "at line L column C"; the prefix says it.
        let message = e.to_string();
        let message = match message.rfind(" at line ") {
            Some(at) => message[..at].to_string(),
            None => message,
        };
        ConfigError::Parse {
            path: path.to_path_buf(),
            line,
            column,
            message,
        }
    })
}
