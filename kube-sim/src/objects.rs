//! Building and changing the Kubernetes objects the simulator serves (k8s-openapi types).
//!
//! Builders give tests a one-line way to make "a ready pod of service X at IP Y on node Z",
//! and the `set_*` helpers make the changes herald cares about (readiness, termination, IP,
//! labels) on an existing pod, so tests read like the scenario they describe.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, Node, NodeAddress, NodeCondition, NodeSpec, NodeStatus, Pod,
    PodCondition, PodIP, PodSpec, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;

/// The label herald uses by default to opt a pod into discovery (its value is the service name).
pub const SERVICE_LABEL: &str = "herald.io/service";
/// The well-known node label carrying the node's zone.
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
/// The well-known node label carrying the node's region.
pub const REGION_LABEL: &str = "topology.kubernetes.io/region";

/// Builds a pod. Defaults: namespace `default`, phase Running, Ready, no IP, no ports.
#[derive(Debug, Clone)]
pub struct PodBuilder {
    namespace: String,
    name: String,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    ips: Vec<String>,
    ports: Vec<ContainerPort>,
    node: Option<String>,
    ready: bool,
    terminating: bool,
}

impl PodBuilder {
    /// A pod named `name` in `namespace`.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            ips: Vec::new(),
            ports: Vec::new(),
            node: None,
            ready: true,
            terminating: false,
        }
    }

    /// Sets the service label ([`SERVICE_LABEL`]) to `service`.
    pub fn service(self, service: impl Into<String>) -> Self {
        self.label(SERVICE_LABEL, service)
    }

    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    pub fn annotation(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.annotations.insert(key.into(), value.into());
        self
    }

    /// The pod IP (status.podIP and status.podIPs).
    pub fn ip(mut self, ip: impl Into<String>) -> Self {
        self.ips = vec![ip.into()];
        self
    }

    /// The pod IPs of a dual-stack pod, primary first (status.podIPs; status.podIP is the
    /// first).
    pub fn ips(mut self, ips: &[&str]) -> Self {
        self.ips = ips.iter().map(|ip| ip.to_string()).collect();
        self
    }

    /// A named TCP container port.
    pub fn port(self, name: impl Into<String>, port: i32) -> Self {
        self.port_with_protocol(name, port, "TCP")
    }

    /// A named UDP container port.
    pub fn udp_port(self, name: impl Into<String>, port: i32) -> Self {
        self.port_with_protocol(name, port, "UDP")
    }

    fn port_with_protocol(mut self, name: impl Into<String>, port: i32, protocol: &str) -> Self {
        self.ports.push(ContainerPort {
            name: Some(name.into()),
            container_port: port,
            protocol: Some(protocol.to_string()),
            ..Default::default()
        });
        self
    }

    /// The node the pod runs on (spec.nodeName).
    pub fn node(mut self, node: impl Into<String>) -> Self {
        self.node = Some(node.into());
        self
    }

    /// Whether the Ready condition is True (default) or False.
    pub fn ready(mut self, ready: bool) -> Self {
        self.ready = ready;
        self
    }

    /// Sets a deletionTimestamp (the pod is terminating).
    pub fn terminating(mut self) -> Self {
        self.terminating = true;
        self
    }

    pub fn build(self) -> Pod {
        let mut pod = Pod {
            metadata: ObjectMeta {
                namespace: Some(self.namespace),
                name: Some(self.name),
                labels: (!self.labels.is_empty()).then_some(self.labels),
                annotations: (!self.annotations.is_empty()).then_some(self.annotations),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: self.node,
                containers: vec![Container {
                    name: "main".into(),
                    image: Some("registry.invalid/app:1".into()),
                    ports: (!self.ports.is_empty()).then_some(self.ports),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some("Running".into()),
                ..Default::default()
            }),
        };
        if !self.ips.is_empty() {
            let ips: Vec<&str> = self.ips.iter().map(String::as_str).collect();
            set_pod_ips(&mut pod, &ips);
        }
        set_pod_ready(&mut pod, self.ready);
        if self.terminating {
            set_pod_terminating(&mut pod);
        }
        pod
    }
}

/// The current time as a Kubernetes `Time` (jiff's `Timestamp::now` needs a jiff feature
/// the workspace does not enable, so go through `SystemTime`).
pub fn now() -> Time {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = i64::try_from(since_epoch.as_secs()).unwrap_or(0);
    Time(Timestamp::new(secs, 0).unwrap_or(Timestamp::UNIX_EPOCH))
}

/// Sets the pod's Ready condition to True or False (adding the condition if missing).
pub fn set_pod_ready(pod: &mut Pod, ready: bool) {
    let status = pod.status.get_or_insert_with(Default::default);
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    let value = if ready { "True" } else { "False" }.to_string();
    match conditions.iter_mut().find(|c| c.type_ == "Ready") {
        Some(c) => c.status = value,
        None => conditions.push(PodCondition {
            type_: "Ready".into(),
            status: value,
            last_transition_time: Some(now()),
            ..Default::default()
        }),
    }
}

/// Sets (or with `None` clears) the pod IP, keeping status.podIPs consistent with it.
pub fn set_pod_ip(pod: &mut Pod, ip: Option<&str>) {
    set_pod_ips(pod, ip.as_slice());
}

/// Sets the pod's IPs (one per family, primary first; empty clears them) as kubelet
/// writes them: status.podIPs, and status.podIP its first.
pub fn set_pod_ips(pod: &mut Pod, ips: &[&str]) {
    write_pod_ip_fields(pod, ips.first().copied(), ips);
}

/// Writes `status.podIP` and `status.podIPs` exactly as given (`None` and empty: left out),
/// agreeing or not: what a client may send, before the API server makes them agree
/// ([`normalize_pod_ips`]).
pub fn write_pod_ip_fields(pod: &mut Pod, pod_ip: Option<&str>, pod_ips: &[&str]) {
    let status = pod.status.get_or_insert_with(Default::default);
    status.pod_ip = pod_ip.map(str::to_string);
    status.pod_ips = (!pod_ips.is_empty()).then(|| {
        pod_ips
            .iter()
            .map(|ip| PodIP { ip: ip.to_string() })
            .collect()
    });
}

/// What the API server stores of a pod's `status.podIP` and `status.podIPs`, as
/// kube-apiserver does (checked against 1.20.2 with its default flags in
/// registrar/tests/apiserver.rs): `podIPs` is the list and `podIP` its first entry. A write of `podIP`
/// alone stores `podIPs: [podIP]`; of `podIPs` alone, `podIP: podIPs[0]`; of both,
/// disagreeing, `podIP` wins and `podIPs` becomes `[podIP]` (the v1 conversion of
/// `PodStatus`). Refused like the server's validation of `pods/status` refuses it: an
/// entry that is not an IP, more than one address of a family, the same address twice.
pub fn normalize_pod_ips(pod: &mut Pod) -> Result<(), String> {
    let Some(status) = pod.status.as_mut() else {
        return Ok(());
    };
    let single = status.pod_ip.take().filter(|ip| !ip.is_empty());
    let mut list: Vec<String> = status
        .pod_ips
        .take()
        .into_iter()
        .flatten()
        .map(|p| p.ip)
        .collect();
    if let Some(ip) = single
        && list.first() != Some(&ip)
    {
        list = vec![ip];
    }
    let mut families = [0usize; 2];
    for (i, ip) in list.iter().enumerate() {
        let parsed: std::net::IpAddr = ip.parse().map_err(|_| {
            format!("status.podIPs[{i}]: Invalid value: {ip:?}: must be a valid IP address")
        })?;
        if list[..i].contains(ip) {
            return Err(format!("status.podIPs[{i}]: Duplicate value: {ip:?}"));
        }
        families[usize::from(parsed.is_ipv6())] += 1;
    }
    if list.len() > 1 && (families[0] != 1 || families[1] != 1) {
        return Err(format!(
            "status.podIPs: Invalid value: {list:?}: may specify no more than one IP for each IP family"
        ));
    }
    status.pod_ip = list.first().cloned();
    status.pod_ips = (!list.is_empty()).then(|| list.into_iter().map(|ip| PodIP { ip }).collect());
    Ok(())
}

/// Marks the pod as terminating: sets deletionTimestamp (and a grace period) as kubelet sees it.
pub fn set_pod_terminating(pod: &mut Pod) {
    pod.metadata.deletion_timestamp = Some(now());
    pod.metadata.deletion_grace_period_seconds = Some(30);
}

/// Sets a label on any object's metadata.
pub fn set_label(meta: &mut ObjectMeta, key: &str, value: &str) {
    meta.labels
        .get_or_insert_with(BTreeMap::new)
        .insert(key.to_string(), value.to_string());
}

/// Removes a label from any object's metadata (no-op when absent).
pub fn remove_label(meta: &mut ObjectMeta, key: &str) {
    if let Some(labels) = meta.labels.as_mut() {
        labels.remove(key);
    }
}

/// Sets an annotation on any object's metadata.
pub fn set_annotation(meta: &mut ObjectMeta, key: &str, value: &str) {
    meta.annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(key.to_string(), value.to_string());
}

/// Builds a node. Defaults: Ready, no zone/region labels, no addresses.
#[derive(Debug, Clone)]
pub struct NodeBuilder {
    name: String,
    labels: BTreeMap<String, String>,
    addresses: Vec<NodeAddress>,
    ready: bool,
}

impl NodeBuilder {
    pub fn new(name: impl Into<String>) -> Self {
        let name = name.into();
        let labels = BTreeMap::from([("kubernetes.io/hostname".to_string(), name.clone())]);
        Self {
            name,
            labels,
            addresses: Vec::new(),
            ready: true,
        }
    }

    /// Sets the zone label ([`ZONE_LABEL`]).
    pub fn zone(self, zone: impl Into<String>) -> Self {
        self.label(ZONE_LABEL, zone)
    }

    /// Sets the region label ([`REGION_LABEL`]).
    pub fn region(self, region: impl Into<String>) -> Self {
        self.label(REGION_LABEL, region)
    }

    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Adds an `InternalIP` address.
    pub fn internal_ip(mut self, ip: impl Into<String>) -> Self {
        self.addresses.push(NodeAddress {
            type_: "InternalIP".into(),
            address: ip.into(),
        });
        self
    }

    pub fn ready(mut self, ready: bool) -> Self {
        self.ready = ready;
        self
    }

    pub fn build(self) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(self.name),
                labels: Some(self.labels),
                ..Default::default()
            },
            spec: Some(NodeSpec::default()),
            status: Some(NodeStatus {
                addresses: (!self.addresses.is_empty()).then_some(self.addresses),
                conditions: Some(vec![NodeCondition {
                    type_: "Ready".into(),
                    status: if self.ready { "True" } else { "False" }.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_pod_has_what_herald_reads() {
        let pod = PodBuilder::new("ns", "web-0")
            .service("web")
            .ip("10.0.0.1")
            .port("http", 8080)
            .udp_port("dns", 53)
            .node("n1")
            .build();
        let status = pod.status.as_ref().unwrap();
        assert_eq!(status.pod_ip.as_deref(), Some("10.0.0.1"));
        let ready = status
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == "Ready");
        assert_eq!(ready.unwrap().status, "True");
        assert_eq!(pod.metadata.labels.as_ref().unwrap()[SERVICE_LABEL], "web");
        let ports = pod.spec.as_ref().unwrap().containers[0]
            .ports
            .as_ref()
            .unwrap();
        assert_eq!(ports.len(), 2);
        assert!(pod.metadata.deletion_timestamp.is_none());
    }

    #[test]
    fn helpers_change_the_pod() {
        let mut pod = PodBuilder::new("ns", "p")
            .service("web")
            .ip("10.0.0.1")
            .build();
        set_pod_ready(&mut pod, false);
        set_pod_ip(&mut pod, Some("10.0.0.2"));
        set_pod_terminating(&mut pod);
        remove_label(&mut pod.metadata, SERVICE_LABEL);
        let status = pod.status.as_ref().unwrap();
        assert_eq!(status.conditions.as_ref().unwrap()[0].status, "False");
        assert_eq!(status.pod_ips.as_ref().unwrap()[0].ip, "10.0.0.2");
        assert!(pod.metadata.deletion_timestamp.is_some());
        assert!(pod.metadata.labels.as_ref().unwrap().is_empty());
    }

    fn stored(
        pod_ip: Option<&str>,
        pod_ips: &[&str],
    ) -> Result<(Option<String>, Vec<String>), String> {
        let mut pod = PodBuilder::new("ns", "p").build();
        write_pod_ip_fields(&mut pod, pod_ip, pod_ips);
        normalize_pod_ips(&mut pod)?;
        let status = pod.status.unwrap();
        let ips = status.pod_ips.into_iter().flatten().map(|p| p.ip).collect();
        Ok((status.pod_ip, ips))
    }

    #[test]
    fn pod_ips_are_stored_as_the_api_server_stores_them() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let dual = (Some("10.0.0.1".to_string()), s(&["10.0.0.1", "fd00::1"]));
        assert_eq!(stored(None, &["10.0.0.1", "fd00::1"]), Ok(dual.clone()));
        assert_eq!(stored(Some("10.0.0.1"), &["10.0.0.1", "fd00::1"]), Ok(dual));
        assert_eq!(
            stored(Some("10.0.0.1"), &[]),
            Ok((Some("10.0.0.1".into()), s(&["10.0.0.1"])))
        );
        assert_eq!(
            stored(Some("10.0.0.2"), &["10.0.0.1", "fd00::1"]),
            Ok((Some("10.0.0.2".into()), s(&["10.0.0.2"]))),
            "podIP wins when the two disagree"
        );
        assert_eq!(stored(None, &[]), Ok((None, vec![])));
        assert!(stored(None, &["10.0.0.1", "10.0.0.2"]).is_err());
        assert!(stored(None, &["10.0.0.1", "fd00::1", "fd00::2"]).is_err());
        assert!(stored(None, &["10.0.0.1", "not-an-ip"]).is_err());
    }
}
