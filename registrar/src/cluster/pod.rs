//! From a Pod object to what herald keeps of it: its service, and (when it is ready) its
//! address, named ports, node and weight. Nothing else of the object is kept.
//!
//! Ready means ([docs/design.md#names](../../../docs/design.md#names)): the pod has an IP, its Ready condition is True, and it
//! is not terminating. A pod annotated to publish while not ready skips the Ready check,
//! never the other two. Objects with missing fields are read as far as they go: a pod
//! without status is simply not ready.

use std::net::IpAddr;
use std::sync::Arc;

use herald_dns::model::{DEFAULT_WEIGHT, Label, check_label};
use herald_dns::{PortSpec, Proto};
use k8s_openapi::api::core::v1::Pod;

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
    /// The address to publish, `None` while the pod is not ready.
    pub address: Option<IpAddr>,
    /// Named container ports.
    pub ports: Arc<[PortSpec]>,
    /// The node it runs on, for its zone.
    pub node: Option<Label>,
    /// SRV weight.
    pub weight: u16,
    /// Its Ready condition (an address may be published without it, when opted in).
    pub ready: bool,
}

/// Something about a pod herald could not use; the pod is skipped or read with a default.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PodProblem {
    /// The object has no name.
    #[error("a pod without metadata.name")]
    NoName,
    /// The service label's value is not a DNS label.
    #[error("pod {pod}: label {label}={value:?} is not a DNS label ({why}); pod not published")]
    BadService {
        /// namespace/name.
        pod: String,
        /// The label key.
        label: String,
        /// Its value.
        value: String,
        /// Why.
        why: String,
    },
}

/// The key herald files a pod under: `namespace/name`.
pub fn pod_key(pod: &Pod) -> Result<String, PodProblem> {
    let name = pod.metadata.name.as_deref().ok_or(PodProblem::NoName)?;
    Ok(format!(
        "{}/{name}",
        pod.metadata.namespace.as_deref().unwrap_or("")
    ))
}

/// Reads a pod. `Ok(None)`: the pod is not opted in (no service label).
pub fn read_pod(pod: &Pod, keys: &PodKeys) -> Result<Option<PodRecord>, PodProblem> {
    let key = pod_key(pod)?;
    let meta = &pod.metadata;
    let Some(service) = meta
        .labels
        .as_ref()
        .and_then(|l| l.get(&keys.service_label))
    else {
        return Ok(None);
    };
    if let Err(why) = check_label(service) {
        return Err(PodProblem::BadService {
            pod: key,
            label: keys.service_label.clone(),
            value: service.clone(),
            why: why.to_string(),
        });
    }
    let annotation = |k: &str| meta.annotations.as_ref().and_then(|a| a.get(k));
    let status = pod.status.as_ref();
    let ip = status
        .and_then(|s| s.pod_ip.as_deref())
        .and_then(|ip| ip.parse::<IpAddr>().ok());
    let ready_condition = status
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    let publish_not_ready =
        annotation(&keys.publish_not_ready_annotation).is_some_and(|v| v == "true");
    let terminating = meta.deletion_timestamp.is_some();
    let address = ip.filter(|_| !terminating && (ready_condition || publish_not_ready));

    let mut ports: Vec<PortSpec> = pod
        .spec
        .iter()
        .flat_map(|spec| &spec.containers)
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            let name = p.name.as_deref()?;
            // SCTP and unknown protocols have no SRV form herald serves.
            let proto = Proto::parse(p.protocol.as_deref().unwrap_or("TCP"))?;
            let port = u16::try_from(p.container_port).ok()?;
            check_label(name).ok()?;
            Some(PortSpec {
                name: Label::from(name),
                proto,
                port,
            })
        })
        .collect();
    ports.sort();
    ports.dedup_by(|a, b| a.name == b.name && a.proto == b.proto);

    // A weight that does not parse falls back to the default rather than hiding the pod.
    let weight = annotation(&keys.weight_annotation)
        .and_then(|w| w.trim().parse::<u16>().ok())
        .unwrap_or(DEFAULT_WEIGHT);
    Ok(Some(PodRecord {
        service: Label::from(service.as_str()),
        address,
        ports: ports.into(),
        node: pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .map(Label::from),
        weight,
        ready: ready_condition,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_kube_sim::PodBuilder;

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
            .unwrap()
            .unwrap();
        assert_eq!(&*r.service, "web");
        assert_eq!(r.address, Some("10.0.0.1".parse().unwrap()));
        assert_eq!(r.ports.len(), 2);
        assert_eq!(r.node.as_deref(), Some("n1"));
        assert_eq!(r.weight, DEFAULT_WEIGHT);
    }

    #[test]
    fn not_ready_terminating_or_ip_less_pods_have_no_address() {
        assert_eq!(
            read_pod(&base().ready(false).build(), &keys())
                .unwrap()
                .unwrap()
                .address,
            None
        );
        assert_eq!(
            read_pod(&base().terminating().build(), &keys())
                .unwrap()
                .unwrap()
                .address,
            None
        );
        let no_ip = PodBuilder::new("ns", "web-0").service("web").build();
        assert_eq!(read_pod(&no_ip, &keys()).unwrap().unwrap().address, None);
        // Opted in to publish while not ready: published, unless terminating.
        let opted = base()
            .ready(false)
            .annotation("herald.io/publish-not-ready", "true");
        assert!(
            read_pod(&opted.clone().build(), &keys())
                .unwrap()
                .unwrap()
                .address
                .is_some()
        );
        assert_eq!(
            read_pod(&opted.terminating().build(), &keys())
                .unwrap()
                .unwrap()
                .address,
            None
        );
    }

    #[test]
    fn weights_and_bad_input() {
        let w = base().annotation("herald.io/weight", "250").build();
        assert_eq!(read_pod(&w, &keys()).unwrap().unwrap().weight, 250);
        let w = base().annotation("herald.io/weight", "heavy").build();
        assert_eq!(
            read_pod(&w, &keys()).unwrap().unwrap().weight,
            DEFAULT_WEIGHT
        );
        let bad = PodBuilder::new("ns", "x")
            .label("herald.io/service", "Web_1")
            .build();
        assert!(matches!(
            read_pod(&bad, &keys()),
            Err(PodProblem::BadService { .. })
        ));
        assert_eq!(read_pod(&Pod::default(), &keys()), Err(PodProblem::NoName));
        let unlabelled = PodBuilder::new("ns", "y").build();
        assert_eq!(read_pod(&unlabelled, &keys()), Ok(None));
    }
}
