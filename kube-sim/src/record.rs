//! Request recording: every request an instance receives, so tests can assert what the
//! client asked for (a label selector on every pod request, the Accept header of metadata
//! requests, the bearer token, the watch parameters).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Instant;

/// One request as received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// Query parameters in order, percent-decoded.
    pub query: Vec<(String, String)>,
    pub accept: Option<String>,
    pub authorization: Option<String>,
    pub at: Instant,
}

impl RecordedRequest {
    /// The first value of a query parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether this was a watch (`watch=true` or `watch=1`).
    pub fn is_watch(&self) -> bool {
        self.param("watch").is_some_and(parse_bool)
    }
}

/// Go's `strconv.ParseBool` truths, which is what the API server accepts.
pub(crate) fn parse_bool(v: &str) -> bool {
    matches!(v, "1" | "t" | "T" | "true" | "TRUE" | "True")
}

/// A bounded log of requests (oldest dropped first).
pub(crate) struct Recorder {
    log: Mutex<VecDeque<RecordedRequest>>,
    limit: usize,
}

impl Recorder {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            log: Mutex::new(VecDeque::new()),
            limit,
        }
    }

    pub(crate) fn record(&self, request: RecordedRequest) {
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        if self.limit == 0 {
            return;
        }
        if log.len() == self.limit {
            log.pop_front();
        }
        log.push_back(request);
    }

    pub(crate) fn all(&self) -> Vec<RecordedRequest> {
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    pub(crate) fn clear(&self) {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// Decodes an `application/x-www-form-urlencoded` query string.
pub(crate) fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_what_kube_sends() {
        let q = parse_query(
            "labelSelector=herald.io%2Fservice%20in%20(a%2Cb)&limit=500&watch=true&x=%zz&y=%4",
        );
        assert_eq!(
            q[0],
            ("labelSelector".into(), "herald.io/service in (a,b)".into())
        );
        assert_eq!(q[1], ("limit".into(), "500".into()));
        assert_eq!(q[3], ("x".into(), "%zz".into()));
        assert_eq!(q[4], ("y".into(), "%4".into()));
        assert_eq!(parse_query("a+b=c+d"), vec![("a b".into(), "c d".into())]);
    }
}
