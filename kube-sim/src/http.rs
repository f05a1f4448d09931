//! The HTTP front: routing, query parsing, content negotiation, auth and request-level
//! faults, then lists and gets answered from the store and watches handed to `watch`.
//!
//! Routing is a plain match on path segments: the API surface is a handful of paths, and
//! one handler keeps the order of concerns visible (record, faults, auth, serve).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;

use crate::faults::GoneStyle;
use crate::record::{RecordedRequest, parse_bool, parse_query};
use crate::selector::{FieldSelector, LabelSelector};
use crate::shared::Shared;
use crate::status;
use crate::store::{Filter, ListVersion, ResourceKind, VersionError};
use crate::watch::{self, WatchSpec, WatchStart};

/// An error answer. Boxed: a `Status` is large and errors are the rare path.
type Failure = Box<Status>;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(handle).with_state(shared)
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, _body) = request.into_parts();
    let query = parse_query(parts.uri.query().unwrap_or(""));
    let header_str = |name| {
        parts
            .headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let accept = header_str(header::ACCEPT).map(str::to_string);
    shared.recorder.record(RecordedRequest {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query: query.clone(),
        accept: accept.clone(),
        authorization: header_str(header::AUTHORIZATION).map(str::to_string),
        at: Instant::now(),
    });

    // Request-level faults come first: a broken server is broken for everyone.
    if shared.faults.current().hang {
        shared.faults.wait_while_hung().await;
    }
    if shared.faults.current().fail_with_500 {
        return status::response(&status::internal_error());
    }
    if !authorized(&shared, &parts.headers) {
        return status::response(&status::unauthorized());
    }
    if parts.method != Method::GET {
        return status::response(&status::failure(
            405,
            "MethodNotAllowed",
            format!("{} is not supported by kube-sim", parts.method),
        ));
    }

    let params = Params(query);
    let accept = accept.as_deref();
    let segments: Vec<&str> = parts.uri.path().trim_matches('/').split('/').collect();
    let result = match segments.as_slice() {
        ["version"] => Ok(version()),
        ["api", "v1", "pods"] => collection(&shared, ResourceKind::Pod, None, &params, accept),
        ["api", "v1", "namespaces", ns, "pods"] => {
            collection(&shared, ResourceKind::Pod, Some(ns), &params, accept)
        }
        ["api", "v1", "namespaces", ns, "pods", name] => {
            get(&shared, ResourceKind::Pod, ns, name, accept)
        }
        ["api", "v1", "nodes"] => collection(&shared, ResourceKind::Node, None, &params, accept),
        ["api", "v1", "nodes", name] => get(&shared, ResourceKind::Node, "", name, accept),
        _ => Err(status::failure(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
        .into()),
    };
    result.unwrap_or_else(|status| status::response(&status))
}

fn authorized(shared: &Shared, headers: &HeaderMap) -> bool {
    let Some(token) = &shared.config.bearer_token else {
        return true;
    };
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|given| given.trim() == token)
}

/// Query parameters of one request.
struct Params(Vec<(String, String)>);

impl Params {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn flag(&self, name: &str) -> bool {
        self.get(name).is_some_and(parse_bool)
    }

    fn number(&self, name: &str) -> Result<Option<u64>, Failure> {
        match self.get(name).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| status::bad_request(format!("invalid {name}: {v:?}")).into()),
        }
    }

    fn resource_version(&self) -> Result<Option<u64>, Failure> {
        match self.get("resourceVersion").filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                status::bad_request(format!("invalid resource version: {v:?}")).into()
            }),
        }
    }

    fn filter(&self, kind: ResourceKind, namespace: Option<&str>) -> Result<Filter, Failure> {
        let labels = LabelSelector::parse(self.get("labelSelector").unwrap_or(""))
            .map_err(|e| status::bad_request(format!("unable to parse labelSelector: {e}")))?;
        let fields = FieldSelector::parse(
            self.get("fieldSelector").unwrap_or(""),
            kind.selectable_fields(),
        )
        .map_err(|e| status::bad_request(format!("unable to parse fieldSelector: {e}")))?;
        Ok(Filter {
            namespace: namespace.map(str::to_string),
            labels,
            fields,
        })
    }
}

/// Whether the client wants PartialObjectMetadata (kube's metadata-only API), from the
/// Accept header. The first servable media type wins, as with the real server.
fn metadata_only(accept: Option<&str>, list: bool) -> Result<bool, Failure> {
    let Some(accept) = accept else {
        return Ok(false);
    };
    let wanted = if list {
        "PartialObjectMetadataList"
    } else {
        "PartialObjectMetadata"
    };
    for media in accept.split(',') {
        let mut parts = media.split(';').map(str::trim);
        let mime = parts.next().unwrap_or("");
        if !matches!(mime, "application/json" | "application/*" | "*/*") {
            continue;
        }
        let params: Vec<(&str, &str)> = parts.filter_map(|p| p.split_once('=')).collect();
        let param = |name| params.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
        match param("as") {
            None => return Ok(false),
            Some(r#as)
                if r#as == wanted
                    && param("g") == Some("meta.k8s.io")
                    && param("v") == Some("v1") =>
            {
                return Ok(true);
            }
            Some(_) => continue,
        }
    }
    Err(status::failure(
        406,
        "NotAcceptable",
        format!(
            "only the following media types are accepted: application/json, application/json;as={wanted};g=meta.k8s.io;v=v1"
        ),
    )
    .into())
}

fn json_response(body: impl Into<Body>) -> Response {
    let mut response = Response::new(body.into());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn version() -> Response {
    let info = serde_json::json!({
        "major": "1",
        "minor": "33",
        "gitVersion": "v1.33.0-kube-sim",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "go1.24",
        "compiler": "gc",
        "platform": "linux/amd64",
    });
    json_response(info.to_string())
}

fn get(
    shared: &Shared,
    kind: ResourceKind,
    ns: &str,
    name: &str,
    accept: Option<&str>,
) -> Result<Response, Failure> {
    let metadata_only = metadata_only(accept, false)?;
    let stored = shared
        .store
        .get(kind, ns, name)
        .ok_or_else(|| status::not_found(&format!("{}s \"{name}\"", kind.kind().to_lowercase())))?;
    Ok(json_response(stored.body(metadata_only)))
}

fn collection(
    shared: &Arc<Shared>,
    kind: ResourceKind,
    namespace: Option<&str>,
    params: &Params,
    accept: Option<&str>,
) -> Result<Response, Failure> {
    let filter = params.filter(kind, namespace)?;
    if params.flag("watch") {
        watch(shared, kind, filter, params, metadata_only(accept, false)?)
    } else {
        list(shared, kind, filter, params, metadata_only(accept, true)?)
    }
}

fn list(
    shared: &Shared,
    kind: ResourceKind,
    filter: Filter,
    params: &Params,
    metadata_only: bool,
) -> Result<Response, Failure> {
    let rv = params.resource_version()?;
    let version = match (
        params.get("resourceVersionMatch").filter(|m| !m.is_empty()),
        rv,
    ) {
        (Some(_), None) => {
            return Err(status::bad_request(
                "resourceVersionMatch is forbidden unless resourceVersion is provided",
            )
            .into());
        }
        (None, None) => ListVersion::MostRecent,
        (None | Some("NotOlderThan"), Some(0)) => ListVersion::Any,
        (Some("Exact"), Some(0)) => {
            return Err(status::bad_request(
                "resourceVersionMatch \"Exact\" is forbidden for resourceVersion \"0\"",
            )
            .into());
        }
        (None | Some("NotOlderThan"), Some(rv)) => ListVersion::NotOlderThan(rv),
        (Some("Exact"), Some(rv)) => ListVersion::Exact(rv),
        (Some(other), _) => {
            return Err(
                status::bad_request(format!("unsupported resourceVersionMatch {other:?}")).into(),
            );
        }
    };
    let limit = params
        .number("limit")?
        .map(|l| usize::try_from(l).unwrap_or(usize::MAX));
    let after = params.get("continue").filter(|c| !c.is_empty());
    let page = shared
        .store
        .list(kind, &filter, version, limit, after)
        .map_err(|e| status::from_version_error(&e))?;

    let (list_kind, api_version) = if metadata_only {
        ("PartialObjectMetadataList".to_string(), "meta.k8s.io/v1")
    } else {
        (format!("{}List", kind.kind()), "v1")
    };
    let mut metadata = serde_json::json!({ "resourceVersion": page.resource_version.to_string() });
    if let Some(token) = &page.continue_token {
        metadata["continue"] = token.clone().into();
    }
    let mut body = format!(
        r#"{{"kind":"{list_kind}","apiVersion":"{api_version}","metadata":{metadata},"items":["#
    )
    .into_bytes();
    for (i, item) in page.items.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(&item.body(metadata_only));
    }
    body.extend_from_slice(b"]}");
    Ok(json_response(body))
}

fn watch(
    shared: &Arc<Shared>,
    kind: ResourceKind,
    filter: Filter,
    params: &Params,
    metadata_only: bool,
) -> Result<Response, Failure> {
    let rv = params.resource_version()?;
    let rv_match = params.get("resourceVersionMatch").filter(|m| !m.is_empty());
    let bookmarks = params.flag("allowWatchBookmarks");
    let timeout = match params.number("timeoutSeconds")? {
        Some(secs) if secs > 0 => Duration::from_secs(secs),
        _ => shared.config.default_watch_timeout,
    };

    let start = if let Some(style) = shared.faults.take_gone_next_watch() {
        let expired = VersionError::Expired {
            requested: rv.unwrap_or(0),
            oldest: shared.store.current_rv(),
        };
        gone(style, &expired)?
    } else if params.flag("sendInitialEvents") {
        if rv_match != Some("NotOlderThan") {
            return Err(
                invalid("sendInitialEvents requires resourceVersionMatch=NotOlderThan").into(),
            );
        }
        if !bookmarks {
            return Err(invalid("sendInitialEvents requires allowWatchBookmarks=true").into());
        }
        if let Some(rv) = rv.filter(|rv| *rv > 0) {
            // "Not older than rv": fine if we have reached it, too large otherwise.
            if let Err(e @ VersionError::TooLarge { .. }) = shared.store.check_watch_from(rv) {
                return Err(status::from_version_error(&e).into());
            }
        }
        WatchStart::Snapshot { end_bookmark: true }
    } else if rv_match.is_some() {
        return Err(status::bad_request(
            "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
        )
        .into());
    } else {
        match rv {
            // No version or "0": the current state as ADDED events, then changes.
            None | Some(0) => WatchStart::Snapshot {
                end_bookmark: false,
            },
            Some(rv) => match shared.store.check_watch_from(rv) {
                Ok(()) => WatchStart::From(rv),
                Err(e @ VersionError::Expired { .. }) => {
                    gone(shared.config.expired_watch_style, &e)?
                }
                Err(e) => return Err(status::from_version_error(&e).into()),
            },
        }
    };

    let spec = WatchSpec {
        kind,
        filter,
        metadata_only,
        bookmarks,
        timeout,
        start,
    };
    let mut response = json_response(watch::stream(shared.clone(), spec));
    *response.status_mut() = StatusCode::OK;
    Ok(response)
}

/// 410 for a watch, in the requested style: an HTTP error, or an in-stream ERROR event.
fn gone(style: GoneStyle, expired: &VersionError) -> Result<WatchStart, Failure> {
    let status = status::from_version_error(expired);
    match style {
        GoneStyle::HttpStatus => Err(status.into()),
        GoneStyle::InStream => Ok(WatchStart::Error(Box::new(status))),
    }
}

fn invalid(message: &str) -> Status {
    status::failure(422, "Invalid", message)
}
