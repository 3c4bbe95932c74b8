//! The dispatcher's health, as the web board's strip shows it (`GET /api/v1/boards/{slug}/health`): which
//! host ticked the board last and when, running cards against the caps, and the ready cards still waiting,
//! each with why. A read: no policy runs and nothing is written (a guard's hold is read from the
//! `deferred` event the tick recorded). The caps are the tick's own ([`Caps::of`]).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::Desk;
use crate::dispatch::plan::Caps;
use crate::model::{Pause, Status};
use crate::store::{HostSeen, TaskFilter};

/// Card ids listed per reason at most (the count is always whole).
pub const SAMPLE: usize = 10;

#[derive(Debug, Serialize)]
pub struct Health {
    /// Hosts that ticked this board, most recently seen first (a tick, dry runs included, marks its host).
    pub hosts: Vec<HostSeen>,
    pub running: usize,
    /// `dispatch.max_in_progress`.
    pub max_in_progress: usize,
    pub profiles: Vec<ProfileLoad>,
    pub pauses: Vec<Pause>,
    /// Ready cards, and why each is not running yet.
    pub ready: usize,
    pub waiting: Vec<Waiting>,
}

#[derive(Debug, Serialize)]
pub struct ProfileLoad {
    pub profile: String,
    pub running: usize,
    /// Its cap; none when only the board's applies.
    pub cap: Option<usize>,
    /// Ready cards assigned to it.
    pub ready: usize,
}

/// One reason ready cards wait: `paused`, `unassigned`, `unknown_profile`, `no_host` (their profile
/// `requires` labels no live host has), `guarded`, `board_capped`, `profile_capped`, or `next_tick`
/// (nothing holds them: the next tick spawns them).
#[derive(Debug, Serialize)]
pub struct Waiting {
    pub why: &'static str,
    pub count: usize,
    /// The first [`SAMPLE`] of them, oldest first.
    pub cards: Vec<String>,
}

/// What holds ready cards back, as read once.
struct Holds {
    caps: Caps,
    /// Running cards per profile, and on the board.
    load: BTreeMap<String, usize>,
    running: usize,
    board_paused: bool,
    paused_profiles: BTreeSet<String>,
    guarded: BTreeSet<String>,
    /// The labels of each live host (seen within the claim TTL).
    live_labels: Vec<BTreeSet<String>>,
}

impl Holds {
    /// Why ready card `id` of `assignee` is not running: the first reason the tick would stop at.
    fn why(&self, id: &str, assignee: Option<&str>) -> &'static str {
        let Some(profile) = assignee else { return "unassigned" };
        if self.board_paused || self.paused_profiles.contains(profile) {
            return "paused";
        }
        if !self.caps.profiles.contains_key(profile) {
            return "unknown_profile";
        }
        if let Some(requires) = self.caps.requires.get(profile)
            && !self.live_labels.iter().any(|labels| requires.is_subset(labels))
        {
            return "no_host";
        }
        if self.guarded.contains(id) {
            return "guarded";
        }
        if self.running >= self.caps.board {
            return "board_capped";
        }
        let cap = self.caps.profiles.get(profile).copied().flatten();
        if cap.is_some_and(|cap| self.load.get(profile).copied().unwrap_or(0) >= cap) {
            return "profile_capped";
        }
        "next_tick"
    }
}

/// Read the board's dispatcher health now.
pub fn read(desk: &mut Desk) -> anyhow::Result<Health> {
    let running_cards = desk.store.running_cards()?;
    let load = super::policies::load_of(&running_cards);
    let pauses = desk.store.pauses()?;
    let hosts = desk.store.hosts()?;
    let live_since = crate::clock::now() - desk.board.config.dispatch.claim_ttl_seconds;
    let holds = Holds {
        live_labels: hosts
            .iter()
            .filter(|h| h.last_seen >= live_since)
            .map(|h| h.labels.iter().cloned().collect())
            .collect(),
        caps: Caps::of(&desk.board.config),
        load,
        running: running_cards.len(),
        board_paused: pauses.iter().any(|p| p.profile.is_none()),
        paused_profiles: pauses.iter().filter_map(|p| p.profile.clone()).collect(),
        guarded: desk.store.deferred_cards(Status::Ready)?.into_iter().filter_map(|e| e.task_id).collect(),
    };
    let mut ready_per: BTreeMap<String, usize> = BTreeMap::new();
    let mut waiting: Vec<Waiting> = Vec::new();
    let mut ready = 0;
    let filter = TaskFilter { status: Some(Status::Ready), ..TaskFilter::default() };
    let mut cards = Vec::new();
    desk.store.for_each_task(&filter, |task| {
        cards.push((task.id, task.assignee));
        Ok(())
    })?;
    for (id, assignee) in cards {
        ready += 1;
        if let Some(profile) = &assignee {
            *ready_per.entry(profile.clone()).or_default() += 1;
        }
        let reason = holds.why(&id, assignee.as_deref());
        let slot = match waiting.iter().position(|w| w.why == reason) {
            Some(i) => i,
            None => {
                waiting.push(Waiting { why: reason, count: 0, cards: Vec::new() });
                waiting.len() - 1
            }
        };
        let w = &mut waiting[slot];
        w.count += 1;
        if w.cards.len() < SAMPLE {
            w.cards.push(id);
        }
    }
    waiting.sort_by_key(|w| std::cmp::Reverse(w.count));
    let profiles = holds
        .caps
        .profiles
        .iter()
        .map(|(profile, cap)| ProfileLoad {
            profile: profile.clone(),
            running: holds.load.get(profile).copied().unwrap_or(0),
            cap: *cap,
            ready: ready_per.get(profile).copied().unwrap_or(0),
        })
        .collect();
    Ok(Health {
        hosts,
        running: holds.running,
        max_in_progress: holds.caps.board,
        profiles,
        pauses,
        ready,
        waiting,
    })
}
