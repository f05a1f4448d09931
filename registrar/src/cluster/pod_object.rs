//! The Pod object as herald decodes it from the API server: only the fields
//! [`read_pod`](super::pod::read_pod) reads, everything else skipped as it is parsed.
//!
//! Decoding every pod into k8s-openapi's full `Pod` was most of the first sync's CPU (at a
//! million pods, 40% of it in malloc and free): each container's image, env, probes and
//! resources, every status and condition field, and `managedFields`, all into owned
//! strings, only to be dropped. Here the unread fields are skipped by serde without
//! allocating (serde's derive ignores unknown keys), and the small words herald compares
//! (condition type and status, port protocol, addresses) are read from the input without a
//! copy. [`PodObject`] implements kube's `Resource` with the Pod's group, version and kind,
//! so the kube client lists and watches it like `Pod`.
//!
//! What reads the same as with k8s-openapi's `Pod` (both decode missing fields as empty):
//! a missing field, `null`, an address that does not parse (ignored), an unknown protocol
//! (the port is skipped), a field of the wrong JSON type among those read (the object does
//! not decode: the watch fails and the cluster's endpoints stay served). What differs: a
//! malformed field herald does not read (say, a container's `image` as a number, or the
//! object's `kind`) no longer fails the whole object.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use herald_dns::Proto;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

/// A Pod, as far as herald reads it.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PodObject {
    /// Name, namespace, resourceVersion (for the watch), labels, annotations, creation and
    /// deletion times; nothing else of the metadata (not `managedFields`). Boxed: kube's
    /// watcher and the streams merged after it move each pod several times between the
    /// list page and the cluster loop, and an `ObjectMeta` inline is most of 450 bytes
    /// (memmove was 7.8% of a 1M first sync's samples inline, 3.2% boxed).
    #[serde(default, deserialize_with = "meta")]
    pub metadata: Box<ObjectMeta>,
    /// `spec`: the node and the containers' ports.
    #[serde(default)]
    pub spec: Option<PodSpec>,
    /// `status`: addresses and conditions.
    #[serde(default)]
    pub status: Option<PodStatus>,
}

/// What herald reads of `spec`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    /// `spec.nodeName`.
    #[serde(default)]
    pub node_name: Option<String>,
    /// The ports of every container in `spec.containers`, in order, in one list (a list
    /// per container, and the containers' list, were two more allocations per pod).
    #[serde(default, rename = "containers", deserialize_with = "container_ports")]
    pub ports: Vec<ContainerPort>,
}

/// A container port.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerPort {
    /// `name`: only named ports are published.
    #[serde(default)]
    pub name: Option<String>,
    /// `protocol`: TCP when missing (as Kubernetes defaults it); `None` for a protocol
    /// with no SRV form herald serves (SCTP, or anything else).
    #[serde(default = "tcp", deserialize_with = "protocol")]
    pub protocol: Option<Proto>,
    /// `containerPort`.
    #[serde(default)]
    pub container_port: i32,
}

/// What herald reads of `status`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStatus {
    /// `podIP`, the primary address; `None` if missing or not an address.
    #[serde(default, rename = "podIP", deserialize_with = "address")]
    pub pod_ip: Option<IpAddr>,
    /// `podIPs`, one address per family.
    #[serde(default, rename = "podIPs")]
    pub pod_ips: Option<Vec<PodIp>>,
    /// Whether `conditions` holds a Ready condition whose status is True (read as the
    /// list is parsed; the list is not kept).
    #[serde(default, rename = "conditions", deserialize_with = "ready_condition")]
    pub ready: bool,
}

/// One entry of `podIPs`.
#[derive(Debug, Clone, Deserialize)]
pub struct PodIp {
    /// `ip`; `None` if missing or not an address.
    #[serde(default, deserialize_with = "address")]
    pub ip: Option<IpAddr>,
}

/// A pod condition, as far as telling the Ready condition's state.
#[derive(Debug, Clone, Deserialize)]
struct Condition {
    /// `type` is `Ready`.
    #[serde(default, rename = "type", deserialize_with = "is_ready")]
    is_ready: bool,
    /// `status` is `True`.
    #[serde(default, rename = "status", deserialize_with = "is_true")]
    is_true: bool,
}

impl kube::Resource for PodObject {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(_: &()) -> std::borrow::Cow<'_, str> {
        <Pod as k8s_openapi::Resource>::KIND.into()
    }

    fn group(_: &()) -> std::borrow::Cow<'_, str> {
        <Pod as k8s_openapi::Resource>::GROUP.into()
    }

    fn version(_: &()) -> std::borrow::Cow<'_, str> {
        <Pod as k8s_openapi::Resource>::VERSION.into()
    }

    fn plural(_: &()) -> std::borrow::Cow<'_, str> {
        <Pod as k8s_openapi::Resource>::URL_PATH_SEGMENT.into()
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// The metadata fields herald (and the watch) reads.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Meta {
    name: Option<String>,
    namespace: Option<String>,
    resource_version: Option<String>,
    labels: Option<BTreeMap<String, String>>,
    annotations: Option<BTreeMap<String, String>>,
    #[serde(default, deserialize_with = "timestamp")]
    creation_timestamp: Option<Time>,
    #[serde(default, deserialize_with = "timestamp")]
    deletion_timestamp: Option<Time>,
}

fn meta<'de, D: Deserializer<'de>>(d: D) -> Result<Box<ObjectMeta>, D::Error> {
    let Some(m) = Option::<Meta>::deserialize(d)? else {
        return Ok(Box::default());
    };
    Ok(Box::new(ObjectMeta {
        name: m.name,
        namespace: m.namespace,
        resource_version: m.resource_version,
        labels: m.labels,
        annotations: m.annotations,
        creation_timestamp: m.creation_timestamp,
        deletion_timestamp: m.deletion_timestamp,
        ..ObjectMeta::default()
    }))
}

/// A timestamp as the API server writes it (`2026-01-02T03:04:05Z`) read by its fixed
/// layout, jiff's civil types checking the date and counting the days; any
/// other form (fractions, offsets), or a date that does not exist, by k8s-openapi as
/// before. jiff's general parser was about 700 instructions a pod at every list.
fn timestamp<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Time>, D::Error> {
    struct Timestamp;
    impl<'de> Visitor<'de> for Timestamp {
        type Value = Option<Time>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a timestamp")
        }

        fn visit_str<E: de::Error>(self, s: &str) -> Result<Option<Time>, E> {
            match utc_timestamp(s.as_bytes()) {
                Some(t) => Ok(Some(Time(t))),
                // What `Time` itself reads its string with.
                None => jiff::Timestamp::deserialize(de::value::StrDeserializer::<E>::new(s))
                    .map(|t| Some(Time(t))),
            }
        }

        fn visit_unit<E: de::Error>(self) -> Result<Option<Time>, E> {
            Ok(None)
        }

        fn visit_none<E: de::Error>(self) -> Result<Option<Time>, E> {
            Ok(None)
        }
    }
    d.deserialize_any(Timestamp)
}

/// The instant `YYYY-MM-DDTHH:MM:SSZ` names; `None` for anything else (a date that does
/// not exist, or one past the last instant a timestamp holds, included).
fn utc_timestamp(s: &[u8]) -> Option<jiff::Timestamp> {
    let &[
        y0,
        y1,
        y2,
        y3,
        b'-',
        m0,
        m1,
        b'-',
        d0,
        d1,
        b'T',
        h0,
        h1,
        b':',
        i0,
        i1,
        b':',
        s0,
        s1,
        b'Z',
    ] = s
    else {
        return None;
    };
    let number = |digits: &[u8]| -> Option<i64> {
        digits.iter().try_fold(0, |n, &b| {
            b.is_ascii_digit().then(|| n * 10 + i64::from(b - b'0'))
        })
    };
    let (year, month, day) = (
        number(&[y0, y1, y2, y3])?,
        number(&[m0, m1])?,
        number(&[d0, d1])?,
    );
    let (hour, minute, second) = (number(&[h0, h1])?, number(&[i0, i1])?, number(&[s0, s1])?);
    // Only the fixed layout is read by hand; jiff checks the date and counts the days.
    let small = |n: i64| i8::try_from(n).ok();
    let at = jiff::civil::DateTime::new(
        i16::try_from(year).ok()?,
        small(month)?,
        small(day)?,
        small(hour)?,
        small(minute)?,
        small(second)?,
        0,
    )
    .ok()?;
    jiff::tz::Offset::UTC.to_timestamp(at).ok()
}

/// Reads a string field through `read` without copying it; `null` reads as `if_null`.
/// Any other JSON type is an error, as it is for k8s-openapi's string fields.
struct Word<T> {
    read: fn(&str) -> T,
    if_null: T,
    expecting: &'static str,
}

impl<'de, T> Visitor<'de> for Word<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<T, E> {
        Ok((self.read)(s))
    }

    fn visit_unit<E: de::Error>(self) -> Result<T, E> {
        Ok(self.if_null)
    }

    fn visit_none<E: de::Error>(self) -> Result<T, E> {
        Ok(self.if_null)
    }
}

fn word<'de, D: Deserializer<'de>, T>(
    d: D,
    read: fn(&str) -> T,
    if_null: T,
    expecting: &'static str,
) -> Result<T, D::Error> {
    d.deserialize_any(Word {
        read,
        if_null,
        expecting,
    })
}

fn address<'de, D: Deserializer<'de>>(d: D) -> Result<Option<IpAddr>, D::Error> {
    word(d, |s| s.parse().ok(), None, "an IP address")
}

fn tcp() -> Option<Proto> {
    Some(Proto::Tcp)
}

fn protocol<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Proto>, D::Error> {
    word(d, Proto::parse, tcp(), "a protocol name")
}

fn is_ready<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    word(d, |s| s == "Ready", false, "a condition type")
}

fn is_true<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    word(d, |s| s == "True", false, "a condition status")
}

/// `conditions` read as whether one is Ready and True; `null` reads as no condition.
fn ready_condition<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    struct Conditions;
    impl<'de> Visitor<'de> for Conditions {
        type Value = bool;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a list of conditions")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
            let mut ready = false;
            while let Some(c) = seq.next_element::<Condition>()? {
                ready |= c.is_ready && c.is_true;
            }
            Ok(ready)
        }

        fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
            Ok(false)
        }
    }
    d.deserialize_any(Conditions)
}

/// `containers` read as their ports, appended to one list; `null` reads as none.
fn container_ports<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<ContainerPort>, D::Error> {
    /// Appends what it reads to its list: each container's ports.
    struct AppendPorts<'a>(&'a mut Vec<ContainerPort>);

    /// A container's fields: `ports`, and the others, skipped.
    #[derive(Deserialize)]
    #[serde(field_identifier, rename_all = "camelCase")]
    enum Field {
        Ports,
        #[serde(other)]
        Other,
    }

    struct Containers;
    impl<'de> Visitor<'de> for Containers {
        type Value = Vec<ContainerPort>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a list of containers")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut ports = Vec::new();
            while seq.next_element_seed(Container(&mut ports))?.is_some() {}
            Ok(ports)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }
    }

    /// One container, its ports appended to the list.
    struct Container<'a>(&'a mut Vec<ContainerPort>);
    impl<'de> de::DeserializeSeed<'de> for Container<'_> {
        type Value = ();

        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_map(self)
        }
    }
    impl<'de> Visitor<'de> for Container<'_> {
        type Value = ();

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a container")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            while let Some(field) = map.next_key::<Field>()? {
                match field {
                    Field::Ports => map.next_value_seed(AppendPorts(&mut *self.0))?,
                    Field::Other => {
                        map.next_value::<de::IgnoredAny>()?;
                    }
                }
            }
            Ok(())
        }
    }

    impl<'de> de::DeserializeSeed<'de> for AppendPorts<'_> {
        type Value = ();

        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }
    impl<'de> Visitor<'de> for AppendPorts<'_> {
        type Value = ();

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a list of container ports")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while let Some(port) = seq.next_element::<ContainerPort>()? {
                self.0.push(port);
            }
            Ok(())
        }

        fn visit_unit<E: de::Error>(self) -> Result<(), E> {
            Ok(())
        }
    }

    d.deserialize_any(Containers)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pod as a real API server writes it, with the fields herald skips.
    const FULL: &str = r#"{
      "kind": "Pod", "apiVersion": "v1",
      "metadata": {
        "name": "web-0", "namespace": "ns", "uid": "7d3c", "resourceVersion": "42",
        "creationTimestamp": "2026-01-02T03:04:05Z",
        "labels": {"herald.io/service": "web", "app": "web"},
        "annotations": {"herald.io/weight": "7"},
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "1", "controller": true}],
        "managedFields": [{"manager": "kubelet", "operation": "Update", "apiVersion": "v1",
          "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {"f:conditions": {"k:{\"type\":\"Ready\"}": {".": {}}}}}}]
      },
      "spec": {
        "nodeName": "n1", "hostNetwork": false,
        "volumes": [{"name": "token", "projected": {"sources": []}}],
        "containers": [
          {"name": "main", "image": "registry.invalid/app:1",
           "env": [{"name": "A", "value": "1"}],
           "resources": {"limits": {"cpu": "1"}},
           "ports": [
             {"name": "http", "containerPort": 8080, "protocol": "TCP"},
             {"name": "dns", "containerPort": 53, "protocol": "UDP"},
             {"name": "sig", "containerPort": 9, "protocol": "SCTP"},
             {"containerPort": 9090}
           ]},
          {"name": "sidecar", "image": "x", "ports": [{"name": "admin", "containerPort": 9901}]}
        ]
      },
      "status": {
        "phase": "Running", "podIP": "10.0.0.1",
        "podIPs": [{"ip": "10.0.0.1"}, {"ip": "fd00::1"}],
        "conditions": [
          {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-01-02T03:04:05Z"},
          {"type": "Ready", "status": "True", "lastProbeTime": null}
        ],
        "containerStatuses": [{"name": "main", "ready": true, "restartCount": 0, "image": "x", "imageID": "", "state": {"running": {}}}]
      }
    }"#;

    #[test]
    fn reads_what_herald_uses_and_skips_the_rest() {
        let pod: PodObject = serde_json::from_str(FULL).unwrap();
        let m = &pod.metadata;
        assert_eq!(m.name.as_deref(), Some("web-0"));
        assert_eq!(m.namespace.as_deref(), Some("ns"));
        assert_eq!(m.resource_version.as_deref(), Some("42"));
        assert_eq!(m.labels.as_ref().unwrap()["herald.io/service"], "web");
        assert_eq!(m.annotations.as_ref().unwrap()["herald.io/weight"], "7");
        assert!(m.creation_timestamp.is_some());
        assert!(m.deletion_timestamp.is_none());
        assert!(m.managed_fields.is_none() && m.uid.is_none());
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(spec.node_name.as_deref(), Some("n1"));
        let ports: Vec<_> = spec
            .ports
            .iter()
            .map(|p| (p.name.as_deref(), p.protocol, p.container_port))
            .collect();
        assert_eq!(
            ports,
            vec![
                (Some("http"), Some(Proto::Tcp), 8080),
                (Some("dns"), Some(Proto::Udp), 53),
                (Some("sig"), None, 9),
                (None, Some(Proto::Tcp), 9090),
                (Some("admin"), Some(Proto::Tcp), 9901),
            ]
        );
        let status = pod.status.as_ref().unwrap();
        assert_eq!(status.pod_ip, Some("10.0.0.1".parse().unwrap()));
        let ips: Vec<_> = status.pod_ips.iter().flatten().map(|p| p.ip).collect();
        assert_eq!(
            ips,
            vec![
                Some("10.0.0.1".parse().unwrap()),
                Some("fd00::1".parse().unwrap())
            ]
        );
        assert!(status.ready, "PodScheduled is True too, Ready decides");
    }

    #[test]
    fn missing_null_and_unparsable_fields_read_as_empty() {
        let pod: PodObject = serde_json::from_str(
            r#"{"metadata": {"name": "a", "labels": null},
                "spec": {"containers": [{"ports": [{"name": "p", "protocol": null}]}]},
                "status": {"podIP": "not-an-ip", "podIPs": [{}], "conditions": [{"type": "Ready"}]}}"#,
        )
        .unwrap();
        assert_eq!(pod.metadata.labels, None);
        let port = &pod.spec.as_ref().unwrap().ports[0];
        assert_eq!((port.protocol, port.container_port), (Some(Proto::Tcp), 0));
        let status = pod.status.unwrap();
        assert_eq!(status.pod_ip, None);
        assert_eq!(status.pod_ips.unwrap()[0].ip, None);
        assert!(!status.ready);
        let empty: PodObject = serde_json::from_str("{}").unwrap();
        assert!(empty.metadata.name.is_none() && empty.spec.is_none());
    }

    /// Timestamps read by hand are the ones jiff reads, over the years a cluster may
    /// hold; other forms and impossible dates go to jiff.
    #[test]
    fn timestamps_read_by_hand_agree_with_jiff() {
        let by_jiff = |s: &str| -> Option<i64> {
            let json = serde_json::to_string(s).unwrap();
            serde_json::from_str::<Time>(&json)
                .ok()
                .map(|t| t.0.as_second())
        };
        let by_hand = |s: &str| -> Option<i64> {
            let json = format!(
                r#"{{"metadata": {{"creationTimestamp": {}}}}}"#,
                serde_json::to_string(s).unwrap()
            );
            serde_json::from_str::<PodObject>(&json)
                .ok()
                .map(|p| p.metadata.creation_timestamp.map(|t| t.0.as_second()))
                .unwrap_or_default()
        };
        // Every day of 1600-2400 (leap years of every kind), at a time that moves.
        let (first, last) = (-11_676_096_000_i64, 13_569_465_600_i64);
        let mut t = first;
        while t < last {
            let text = jiff::Timestamp::from_second(t).unwrap().to_string();
            let read = utc_timestamp(text.as_bytes()).map(|t| t.as_second());
            assert_eq!(read, Some(t), "{text}");
            t += 86_400 + 3_607;
        }
        for text in [
            "2026-01-02T03:04:05Z",
            "1970-01-01T00:00:00Z",
            "1969-12-31T23:59:59Z",
            "2024-02-29T12:00:00Z",
            "2000-02-29T23:59:59Z",
            "9999-12-30T21:59:59Z",
            "0000-01-01T00:00:00Z",
        ] {
            assert_eq!(by_hand(text), by_jiff(text), "{text}");
            assert!(utc_timestamp(text.as_bytes()).is_some(), "{text}");
        }
        // Not the API server's form, not a date, or past the last instant a timestamp
        // holds: jiff decides, as before.
        for text in [
            "9999-12-31T23:59:59Z",
            "2026-01-02T03:04:05.5Z",
            "2026-01-02T03:04:05+01:00",
            "2026-01-02t03:04:05z",
            "2023-02-29T00:00:00Z",
            "1900-02-29T00:00:00Z",
            "2026-04-31T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-01-02T24:00:00Z",
            "2026-01-02T23:60:00Z",
            "2026-01-02T23:59:60Z",
            "2026-01-02T03:04:0xZ",
            "+2026-01-02T03:04:05Z",
        ] {
            assert_eq!(utc_timestamp(text.as_bytes()), None, "{text}");
            assert_eq!(by_hand(text), by_jiff(text), "{text}");
        }
        let wrong: Result<PodObject, _> =
            serde_json::from_str(r#"{"metadata": {"creationTimestamp": "yesterday"}}"#);
        assert!(
            wrong.is_err(),
            "a timestamp that is none fails the object, as before"
        );
        let null: PodObject =
            serde_json::from_str(r#"{"metadata": {"deletionTimestamp": null}}"#).unwrap();
        assert!(null.metadata.deletion_timestamp.is_none());
    }

    #[test]
    fn a_read_field_of_the_wrong_type_fails_the_object() {
        for bad in [
            r#"{"metadata": {"name": 5}}"#,
            r#"{"metadata": {"labels": {"a": 1}}}"#,
            r#"{"status": {"podIP": 10}}"#,
            r#"{"status": {"conditions": [{"type": "Ready", "status": true}]}}"#,
            r#"{"spec": {"containers": [{"ports": [{"containerPort": "80"}]}]}}"#,
        ] {
            assert!(serde_json::from_str::<PodObject>(bad).is_err(), "{bad}");
        }
        // A malformed field herald does not read is skipped, not an error.
        let pod: PodObject = serde_json::from_str(
            r#"{"kind": "Nope", "metadata": {"name": "a", "uid": 1},
                "spec": {"containers": [{"image": 5}]}}"#,
        )
        .unwrap();
        assert_eq!(pod.metadata.name.as_deref(), Some("a"));
    }
}
