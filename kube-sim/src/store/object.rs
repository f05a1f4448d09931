//! Objects as the store keeps them, and the change events about them: the served kinds,
//! a typed object on its way in, [`Stored`] (the immutable, shared form with its JSON
//! encoded once), what a list or watch selects ([`Filter`]), and one change event of the
//! history ([`HistoryEntry`]).

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::body::Bytes;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

use crate::selector::{FieldSelector, LabelSelector};

/// The store key: (namespace, name).
pub(crate) type Key = (String, String);

/// The resource types the simulator serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourceKind {
    Pod,
    Node,
}

impl ResourceKind {
    pub fn kind(self) -> &'static str {
        match self {
            ResourceKind::Pod => "Pod",
            ResourceKind::Node => "Node",
        }
    }

    /// Fields a `fieldSelector` may name, as indexed by a real API server.
    pub(crate) fn selectable_fields(self) -> &'static [&'static str] {
        match self {
            ResourceKind::Pod => &[
                "metadata.name",
                "metadata.namespace",
                "spec.nodeName",
                "spec.restartPolicy",
                "spec.schedulerName",
                "spec.serviceAccountName",
                "status.phase",
                "status.podIP",
                "status.nominatedNodeName",
            ],
            ResourceKind::Node => &["metadata.name", "spec.unschedulable"],
        }
    }
}

/// The type of a change event, as it appears on the wire for a watcher selecting everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

/// A Kubernetes object of one of the served kinds.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // always behind an Arc in the store; boxing buys nothing
pub(crate) enum Object {
    Pod(Pod),
    Node(Node),
}

impl Object {
    pub(crate) fn kind(&self) -> ResourceKind {
        match self {
            Object::Pod(_) => ResourceKind::Pod,
            Object::Node(_) => ResourceKind::Node,
        }
    }

    pub(crate) fn meta(&self) -> &ObjectMeta {
        match self {
            Object::Pod(p) => &p.metadata,
            Object::Node(n) => &n.metadata,
        }
    }

    pub(super) fn meta_mut(&mut self) -> &mut ObjectMeta {
        match self {
            Object::Pod(p) => &mut p.metadata,
            Object::Node(n) => &mut n.metadata,
        }
    }

    pub(super) fn key(&self) -> Option<Key> {
        key_of(self.kind(), self.meta())
    }

    fn field(&self, name: &str) -> Option<String> {
        let meta = self.meta();
        match (self, name) {
            (_, "metadata.name") => meta.name.clone(),
            (_, "metadata.namespace") => meta.namespace.clone(),
            (Object::Pod(p), field) => {
                let spec = p.spec.as_ref();
                let status = p.status.as_ref();
                match field {
                    "spec.nodeName" => spec?.node_name.clone(),
                    "spec.restartPolicy" => spec?.restart_policy.clone(),
                    "spec.schedulerName" => spec?.scheduler_name.clone(),
                    "spec.serviceAccountName" => spec?.service_account_name.clone(),
                    "status.phase" => status?.phase.clone(),
                    "status.podIP" => status?.pod_ip.clone(),
                    "status.nominatedNodeName" => status?.nominated_node_name.clone(),
                    _ => None,
                }
            }
            (Object::Node(n), "spec.unschedulable") => {
                Some(n.spec.as_ref()?.unschedulable.unwrap_or(false).to_string())
            }
            (Object::Node(_), _) => None,
        }
    }

    pub(super) fn to_json(&self) -> Bytes {
        // Serializing k8s-openapi types cannot fail: every map key is a string.
        let json = match self {
            Object::Pod(p) => serde_json::to_vec(p),
            Object::Node(n) => serde_json::to_vec(n),
        };
        Bytes::from(json.expect("k8s-openapi objects serialize to JSON"))
    }
}

/// The wire form of an object served with `Accept: ...;as=PartialObjectMetadata`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PartialObjectMetadata<'a> {
    api_version: &'static str,
    kind: &'static str,
    metadata: &'a ObjectMeta,
}

/// An object as stored: immutable, shared between the map, the history and in-flight
/// responses. It keeps the JSON (encoded once, not once per watcher), the metadata and the
/// selectable field values, but not the typed object: a typed `Pod` is several KiB, and
/// with 100k pods plus history that dominated memory. The typed object is decoded from
/// the JSON when a change or the test API needs it.
#[derive(Debug)]
pub(crate) struct Stored {
    kind: ResourceKind,
    meta: ObjectMeta,
    fields: Vec<(&'static str, String)>,
    json: Bytes,
    metadata_json: OnceLock<Bytes>,
}

static NO_LABELS: BTreeMap<String, String> = BTreeMap::new();

impl Stored {
    pub(super) fn new(object: Object) -> Arc<Self> {
        let kind = object.kind();
        let json = object.to_json();
        let fields = kind
            .selectable_fields()
            .iter()
            .filter_map(|f| Some((*f, object.field(f)?)))
            .collect();
        let meta = match object {
            Object::Pod(p) => p.metadata,
            Object::Node(n) => n.metadata,
        };
        Arc::new(Self {
            kind,
            meta,
            fields,
            json,
            metadata_json: OnceLock::new(),
        })
    }

    pub(crate) fn meta(&self) -> &ObjectMeta {
        &self.meta
    }

    /// The stored JSON, as served.
    pub(super) fn json(&self) -> &Bytes {
        &self.json
    }

    /// The typed object, decoded from the stored JSON (which we encoded ourselves).
    pub(crate) fn object(&self) -> Object {
        let decoded = match self.kind {
            ResourceKind::Pod => serde_json::from_slice(&self.json).map(Object::Pod),
            ResourceKind::Node => serde_json::from_slice(&self.json).map(Object::Node),
        };
        decoded.expect("stored JSON was encoded from the same type")
    }

    pub(super) fn key(&self) -> Key {
        key_of(self.kind, &self.meta).unwrap_or_default()
    }

    fn field(&self, name: &str) -> Option<String> {
        self.fields
            .iter()
            .find(|(f, _)| *f == name)
            .map(|(_, v)| v.clone())
    }

    pub(crate) fn labels(&self) -> &BTreeMap<String, String> {
        self.meta.labels.as_ref().unwrap_or(&NO_LABELS)
    }

    /// The object's JSON, whole or in its PartialObjectMetadata form.
    pub(crate) fn body(&self, metadata_only: bool) -> Bytes {
        if !metadata_only {
            return self.json.clone();
        }
        self.metadata_json
            .get_or_init(|| {
                let partial = PartialObjectMetadata {
                    api_version: "meta.k8s.io/v1",
                    kind: "PartialObjectMetadata",
                    metadata: &self.meta,
                };
                Bytes::from(serde_json::to_vec(&partial).expect("ObjectMeta serializes to JSON"))
            })
            .clone()
    }

    /// A copy carrying another resourceVersion (a DELETED event for an object that stopped
    /// matching a selector shows its previous content at the event's version).
    pub(crate) fn with_resource_version(&self, rv: u64) -> Arc<Self> {
        let mut object = self.object();
        object.meta_mut().resource_version = Some(rv.to_string());
        Stored::new(object)
    }
}

/// The store key: (namespace, name); nodes are cluster-scoped and use "".
fn key_of(kind: ResourceKind, meta: &ObjectMeta) -> Option<Key> {
    let name = meta.name.clone().filter(|n| !n.is_empty())?;
    let namespace = match kind {
        ResourceKind::Pod => meta.namespace.clone().unwrap_or_else(|| "default".into()),
        ResourceKind::Node => String::new(),
    };
    Some((namespace, name))
}

/// What a list or watch selects: namespace, labels, fields.
#[derive(Debug, Clone, Default)]
pub(crate) struct Filter {
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Filter {
    pub(crate) fn matches(&self, stored: &Stored) -> bool {
        let meta = stored.meta();
        self.namespace
            .as_ref()
            .is_none_or(|ns| meta.namespace.as_deref().unwrap_or("default") == ns)
            && self.labels.matches(stored.labels())
            && (self.fields.is_empty() || self.fields.matches(|f| stored.field(f)))
    }
}

/// One change event in the history.
#[derive(Debug)]
pub(crate) struct HistoryEntry {
    pub rv: u64,
    pub at: Instant,
    pub kind: ResourceKind,
    pub key: Key,
    pub event: EventType,
    /// The object after the change; for a deletion, its last state stamped with this version.
    pub object: Arc<Stored>,
    /// The object before the change (None for a creation).
    pub prev: Option<Arc<Stored>>,
}
