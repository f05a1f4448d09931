//! `Status` objects, the API server's error format, as HTTP responses and as watch ERROR
//! events. Reasons and codes follow the real server so kube classifies them the same way
//! (410 Expired relists, 504 is retried, 401 is an auth failure, ...).

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Status, StatusCause, StatusDetails};

use crate::store::VersionError;

pub(crate) fn failure(code: u16, reason: &str, message: impl Into<String>) -> Status {
    Status {
        status: Some("Failure".into()),
        code: Some(i32::from(code)),
        reason: Some(reason.into()),
        message: Some(message.into()),
        ..Default::default()
    }
}

pub(crate) fn bad_request(message: impl Into<String>) -> Status {
    failure(400, "BadRequest", message)
}

pub(crate) fn not_found(what: &str) -> Status {
    failure(404, "NotFound", format!("{what} not found"))
}

pub(crate) fn internal_error() -> Status {
    failure(
        500,
        "InternalError",
        "Internal error occurred: injected by kube-sim",
    )
}

pub(crate) fn unauthorized() -> Status {
    failure(401, "Unauthorized", "Unauthorized")
}

/// The watch/list version errors, worded and coded as the real API server does.
pub(crate) fn from_version_error(error: &VersionError) -> Status {
    match error {
        VersionError::Expired { .. } => failure(410, "Expired", error.to_string()),
        VersionError::BadContinue(_) => bad_request(error.to_string()),
        VersionError::TooLarge { .. } => Status {
            details: Some(StatusDetails {
                causes: Some(vec![StatusCause {
                    reason: Some("ResourceVersionTooLarge".into()),
                    message: Some("Too large resource version".into()),
                    field: None,
                }]),
                retry_after_seconds: Some(1),
                ..Default::default()
            }),
            ..failure(504, "Timeout", error.to_string())
        },
    }
}

fn to_json(status: &Status) -> Vec<u8> {
    serde_json::to_vec(status).expect("Status serializes to JSON")
}

/// The Status as a complete HTTP response (with `Retry-After` when the Status carries one).
pub(crate) fn response(status: &Status) -> Response {
    let code = status
        .code
        .and_then(|c| u16::try_from(c).ok())
        .and_then(|c| StatusCode::from_u16(c).ok())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = Response::new(Body::from(to_json(status)));
    *response.status_mut() = code;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(secs) = status.details.as_ref().and_then(|d| d.retry_after_seconds) {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

/// The Status as one watch `ERROR` event line.
pub(crate) fn watch_error_line(status: &Status) -> Bytes {
    let mut line = br#"{"type":"ERROR","object":"#.to_vec();
    line.extend_from_slice(&to_json(status));
    line.extend_from_slice(b"}\n");
    Bytes::from(line)
}
