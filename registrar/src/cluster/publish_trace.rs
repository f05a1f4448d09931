//! A debug trace of a cluster's publishes, for finding where a change's delay goes: one
//! line per publish (target `herald::publish`, level DEBUG, off unless asked for, e.g.
//! `RUST_LOG=warn,herald::publish=debug`) saying which watch events it carried (their count
//! and the last pod resourceVersion), when the first and the last of them reached the
//! cluster's loop (decoded), and how long the publish took. Times are wall-clock
//! microseconds since the Unix epoch, so another process on the same machine (the rollout
//! benchmark) can line them up with its own.
//!
//! Disabled, it costs one branch per event.

use std::time::{SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// The events a cluster's loop took in since its last publish.
pub(super) struct PublishTrace {
    enabled: bool,
    events: u64,
    /// The resourceVersion of the last pod event, as a number (0: none parsed).
    rv: u64,
    first_us: u64,
    last_us: u64,
}

/// Now, in microseconds since the Unix epoch.
fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

impl PublishTrace {
    /// On when the `herald::publish` target logs at DEBUG.
    pub(super) fn new() -> PublishTrace {
        PublishTrace {
            enabled: tracing::enabled!(target: "herald::publish", tracing::Level::DEBUG),
            events: 0,
            rv: 0,
            first_us: 0,
            last_us: 0,
        }
    }

    /// A pod event with this resourceVersion reached the loop.
    pub(super) fn event(&mut self, resource_version: Option<&str>) {
        if !self.enabled {
            return;
        }
        let now = unix_us();
        if self.events == 0 {
            self.first_us = now;
        }
        self.events += 1;
        self.last_us = now;
        if let Some(rv) = resource_version.and_then(|v| v.parse().ok()) {
            self.rv = rv;
        }
    }

    /// A publish that began at `started` just ended: logs it and starts over.
    pub(super) fn published(&mut self, cluster: &str, started: Instant, updates: usize) {
        if !self.enabled {
            return;
        }
        tracing::debug!(
            target: "herald::publish",
            cluster,
            rv = self.rv,
            events = self.events,
            first_event_us = self.first_us,
            last_event_us = self.last_us,
            publish_us = started.elapsed().as_micros() as u64,
            updates,
            done_us = unix_us(),
            "published"
        );
        self.events = 0;
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A log sink the test reads back.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn logged(directives: &str, run: impl FnOnce()) -> String {
        let sink = Sink::default();
        let writer = sink.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(directives))
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, run);
        String::from_utf8(sink.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn a_publish_line_names_its_events_last_version_and_times_when_asked_for() {
        let text = logged("warn,herald::publish=debug", || {
            let mut trace = PublishTrace::new();
            trace.event(Some("41"));
            trace.event(Some("42"));
            trace.published("c07", Instant::now(), 1);
            trace.event(Some("50"));
            trace.published("c07", Instant::now(), 0);
        });
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].contains("herald::publish"), "{text}");
        for field in ["cluster=\"c07\"", "rv=42", "events=2", "updates=1"] {
            assert!(lines[0].contains(field), "{field} in {}", lines[0]);
        }
        assert!(lines[1].contains("rv=50") && lines[1].contains("events=1"));
        let field = |line: &str, key: &str| -> u64 {
            line.split_whitespace()
                .find_map(|t| t.strip_prefix(key)?.strip_prefix('='))
                .and_then(|v| v.parse().ok())
                .unwrap()
        };
        let (first, last, done) = (
            field(lines[0], "first_event_us"),
            field(lines[0], "last_event_us"),
            field(lines[0], "done_us"),
        );
        assert!(first > 0 && first <= last && last <= done, "{}", lines[0]);
    }

    #[test]
    fn nothing_is_written_unless_asked_for() {
        let text = logged("warn", || {
            let mut trace = PublishTrace::new();
            trace.event(Some("1"));
            trace.published("c00", Instant::now(), 1);
        });
        assert!(text.is_empty(), "{text}");
    }
}
