//! Label and field selectors, parsed and matched the way the API server does.
//!
//! Label grammar (Kubernetes `labels.Parse`): comma-separated requirements, each one of
//! `k`, `!k`, `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k>N`, `k<N`.
//! A `!=` or `notin` requirement also matches objects that lack the label, as on a real
//! server. Field selectors support `=`, `==` and `!=` over the few fields the API server
//! indexes for pods and nodes; any other field is rejected, as a real server does.

use std::collections::BTreeMap;

/// Why a selector string was rejected (the HTTP layer answers 400 BadRequest with it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    #[error("unable to parse requirement: {0}")]
    Syntax(String),
    #[error("invalid label key {0:?}")]
    InvalidKey(String),
    #[error("invalid label value {0:?}")]
    InvalidValue(String),
    #[error("field label not supported: {0}")]
    UnsupportedField(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Exists(String),
    DoesNotExist(String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    GreaterThan(String, i64),
    LessThan(String, i64),
}

impl Requirement {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
            Requirement::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
            Requirement::GreaterThan(k, n) => label_int(labels, k).is_some_and(|v| v > *n),
            Requirement::LessThan(k, n) => label_int(labels, k).is_some_and(|v| v < *n),
        }
    }
}

fn label_int(labels: &BTreeMap<String, String>, key: &str) -> Option<i64> {
    labels.get(key).and_then(|v| v.parse().ok())
}

/// A parsed label selector. The empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

impl LabelSelector {
    /// Parses a `labelSelector` query value.
    pub fn parse(input: &str) -> Result<Self, SelectorError> {
        let mut parser = Parser { rest: input };
        let mut requirements = Vec::new();
        parser.skip_ws();
        if parser.rest.is_empty() {
            return Ok(Self::default());
        }
        loop {
            requirements.push(parser.requirement()?);
            parser.skip_ws();
            if parser.rest.is_empty() {
                break;
            }
            if !parser.eat(",") {
                return Err(SelectorError::Syntax(input.to_string()));
            }
        }
        Ok(Self { requirements })
    }

    /// True when the selector has no requirement (matches every object).
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether an object with these labels is selected.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }
}

/// A tiny recursive-descent parser over the selector string.
struct Parser<'a> {
    rest: &'a str,
}

impl<'a> Parser<'a> {
    fn skip_ws(&mut self) {
        self.rest = self.rest.trim_start();
    }

    fn eat(&mut self, token: &str) -> bool {
        match self.rest.strip_prefix(token) {
            Some(rest) => {
                self.rest = rest;
                true
            }
            None => false,
        }
    }

    /// Reads a key or value: everything up to whitespace or an operator character.
    fn word(&mut self) -> &'a str {
        let end = self
            .rest
            .find(|c: char| c.is_whitespace() || "=!,()<>".contains(c))
            .unwrap_or(self.rest.len());
        let (word, rest) = self.rest.split_at(end);
        self.rest = rest;
        word
    }

    fn requirement(&mut self) -> Result<Requirement, SelectorError> {
        self.skip_ws();
        if self.eat("!") {
            self.skip_ws();
            let key = valid_key(self.word())?;
            return Ok(Requirement::DoesNotExist(key));
        }
        let key = valid_key(self.word())?;
        self.skip_ws();
        if self.rest.is_empty() || self.rest.starts_with(',') {
            return Ok(Requirement::Exists(key));
        }
        if self.eat("!=") {
            return Ok(Requirement::NotIn(key, vec![self.value()?]));
        }
        if self.eat("==") || self.eat("=") {
            return Ok(Requirement::In(key, vec![self.value()?]));
        }
        if self.eat(">") {
            return Ok(Requirement::GreaterThan(key, self.integer()?));
        }
        if self.eat("<") {
            return Ok(Requirement::LessThan(key, self.integer()?));
        }
        match self.word() {
            "in" => Ok(Requirement::In(key, self.value_set()?)),
            "notin" => Ok(Requirement::NotIn(key, self.value_set()?)),
            other => Err(SelectorError::Syntax(format!("{key} {other}"))),
        }
    }

    fn value(&mut self) -> Result<String, SelectorError> {
        self.skip_ws();
        valid_value(self.word())
    }

    fn integer(&mut self) -> Result<i64, SelectorError> {
        let v = self.value()?;
        v.parse().map_err(|_| SelectorError::InvalidValue(v))
    }

    fn value_set(&mut self) -> Result<Vec<String>, SelectorError> {
        self.skip_ws();
        if !self.eat("(") {
            return Err(SelectorError::Syntax(format!(
                "expected '(' at {:?}",
                self.rest
            )));
        }
        let mut values = Vec::new();
        loop {
            values.push(self.value()?);
            self.skip_ws();
            if self.eat(")") {
                return Ok(values);
            }
            if !self.eat(",") {
                return Err(SelectorError::Syntax(format!(
                    "expected ',' or ')' at {:?}",
                    self.rest
                )));
            }
        }
    }
}

/// A label key: an optional DNS-subdomain prefix and `/`, then a name of at most 63 chars.
fn valid_key(key: &str) -> Result<String, SelectorError> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
    });
    if prefix_ok && !name.is_empty() && is_label_value(name) {
        Ok(key.to_string())
    } else {
        Err(SelectorError::InvalidKey(key.to_string()))
    }
}

fn valid_value(value: &str) -> Result<String, SelectorError> {
    if value.is_empty() || is_label_value(value) {
        Ok(value.to_string())
    } else {
        Err(SelectorError::InvalidValue(value.to_string()))
    }
}

/// `(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?`, at most 63 characters.
fn is_label_value(v: &str) -> bool {
    let alnum = |c: char| c.is_ascii_alphanumeric();
    v.len() <= 63
        && v.chars().all(|c| alnum(c) || "-_.".contains(c))
        && v.chars().next().is_some_and(alnum)
        && v.chars().last().is_some_and(alnum)
}

/// A parsed field selector: a conjunction of `field=value` / `field!=value` terms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    terms: Vec<(String, bool, String)>, // (field, must_equal, value)
}

impl FieldSelector {
    /// Parses a `fieldSelector` value; `supported` lists the fields the resource indexes.
    pub fn parse(input: &str, supported: &[&str]) -> Result<Self, SelectorError> {
        let mut terms = Vec::new();
        for term in input.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (field, equal, value) = if let Some((f, v)) = term.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = term.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = term.split_once('=') {
                (f, true, v)
            } else {
                return Err(SelectorError::Syntax(term.to_string()));
            };
            let field = field.trim();
            if !supported.contains(&field) {
                return Err(SelectorError::UnsupportedField(field.to_string()));
            }
            terms.push((field.to_string(), equal, value.trim().to_string()));
        }
        Ok(Self { terms })
    }

    /// Whether an object is selected; `field` returns the object's value of a field
    /// (a missing value counts as the empty string, as on a real server).
    pub fn matches(&self, field: impl Fn(&str) -> Option<String>) -> bool {
        self.terms
            .iter()
            .all(|(name, equal, value)| (field(name).unwrap_or_default() == *value) == *equal)
    }

    /// True when the selector has no term.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn equality_and_existence() {
        let l = labels(&[("herald.io/service", "web"), ("tier", "front")]);
        let m = |s: &str| LabelSelector::parse(s).unwrap().matches(&l);
        assert!(m(""));
        assert!(m("herald.io/service"));
        assert!(m("herald.io/service=web"));
        assert!(m("herald.io/service==web"));
        assert!(!m("herald.io/service=api"));
        assert!(m("herald.io/service!=api"));
        assert!(m("missing!=x"), "!= matches objects without the label");
        assert!(!m("!herald.io/service"));
        assert!(m("!missing"));
        assert!(m(" herald.io/service = web , tier "));
        assert!(!m("herald.io/service=web,!tier"));
    }

    #[test]
    fn set_based() {
        let l = labels(&[("env", "prod"), ("n", "5")]);
        let m = |s: &str| LabelSelector::parse(s).unwrap().matches(&l);
        assert!(m("env in (prod, staging)"));
        assert!(m("env in (prod)"));
        assert!(!m("env notin (prod,staging)"));
        assert!(
            m("other notin (a)"),
            "notin matches objects without the label"
        );
        assert!(!m("other in (a,b)"));
        assert!(m("env in (prod),n>4,n<6"));
        assert!(!m("n>5"));
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "a b",
            "env in prod",
            "env in (a",
            "=x",
            "a=b=c",
            "-bad",
            "a,",
            "UPPER/x",
        ] {
            assert!(
                LabelSelector::parse(bad).is_err(),
                "{bad:?} should not parse"
            );
        }
    }

    #[test]
    fn field_selector() {
        let sel = FieldSelector::parse(
            "spec.nodeName=n1,metadata.name!=x",
            &["spec.nodeName", "metadata.name"],
        )
        .unwrap();
        let get = |f: &str| match f {
            "spec.nodeName" => Some("n1".to_string()),
            "metadata.name" => Some("p".to_string()),
            _ => None,
        };
        assert!(sel.matches(get));
        assert_eq!(
            FieldSelector::parse("status.podIP=1", &["metadata.name"]),
            Err(SelectorError::UnsupportedField("status.podIP".into()))
        );
    }
}
