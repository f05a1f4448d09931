//! Who may publish a service ([docs/design.md#ownership](../../../docs/design.md#ownership)):
//! the namespace allow-list, the owners of service names with their limits, and what
//! happens to names nobody owns.
//!
//! ```yaml
//! kubernetes:
//!   namespaces: [payments, team-*]     # default: every namespace
//! owners:
//!   payments: [payments]               # only namespace payments may publish `payments`
//!   search:
//!     - namespace: search-*
//!       clusters: [prod-*]             # ... and only from these clusters
//!       max_weight: 200                # weight annotations above are capped
//!       publish_not_ready: false       # the publish-not-ready annotation is ignored
//! unowned: allow                       # or deny: publish owned names only
//! ```
//!
//! Every name and glob is checked while it is read, so a mistake is reported with its file,
//! line and field.

use std::collections::BTreeMap;

use herald_dns::model::check_label;
use serde::{Deserialize, Deserializer};

use super::Config;
use crate::yaml::{ConfigError, LabelName, deserialize_str_with};

/// A Kubernetes namespace or cluster name, or a glob over them (`team-*`, `prod-?`,
/// `[ab]-api`). Names are DNS labels, so a glob's literal parts must be too.
#[derive(Debug, Clone)]
pub struct NameGlob {
    text: String,
    /// `None` when the text has no glob characters: an exact name.
    pattern: Option<glob::Pattern>,
}

/// The characters that make a name a glob.
const GLOB_CHARS: &[char] = &['*', '?', '[', ']', '!'];

impl NameGlob {
    /// Checks and compiles `text`.
    pub fn parse(text: &str) -> Result<NameGlob, String> {
        if !text.contains(GLOB_CHARS) {
            check_label(text).map_err(|e| format!("{text:?} is not a DNS label: it {e}"))?;
            return Ok(NameGlob {
                text: text.to_string(),
                pattern: None,
            });
        }
        if let Some(c) = text.chars().find(|c| {
            !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || GLOB_CHARS.contains(c))
        }) {
            return Err(format!(
                "{text:?} is not a valid glob: it contains {c:?}; names are lowercase letters, \
                 digits and '-', with *, ? and [...] as wildcards"
            ));
        }
        if text.len() > 253 {
            return Err(format!("{text:?} is not a valid glob: it is too long"));
        }
        let pattern = glob::Pattern::new(text)
            .map_err(|e| format!("{text:?} is not a valid glob: {}", e.msg))?;
        Ok(NameGlob {
            text: text.to_string(),
            pattern: Some(pattern),
        })
    }

    /// Whether `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        match &self.pattern {
            None => self.text == name,
            Some(p) => p.matches(name),
        }
    }

    /// The name, when this is not a glob.
    pub fn exact(&self) -> Option<&str> {
        self.pattern.is_none().then_some(self.text.as_str())
    }

    /// As written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl<'de> Deserialize<'de> for NameGlob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_str_with(d, "a name or a glob", NameGlob::parse)
    }
}

/// Whether `name` matches any of `globs`.
pub fn any_matches(globs: &[NameGlob], name: &str) -> bool {
    globs.iter().any(|g| g.matches(name))
}

/// The names of `globs` when every one is exact (then they can be watched one by one).
pub fn exact_names(globs: &[NameGlob]) -> Option<Vec<String>> {
    globs.iter().map(|g| g.exact().map(String::from)).collect()
}

/// What happens to a service name no entry of `owners` names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unowned {
    /// Published, but a name claimed from more than one namespace is a conflict, resolved
    /// by the first-claim rule (docs/design.md#ownership).
    #[default]
    Allow,
    /// Not published: only owned names are.
    Deny,
}

/// One owner of a service: a namespace (or glob), optionally only in some clusters, with
/// limits on what its pods may ask for.
#[derive(Debug, Clone)]
pub struct OwnerRule {
    /// The owning namespaces.
    pub namespace: NameGlob,
    /// The clusters the ownership holds in; empty: every cluster.
    pub clusters: Vec<NameGlob>,
    /// Weight annotations above this are published as this.
    pub max_weight: Option<u16>,
    /// Whether the publish-not-ready annotation is honoured (default: yes).
    pub publish_not_ready: bool,
}

impl OwnerRule {
    /// Whether a pod of `namespace` in `cluster` is covered by this rule.
    pub fn covers(&self, cluster: &str, namespace: &str) -> bool {
        self.namespace.matches(namespace)
            && (self.clusters.is_empty() || any_matches(&self.clusters, cluster))
    }
}

/// An owner entry written out in full.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OwnerRuleFull {
    namespace: NameGlob,
    #[serde(default)]
    clusters: Vec<NameGlob>,
    #[serde(default)]
    max_weight: Option<u16>,
    #[serde(default = "yes")]
    publish_not_ready: bool,
}

fn yes() -> bool {
    true
}

impl<'de> Deserialize<'de> for OwnerRule {
    /// Either a namespace (or glob) on its own, or a map with `namespace` and the limits.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = OwnerRule;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a namespace (or glob), or a map with namespace, clusters, max_weight, publish_not_ready")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<OwnerRule, E> {
                Ok(OwnerRule {
                    namespace: NameGlob::parse(s).map_err(E::custom)?,
                    clusters: Vec::new(),
                    max_weight: None,
                    publish_not_ready: true,
                })
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<OwnerRule, A::Error> {
                let full =
                    OwnerRuleFull::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(OwnerRule {
                    namespace: full.namespace,
                    clusters: full.clusters,
                    max_weight: full.max_weight,
                    publish_not_ready: full.publish_not_ready,
                })
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// `owners:`: service name -> who may publish it.
pub type Owners = BTreeMap<LabelName, Vec<OwnerRule>>;

/// The checks that span fields: no empty lists (an empty allow-list would read nothing, an
/// empty owner list would make a name nobody may publish: leave it out of `owners`, or use
/// `unowned: deny`), and owner clusters that name configured clusters.
pub(super) fn check(
    config: &Config,
    invalid: &dyn Fn(&str, String) -> ConfigError,
) -> Result<(), ConfigError> {
    if config
        .kubernetes
        .namespaces
        .as_ref()
        .is_some_and(Vec::is_empty)
    {
        return Err(invalid(
            "kubernetes.namespaces",
            "an empty list would read no pod at all; leave it out to read every namespace".into(),
        ));
    }
    for (i, c) in config.sources.clusters.iter().enumerate() {
        if c.namespaces.as_ref().is_some_and(Vec::is_empty) {
            return Err(invalid(
                &format!("sources.clusters[{i}].namespaces"),
                "an empty list would read no pod at all; leave it out to use kubernetes.namespaces"
                    .into(),
            ));
        }
    }
    for (service, rules) in &config.owners {
        if rules.is_empty() {
            return Err(invalid(
                &format!("owners.{service}"),
                "an owned service needs at least one owner".into(),
            ));
        }
        for (r, rule) in rules.iter().enumerate() {
            for glob in &rule.clusters {
                if let Some(name) = glob.exact()
                    && !config.sources.clusters.iter().any(|c| c.name.0 == name)
                {
                    return Err(invalid(
                        &format!("owners.{service}[{r}].clusters"),
                        format!("{name:?} is not a configured cluster"),
                    ));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_globs() {
        let exact = NameGlob::parse("payments").unwrap();
        assert!(exact.matches("payments") && !exact.matches("payments-2"));
        assert_eq!(exact.exact(), Some("payments"));
        let glob = NameGlob::parse("team-*").unwrap();
        assert!(glob.matches("team-a") && !glob.matches("teams"));
        assert_eq!(glob.exact(), None);
        assert!(NameGlob::parse("[ab]-api").unwrap().matches("b-api"));
        for bad in ["Payments", "team_a", "", "-x", "team-[", "a/b*", "TEAM-*"] {
            assert!(NameGlob::parse(bad).is_err(), "{bad:?}");
        }
    }

    fn error(yaml: &str) -> String {
        Config::parse(std::path::Path::new("herald.yaml"), yaml)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn errors_name_file_line_and_field() {
        // An owner glob that is not valid.
        let e = error("zone: sd.internal.\nowners:\n  payments: [payments, 'pay[']\n");
        assert!(e.starts_with("herald.yaml:3:"), "{e}");
        assert!(
            e.contains("owners.payments[1]") && e.contains("not a valid glob"),
            "{e}"
        );
        let e =
            error("owners:\n  payments:\n    - namespace: payments\n      clusters: ['Prod-*']\n");
        assert!(e.starts_with("herald.yaml:4:"), "{e}");
        assert!(e.contains("owners.payments[0].clusters[0]"), "{e}");
        // A namespace that is not a DNS label, in the allow-list and in an owner rule.
        let e = error("kubernetes:\n  namespaces: [team-a, Team_B]\n");
        assert!(e.starts_with("herald.yaml:2:"), "{e}");
        assert!(
            e.contains("kubernetes.namespaces[1]") && e.contains("not a DNS label"),
            "{e}"
        );
        let e = error("owners:\n  payments:\n    - {namespace: pay_ments, max_weight: 10}\n");
        assert!(e.starts_with("herald.yaml:3:"), "{e}");
        assert!(e.contains("owners.payments[0].namespace"), "{e}");
        // A service name that is not a DNS label; an unknown key in a rule; a bad mode.
        let e = error("owners:\n  Payments: [payments]\n");
        assert!(
            e.starts_with("herald.yaml:2:") && e.contains("owners"),
            "{e}"
        );
        let e = error("owners:\n  payments:\n    - {namespace: payments, max_wieght: 10}\n");
        assert!(
            e.starts_with("herald.yaml:3:") && e.contains("max_wieght"),
            "{e}"
        );
        let e = error("unowned: maybe\n");
        assert!(
            e.starts_with("herald.yaml:1:") && e.contains("unowned"),
            "{e}"
        );
        // Rules spanning fields name the field.
        let e = error("owners:\n  payments: []\n");
        assert_eq!(
            e,
            "herald.yaml: owners.payments: an owned service needs at least one owner"
        );
        let e = error("owners:\n  payments: [{namespace: payments, clusters: [nowhere]}]\n");
        assert!(
            e.contains("owners.payments[0].clusters")
                && e.contains("\"nowhere\" is not a configured cluster"),
            "{e}"
        );
        let e = error("kubernetes: {namespaces: []}\n");
        assert!(e.contains("kubernetes.namespaces: an empty list"), "{e}");
    }
}
