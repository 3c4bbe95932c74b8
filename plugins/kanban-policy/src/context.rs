//! Helpers over the facts the host hands a policy: the newest run and how it ended, ages relative to
//! `ctx.now` (a policy's only clock), comments newest first, events by kind, event payloads as JSON.
//!
//! They are methods on the generated records, so they read as `ctx.latest_run()`, `run.outcome()`,
//! `comment.pull_request_url()`.

use std::fmt;

use serde::de::DeserializeOwned;

use crate::text::pull_request_url_in;
use crate::types::{BoardFacts, Comment, Context, Event, Parent, ProfileLoad, Run};

/// How a run ended (`run.outcome`), as the host names it. Outcomes this version of the crate does not know
/// come as [`Outcome::Other`], so a newer host never makes a plugin fail to read a run.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    Completed,
    Blocked,
    Crashed,
    RateLimited,
    ProtocolViolation,
    ConfigError,
    TimedOut,
    Stale,
    Reclaimed,
    SpawnFailed,
    SpawnLost,
    HostError,
    ReviewRequested,
    ChangesRequested,
    Other(String),
}

const NAMED: [(&str, Outcome); 14] = [
    ("completed", Outcome::Completed),
    ("blocked", Outcome::Blocked),
    ("crashed", Outcome::Crashed),
    ("rate_limited", Outcome::RateLimited),
    ("protocol_violation", Outcome::ProtocolViolation),
    ("config_error", Outcome::ConfigError),
    ("timed_out", Outcome::TimedOut),
    ("stale", Outcome::Stale),
    ("reclaimed", Outcome::Reclaimed),
    ("spawn_failed", Outcome::SpawnFailed),
    ("spawn_lost", Outcome::SpawnLost),
    ("host_error", Outcome::HostError),
    ("review_requested", Outcome::ReviewRequested),
    ("changes_requested", Outcome::ChangesRequested),
];

impl Outcome {
    /// The outcome the host calls `name` (`"rate_limited"` is [`Outcome::RateLimited`]).
    pub fn parse(name: &str) -> Outcome {
        NAMED
            .iter()
            .find(|(known, _)| *known == name)
            .map_or_else(|| Outcome::Other(name.to_string()), |(_, outcome)| outcome.clone())
    }

    /// The host's name for it: `rate_limited`, `completed`, ...
    pub fn as_str(&self) -> &str {
        match self {
            Outcome::Other(name) => name,
            known => {
                NAMED.iter().find(|(_, o)| o == known).map(|(name, _)| *name).expect("every named outcome")
            }
        }
    }
}

impl From<&str> for Outcome {
    fn from(name: &str) -> Outcome {
        Outcome::parse(name)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Context {
    /// The newest run of the card (the host lists runs newest first), if it ever ran.
    pub fn latest_run(&self) -> Option<&Run> {
        self.runs.first()
    }

    /// Seconds from `at` (unix seconds) to `now`: how long ago it was; negative for a time in the future.
    pub fn seconds_since(&self, at: i64) -> i64 {
        self.now.saturating_sub(at)
    }

    /// `Some(since + window)`, the time a window of `window` seconds opened at `since` closes, while `now`
    /// is before it; `None` once it has closed, or when `window` is 0 or less (a rule switched off).
    pub fn still_within(&self, since: i64, window: i64) -> Option<i64> {
        let until = since.saturating_add(window);
        (window > 0 && self.now < until).then_some(until)
    }

    /// The comments, newest first (by time, then id).
    pub fn newest_comments(&self) -> Vec<&Comment> {
        let mut comments: Vec<&Comment> = self.comments.iter().collect();
        comments.sort_by_key(|comment| std::cmp::Reverse((comment.created_at, comment.id)));
        comments
    }

    /// The events in id order (the order they happened).
    pub fn events_in_order(&self) -> Vec<&Event> {
        let mut events: Vec<&Event> = self.events.iter().collect();
        events.sort_by_key(|event| event.id);
        events
    }

    /// The newest event (highest id) whose kind is one of `kinds`.
    pub fn latest_event(&self, kinds: &[&str]) -> Option<&Event> {
        self.events.iter().filter(|event| kinds.contains(&event.kind.as_str())).max_by_key(|event| event.id)
    }
}

impl Run {
    /// How the run ended, if it has: `None` while it is still running.
    pub fn outcome(&self) -> Option<Outcome> {
        self.outcome.as_deref().map(Outcome::parse)
    }

    /// When the run ended, or when it started if it has not ended.
    pub fn ended_or_started_at(&self) -> i64 {
        self.ended_at.unwrap_or(self.started_at)
    }
}

impl Comment {
    /// The first pull-request (GitHub) or merge-request (GitLab) URL in the comment, normalised to end at
    /// its number; see [`pull_request_url_in`].
    pub fn pull_request_url(&self) -> Option<String> {
        pull_request_url_in(&self.body)
    }
}

impl Event {
    /// The payload as JSON; `Null` if it is not valid JSON (the host always sends an object). Index it
    /// directly: `event.payload_json()["reason"]` is `Null` when the key is absent.
    pub fn payload_json(&self) -> serde_json::Value {
        serde_json::from_str(&self.payload).unwrap_or(serde_json::Value::Null)
    }

    /// The payload read into a type of your own.
    pub fn payload_as<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(&self.payload)
    }
}

impl BoardFacts {
    /// The board's profile called `name`, with its running count and cap.
    pub fn profile(&self, name: &str) -> Option<&ProfileLoad> {
        self.profiles.iter().find(|profile| profile.name == name)
    }
}

impl Parent {
    /// Whether the card still waits on this parent: it is neither done nor archived.
    pub fn is_open(&self) -> bool {
        self.status != "done" && self.status != "archived"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::ContextBuilder;

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn outcomes_round_trip_and_unknown_ones_are_kept() {
        for (name, outcome) in NAMED {
            assert_eq!(Outcome::parse(name), outcome);
            assert_eq!(outcome.as_str(), name);
        }
        assert_eq!(Outcome::parse("eaten_by_a_grue"), Outcome::Other("eaten_by_a_grue".into()));
        assert_eq!(Outcome::from("eaten_by_a_grue").to_string(), "eaten_by_a_grue");
    }

    #[test]
    fn runs_and_windows() {
        let ctx = ContextBuilder::new(NOW)
            .run(|r| r.outcome("rate_limited").ended_ago(100))
            .run(|r| r.outcome("completed").started_ago(5000).ended_ago(4000))
            .run(|r| r.started_ago(10))
            .build();
        let latest = ctx.latest_run().unwrap();
        assert_eq!(latest.outcome(), Some(Outcome::RateLimited));
        assert_eq!(ctx.seconds_since(latest.ended_or_started_at()), 100);
        assert_eq!(ctx.runs[2].outcome(), None);
        assert_eq!(ctx.runs[2].ended_or_started_at(), NOW - 10);
        assert_eq!(ctx.still_within(NOW - 100, 300), Some(NOW + 200));
        assert_eq!(ctx.still_within(NOW - 300, 300), None, "closed exactly now");
        assert_eq!(ctx.still_within(NOW, 0), None, "switched off");
        assert_eq!(ctx.still_within(i64::MAX - 1, 10), Some(i64::MAX));
    }

    #[test]
    fn comments_events_and_facts() {
        let ctx = ContextBuilder::new(NOW)
            .comment(|c| c.body("first").ago(50))
            .comment(|c| c.body("https://github.com/o/r/pull/9").ago(10))
            .event(|e| e.id(7).kind("blocked").ago(30).payload(r#"{"reason": "waiting", "sticky": true}"#))
            .event(|e| e.id(3).kind("blocked").ago(60))
            .event(|e| e.id(9).kind("unblocked").ago(5))
            .parent("t_1", "Design", "done")
            .parent("t_2", "Build", "review")
            .profile("coder", 1, Some(2))
            .build();
        let newest: Vec<&str> = ctx.newest_comments().iter().map(|c| c.body.as_str()).collect();
        assert_eq!(newest, ["https://github.com/o/r/pull/9", "first"]);
        assert_eq!(
            ctx.newest_comments()[0].pull_request_url().as_deref(),
            Some("https://github.com/o/r/pull/9")
        );
        assert_eq!(ctx.events_in_order().iter().map(|e| e.id).collect::<Vec<_>>(), [3, 7, 9]);
        let blocked = ctx.latest_event(&["blocked", "gave_up"]).unwrap();
        assert_eq!(blocked.id, 7);
        assert_eq!(blocked.payload_json()["reason"], "waiting");
        assert_eq!(blocked.payload_json()["absent"], serde_json::Value::Null);
        #[derive(serde::Deserialize)]
        struct Block {
            sticky: bool,
        }
        assert!(blocked.payload_as::<Block>().unwrap().sticky);
        assert_eq!(ctx.board.profile("coder").map(|p| p.cap), Some(Some(2)));
        assert!(ctx.board.profile("ghost").is_none());
        assert_eq!(ctx.parents.iter().filter(|p| p.is_open()).count(), 1);
    }
}
