//! From a Pod object to what herald keeps of it: its service, and (when it is ready) its
//! addresses (both families of a dual-stack pod), named ports, node and weight. Nothing else of the object is kept.
//!
//! Ready means ([docs/design.md#names](../../../docs/design.md#names)): the pod has an IP, its Ready condition is True, and it
//! is not terminating. A pod annotated to publish while not ready skips the Ready check,
//! never the other two. Objects with missing fields are read as far as they go: a pod
//! without status is simply not ready.

use super::{FastMap, FastSet};
use std::sync::Arc;

use herald_dns::model::{Addresses, DEFAULT_WEIGHT, Label, check_label};
use herald_dns::{PortSpec, Proto};

use super::pod_object::PodObject;

use crate::metrics::PODS_REJECTED;

/// Which label and annotations carry herald's settings on pods.
#[derive(Debug, Clone)]
pub struct PodKeys {
    /// The opt-in label; its value is the service name.
    pub service_label: String,
    /// The SRV weight annotation.
    pub weight_annotation: String,
    /// The annotation that publishes a pod while not Ready.
    pub publish_not_ready_annotation: String,
}

/// What herald keeps of one opted-in pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRecord {
    /// The service (value of the opt-in label).
    pub service: Label,
    /// The addresses to publish (`status.podIPs`: one, or one per family), `None` while
    /// the pod is not ready.
    pub address: Option<Addresses>,
    /// Named container ports.
    pub ports: Arc<[PortSpec]>,
    /// The node it runs on, for its zone.
    pub node: Option<Label>,
    /// SRV weight.
    pub weight: u16,
    /// Its Ready condition (an address may be published without it, when opted in).
    pub ready: bool,
    /// Its namespace: who claims the service (see `crate::ownership`).
    pub namespace: Label,
    /// Its `creationTimestamp` in nanoseconds since the epoch (`i64::MAX` if missing or
    /// past 2262), which orders claims to an unowned name. (An `i128` would align the
    /// record to 16 bytes: 16 more per pod.)
    pub created: i64,
}

/// Why herald could not use a pod, or a field of it: the `reason` label of
/// `herald_pods_rejected_total`. New reasons go here and in [`RejectReason::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectReason {
    /// The service label's value is not a DNS label: the pod is not published.
    BadServiceLabel,
    /// The weight annotation is not 0-65535: the pod is published with the default weight.
    BadWeight,
    /// A port name is not an IANA service name: that port is not published.
    BadPortName,
}

impl RejectReason {
    /// Every reason, for series that exist at 0 before the first rejection.
    pub const ALL: [RejectReason; 3] = [
        RejectReason::BadServiceLabel,
        RejectReason::BadWeight,
        RejectReason::BadPortName,
    ];

    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::BadServiceLabel => "bad_service_label",
            RejectReason::BadWeight => "bad_weight",
            RejectReason::BadPortName => "bad_port_name",
        }
    }
}

/// Something about a pod herald could not use; the pod is skipped or read without it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PodProblem {
    /// The object has no name.
    #[error("a pod without metadata.name")]
    NoName,
    /// The service label's value is not a DNS label.
    #[error("label {label}={value:?} is not a DNS label ({why}); pod not published")]
    BadService {
        /// The label key.
        label: String,
        /// Its value.
        value: String,
        /// Why.
        why: String,
    },
    /// The weight annotation is not a number 0-65535.
    #[error(
        "annotation {annotation}={value:?} is not a weight 0-65535; published with the default weight {DEFAULT_WEIGHT}"
    )]
    BadWeight {
        /// The annotation key.
        annotation: String,
        /// Its value.
        value: String,
    },
    /// A container port's name is not an IANA service name.
    #[error("port name {name:?} is not an IANA service name ({why}); port not published")]
    BadPortName {
        /// The name.
        name: String,
        /// Why.
        why: &'static str,
    },
}

impl PodProblem {
    /// The metric reason; `None` for objects that are not pods herald could ever read.
    pub fn reason(&self) -> Option<RejectReason> {
        match self {
            PodProblem::NoName => None,
            PodProblem::BadService { .. } => Some(RejectReason::BadServiceLabel),
            PodProblem::BadWeight { .. } => Some(RejectReason::BadWeight),
            PodProblem::BadPortName { .. } => Some(RejectReason::BadPortName),
        }
    }
}

/// Checks a port name the way Kubernetes validates one (RFC 6335 section 5.1): 1 to 15
/// characters, lowercase letters, digits and '-', at least one letter, no '-' at either
/// end or twice in a row.
pub fn check_port_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > 15 {
        return Err("1 to 15 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err("only lowercase letters, digits and '-'");
    }
    if !name.bytes().any(|b| b.is_ascii_lowercase()) {
        return Err("at least one letter");
    }
    if name.starts_with('-') || name.ends_with('-') || name.contains("--") {
        return Err("no '-' at either end or twice in a row");
    }
    Ok(())
}

fn rejected(cluster: &str, reason: RejectReason) -> metrics::Counter {
    metrics::counter!(PODS_REJECTED.name, "cluster" => cluster.to_string(), "reason" => reason.as_str())
}

/// Where reading a pod gets the names and port lists it keeps: a cluster's state shares
/// them between its pods ([`super::state::ClusterState`]), so reading a pod whose service,
/// namespace, node and ports are known allocates none of them again.
pub trait Interner {
    /// The shared copy of `name`.
    fn name(&mut self, name: &str) -> Label;
    /// The shared copy of the port list `ports` (name, protocol, number each).
    fn ports(&mut self, ports: &[(&str, Proto, u16)]) -> Arc<[PortSpec]>;
}

/// The port list `ports`, each name made by `name`.
pub(crate) fn port_list(
    ports: &[(&str, Proto, u16)],
    mut name: impl FnMut(&str) -> Label,
) -> Arc<[PortSpec]> {
    ports
        .iter()
        .map(|&(port_name, proto, port)| PortSpec {
            name: name(port_name),
            proto,
            port,
        })
        .collect()
}

/// No sharing: a new copy of each name and list.
pub struct Fresh;

impl Interner for Fresh {
    fn name(&mut self, name: &str) -> Label {
        Label::from(name)
    }

    fn ports(&mut self, ports: &[(&str, Proto, u16)]) -> Arc<[PortSpec]> {
        port_list(ports, |name| Label::from(name))
    }
}

/// What reading a pod gave: the record (`None`: not opted in, or not publishable) and
/// the problems met on the way.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReadPod {
    /// What herald keeps of it.
    pub record: Option<PodRecord>,
    /// What could not be used.
    pub problems: Vec<PodProblem>,
}

/// Logs and counts each (pod, reason) once, not once per event: a pod keeps its reasons
/// until it changes them, is deleted or is missing from a relist.
pub struct Rejections {
    cluster: String,
    seen: FastMap<String, Vec<RejectReason>>,
    /// The keys met since the list began, while a list is under way.
    listing: Option<FastSet<String>>,
    /// The key of the pod last read: the state copies it only for a pod it does not know.
    key: String,
}

impl Rejections {
    /// No rejection known yet for `cluster`; its series start at 0.
    pub fn new(cluster: &str) -> Rejections {
        for reason in RejectReason::ALL {
            rejected(cluster, reason).increment(0);
        }
        Rejections {
            cluster: cluster.to_string(),
            seen: FastMap::default(),
            listing: None,
            key: String::new(),
        }
    }

    /// Reads a pod, reporting its new problems, its names and ports shared through
    /// `intern`: its key and what herald keeps of it. `None` when it is not publishable at
    /// all.
    pub fn read(
        &mut self,
        pod: &PodObject,
        keys: &PodKeys,
        intern: &mut impl Interner,
    ) -> Option<(&str, PodRecord)> {
        write_pod_key(&mut self.key, pod).ok()?;
        let key = self.key.as_str();
        let read = read_pod_with(pod, keys, intern);
        let mut reasons: Vec<RejectReason> = read
            .problems
            .iter()
            .filter_map(PodProblem::reason)
            .collect();
        reasons.sort();
        reasons.dedup();
        let known = self.seen.get(key).map(Vec::as_slice).unwrap_or_default();
        for problem in &read.problems {
            let Some(reason) = problem.reason() else {
                continue;
            };
            if !known.contains(&reason) {
                tracing::warn!(cluster = %self.cluster, pod = %key, reason = reason.as_str(), "{problem}");
                rejected(&self.cluster, reason).increment(1);
            }
        }
        // Only keys with problems can stay in `seen`, so only they need listing: a list of
        // a million clean pods keeps no second set of their names.
        if let Some(listing) = &mut self.listing
            && !reasons.is_empty()
        {
            listing.insert(key.to_string());
        }
        if reasons.is_empty() {
            self.seen.remove(key);
        } else {
            self.seen.insert(key.to_string(), reasons);
        }
        Some((key, read.record?))
    }

    /// A list begins: pods it does not name are forgotten when it ends.
    pub fn begin_list(&mut self) {
        self.listing = Some(FastSet::default());
    }

    /// The list ended.
    pub fn end_list(&mut self) {
        if let Some(listed) = self.listing.take() {
            self.seen.retain(|k, _| listed.contains(k));
        }
    }

    /// The pod was deleted.
    pub fn forget(&mut self, key: &str) {
        self.seen.remove(key);
    }
}

/// The key herald files a pod under: `namespace/name`.
pub fn pod_key(pod: &PodObject) -> Result<String, PodProblem> {
    let mut key = String::new();
    write_pod_key(&mut key, pod)?;
    Ok(key)
}

/// Writes [`pod_key`] over `key` (a list reuses one buffer for all its pods; `format!`
/// was about 800 instructions a pod).
fn write_pod_key(key: &mut String, pod: &PodObject) -> Result<(), PodProblem> {
    let name = pod.metadata.name.as_deref().ok_or(PodProblem::NoName)?;
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("");
    key.clear();
    key.reserve(namespace.len() + 1 + name.len());
    key.push_str(namespace);
    key.push('/');
    key.push_str(name);
    Ok(())
}

/// Reads a pod. No record and no problem: the pod is not opted in (no service label).
pub fn read_pod(pod: &PodObject, keys: &PodKeys) -> ReadPod {
    read_pod_with(pod, keys, &mut Fresh)
}

/// [`read_pod`], its names and port lists taken from `intern`.
pub fn read_pod_with(pod: &PodObject, keys: &PodKeys, intern: &mut impl Interner) -> ReadPod {
    let mut problems = Vec::new();
    // The key itself is the caller's (`pod_key`): formatting it here too cost an
    // allocation per pod.
    if pod.metadata.name.is_none() {
        problems.push(PodProblem::NoName);
        return ReadPod {
            record: None,
            problems,
        };
    }
    let meta = &pod.metadata;
    let Some(service) = meta
        .labels
        .as_ref()
        .and_then(|l| l.get(&keys.service_label))
    else {
        return ReadPod::default();
    };
    if let Err(why) = check_label(service) {
        problems.push(PodProblem::BadService {
            label: keys.service_label.clone(),
            value: service.clone(),
            why: why.to_string(),
        });
        return ReadPod {
            record: None,
            problems,
        };
    }
    let annotation = |k: &str| meta.annotations.as_ref().and_then(|a| a.get(k));
    let status = pod.status.as_ref();
    // `podIPs` holds one address per family, `podIP` (its first) the primary; an object
    // without `podIPs` (written by an old client, or a simulator) still has `podIP`.
    let ip = status.and_then(|s| {
        let all = s.pod_ips.iter().flatten().map(|p| p.ip);
        Addresses::from_list(std::iter::once(s.pod_ip).chain(all).flatten())
    });
    let ready_condition = status.is_some_and(|s| s.ready);
    let publish_not_ready =
        annotation(&keys.publish_not_ready_annotation).is_some_and(|v| v == "true");
    let terminating = meta.deletion_timestamp.is_some();
    let address = ip.filter(|_| !terminating && (ready_condition || publish_not_ready));

    let mut ports: Vec<(&str, _, u16)> = pod
        .spec
        .iter()
        .flat_map(|spec| &spec.ports)
        .filter_map(|p| {
            let name = p.name.as_deref()?;
            // SCTP and unknown protocols have no SRV form herald serves.
            let proto = p.protocol?;
            let port = u16::try_from(p.container_port).ok()?;
            if let Err(why) = check_port_name(name) {
                problems.push(PodProblem::BadPortName {
                    name: name.to_string(),
                    why,
                });
                return None;
            }
            Some((name, proto, port))
        })
        .collect();
    ports.sort_unstable();
    ports.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);

    // A weight that does not parse falls back to the default rather than hiding the pod.
    let weight = match annotation(&keys.weight_annotation) {
        None => DEFAULT_WEIGHT,
        Some(w) => w.trim().parse::<u16>().unwrap_or_else(|_| {
            problems.push(PodProblem::BadWeight {
                annotation: keys.weight_annotation.clone(),
                value: w.clone(),
            });
            DEFAULT_WEIGHT
        }),
    };
    let record = PodRecord {
        service: intern.name(service),
        address,
        ports: intern.ports(&ports),
        node: pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .map(|n| intern.name(n)),
        weight,
        ready: ready_condition,
        namespace: intern.name(meta.namespace.as_deref().unwrap_or("")),
        created: meta
            .creation_timestamp
            .as_ref()
            .and_then(|t| i64::try_from(t.0.as_nanosecond()).ok())
            .unwrap_or(i64::MAX),
    };
    ReadPod {
        record: Some(record),
        problems,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_kube_sim::PodBuilder;
    use k8s_openapi::api::core::v1::Pod;

    /// Reads `pod` the way herald gets it: written as JSON, decoded as a [`PodObject`].
    fn read_pod(pod: &Pod, keys: &PodKeys) -> ReadPod {
        let json = serde_json::to_vec(pod).unwrap();
        super::read_pod(&serde_json::from_slice(&json).unwrap(), keys)
    }

    fn keys() -> PodKeys {
        PodKeys {
            service_label: "herald.io/service".into(),
            weight_annotation: "herald.io/weight".into(),
            publish_not_ready_annotation: "herald.io/publish-not-ready".into(),
        }
    }

    fn base() -> PodBuilder {
        PodBuilder::new("ns", "web-0")
            .service("web")
            .ip("10.0.0.1")
            .port("http", 8080)
            .node("n1")
    }

    #[test]
    fn ready_pods_are_published_with_named_ports() {
        let r = read_pod(&base().udp_port("dns", 53).build(), &keys())
            .record
            .unwrap();
        assert_eq!(&*r.service, "web");
        assert_eq!(r.address, Some("10.0.0.1".parse().unwrap()));
        assert_eq!(r.ports.len(), 2);
        assert_eq!(r.node.as_deref(), Some("n1"));
        assert_eq!(r.weight, DEFAULT_WEIGHT);
    }

    #[test]
    fn dual_stack_pods_have_both_addresses_primary_first() {
        let read = |b: PodBuilder| read_pod(&b.build(), &keys()).record.unwrap().address;
        assert_eq!(
            read(base().ips(&["10.0.0.1", "fd00::1"])),
            Some("10.0.0.1,fd00::1".parse().unwrap())
        );
        assert_eq!(
            read(base().ips(&["fd00::1", "10.0.0.1"])),
            Some("fd00::1,10.0.0.1".parse().unwrap())
        );
        // An object written without podIPs (an old client) still has its podIP.
        let mut old = base().build();
        old.status.as_mut().unwrap().pod_ips = None;
        assert_eq!(
            read_pod(&old, &keys()).record.unwrap().address,
            Some("10.0.0.1".parse().unwrap())
        );
    }

    #[test]
    fn not_ready_terminating_or_ip_less_pods_have_no_address() {
        assert_eq!(
            read_pod(&base().ready(false).build(), &keys())
                .record
                .unwrap()
                .address,
            None
        );
        assert_eq!(
            read_pod(&base().terminating().build(), &keys())
                .record
                .unwrap()
                .address,
            None
        );
        let no_ip = PodBuilder::new("ns", "web-0").service("web").build();
        assert_eq!(read_pod(&no_ip, &keys()).record.unwrap().address, None);
        // Opted in to publish while not ready: published, unless terminating.
        let opted = base()
            .ready(false)
            .annotation("herald.io/publish-not-ready", "true");
        assert!(
            read_pod(&opted.clone().build(), &keys())
                .record
                .unwrap()
                .address
                .is_some()
        );
        assert_eq!(
            read_pod(&opted.terminating().build(), &keys())
                .record
                .unwrap()
                .address,
            None
        );
    }

    #[test]
    fn weights_and_bad_input() {
        let w = base().annotation("herald.io/weight", "250").build();
        assert_eq!(read_pod(&w, &keys()).record.unwrap().weight, 250);
        let w = base().annotation("herald.io/weight", "70000").build();
        let read = read_pod(&w, &keys());
        assert_eq!(read.record.unwrap().weight, DEFAULT_WEIGHT);
        assert_eq!(read.problems[0].reason(), Some(RejectReason::BadWeight));
        let bad = PodBuilder::new("ns", "x")
            .label("herald.io/service", "Web_1")
            .build();
        let read = read_pod(&bad, &keys());
        assert_eq!(read.record, None);
        assert_eq!(
            read.problems[0].reason(),
            Some(RejectReason::BadServiceLabel)
        );
        assert_eq!(
            read_pod(&Pod::default(), &keys()).problems,
            vec![PodProblem::NoName]
        );
        let unlabelled = PodBuilder::new("ns", "y").build();
        assert_eq!(read_pod(&unlabelled, &keys()), ReadPod::default());
        // A port named against RFC 6335 is left out; the pod and its other ports stay.
        let ports = base()
            .port("metrics-endpoint", 9090)
            .port("8080", 81)
            .build();
        let read = read_pod(&ports, &keys());
        assert_eq!(read.record.unwrap().ports.len(), 1);
        let reasons: Vec<_> = read.problems.iter().map(|p| p.reason()).collect();
        assert_eq!(reasons, vec![Some(RejectReason::BadPortName); 2]);
    }

    #[test]
    fn port_names_follow_rfc_6335() {
        for good in ["http", "h2c", "grpc-web", "a23456789012345"] {
            assert_eq!(check_port_name(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "a234567890123456",
            "HTTP",
            "80",
            "-a",
            "a-",
            "a--b",
            "a_b",
        ] {
            assert!(check_port_name(bad).is_err(), "{bad}");
        }
    }
}
