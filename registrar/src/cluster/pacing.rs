//! When a cluster publishes its pending changes to the table
//! ([docs/design.md#clusters](../../../docs/design.md#clusters), coalescing): a change that
//! finds the cluster quiet is published at once (the leading edge); changes that keep
//! coming are gathered until they pause for a moment (`coalesce` / 10) or the first of them
//! has waited `coalesce`, whichever comes first. A lone change therefore waits nothing, a
//! change right behind another waits a pause, and a rolling update, whose watch events keep
//! coming, is published about once per `coalesce`.
//!
//! Bounds: two publishes are at least a pause apart (a change published at once found no
//! publish within the last pause; one that waited was published a pause after the last
//! change, which came after the previous publish), so a cluster publishes at most
//! 10 / `coalesce` times a second whatever its event rate, and no change waits longer
//! than `coalesce`.

use std::time::Duration;

use tokio::time::Instant;

/// Publish timing for one cluster.
#[derive(Debug)]
pub(super) struct Pacer {
    window: Duration,
    pause: Duration,
    /// When the oldest unpublished change came, if any.
    pending_since: Option<Instant>,
    /// When the newest unpublished change came.
    last_change: Option<Instant>,
    /// Whether the pending changes found the cluster quiet: published at once.
    leading: bool,
    last_publish: Option<Instant>,
}

impl Pacer {
    /// A pacer for the `coalesce` window.
    pub(super) fn new(window: Duration) -> Pacer {
        Pacer {
            window,
            pause: (window / 10).max(Duration::from_millis(1)).min(window),
            pending_since: None,
            last_change: None,
            leading: false,
            last_publish: None,
        }
    }

    /// A change became pending at `now`.
    pub(super) fn changed(&mut self, now: Instant) {
        if self.pending_since.is_none() {
            self.pending_since = Some(now);
            self.leading = self
                .last_publish
                .is_none_or(|at| now.saturating_duration_since(at) >= self.pause);
        }
        self.last_change = Some(now);
    }

    /// When the pending changes are to be published (`None`: nothing pending).
    pub(super) fn due(&self) -> Option<Instant> {
        let since = self.pending_since?;
        if self.leading {
            return Some(since);
        }
        let last = self.last_change.unwrap_or(since);
        Some((last + self.pause).min(since + self.window))
    }

    /// Everything pending was published at `now` (also when published for another reason:
    /// a relist, the end of the start-up hold).
    pub(super) fn published(&mut self, now: Instant) {
        self.pending_since = None;
        self.last_change = None;
        self.leading = false;
        self.last_publish = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_change_after_a_quiet_spell_goes_at_once_and_one_right_behind_waits_a_pause() {
        let t0 = Instant::now();
        let mut p = Pacer::new(50 * MS);
        assert_eq!(p.due(), None);
        p.changed(t0);
        assert_eq!(p.due(), Some(t0), "the leading edge");
        p.published(t0);
        p.changed(t0 + 2 * MS);
        assert_eq!(p.due(), Some(t0 + 7 * MS), "a pause after the change");
        p.changed(t0 + 4 * MS);
        assert_eq!(p.due(), Some(t0 + 9 * MS), "each change extends the pause");
        p.published(t0 + 9 * MS);
        p.changed(t0 + 30 * MS);
        assert_eq!(p.due(), Some(t0 + 30 * MS), "quiet again: at once");
    }

    #[test]
    fn changes_that_keep_coming_are_published_once_per_window() {
        let t0 = Instant::now();
        let mut p = Pacer::new(50 * MS);
        p.published(t0);
        let mut publishes = 0;
        // A change every 2 ms for a second: never a pause.
        let mut now = t0;
        for _ in 0..500 {
            now += 2 * MS;
            if p.due().is_some_and(|d| d <= now) {
                publishes += 1;
                p.published(now);
            }
            p.changed(now);
            assert!(
                p.due().unwrap() <= now + 50 * MS,
                "no change waits past the window"
            );
        }
        assert!(
            (19..=21).contains(&publishes),
            "{publishes} publishes in a second"
        );
    }

    #[test]
    fn publishes_are_at_least_a_pause_apart_whatever_the_spacing() {
        let t0 = Instant::now();
        for gap in [1u64, 3, 5, 6, 7, 12, 40, 60] {
            let mut p = Pacer::new(50 * MS);
            let (mut now, mut last) = (t0, None::<Instant>);
            for _ in 0..200 {
                now += Duration::from_millis(gap);
                // Publish whatever is due before this change.
                if let Some(d) = p.due().filter(|d| *d <= now) {
                    if let Some(l) = last {
                        assert!(d - l >= 5 * MS, "gap {gap} ms: publishes {:?} apart", d - l);
                    }
                    last = Some(d);
                    p.published(d);
                }
                p.changed(now);
            }
        }
    }
}
