//! The spawn plan: which dispatchable cards the tick starts, from the candidates in dispatch order, the
//! running counts, the caps and what the board's router and respawn guards say. Computed without touching
//! the store or a process (the questions go through [`Ask`]), so a dry run plans exactly what a real tick
//! does, and every cap rule is unit-tested.
//!
//! Two lanes share the board's `max_in_progress`: the work lane (ready cards, to their assignee) and the
//! review lane (review cards, to their reviewer). While a review card is waiting for a reviewer the work
//! lane leaves one slot of the cap free for it, so a long ready queue never starves reviews.
//!
//! Each host ticks for itself: it starts a card only if it has every label the card's profile `requires`
//! (a card it cannot run is left to hosts that can, and is not counted as waiting here), and never more
//! workers than its `[host] max_workers`, counted over all the boards of its home.
//!
//! A paused board (`kanban pause`) starts nothing, in either lane, and asks no policy; a paused profile
//! starts nothing for that profile (as assignee or as reviewer). Paused cards are listed, not counted as
//! waiting: they are not spawnable until someone resumes.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::model::{GuardDecision, Lane, Pause, Task};

/// A dispatchable card and the profile its lane gives it to.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub task: Task,
    pub lane: Lane,
    /// Work lane: the assignee (none: ask the router). Review lane: the card's reviewer, else the board's.
    pub profile: Option<String>,
}

/// The questions the plan asks the board's policies.
pub trait Ask {
    /// Who takes this unassigned card: `Some((profile, policy))` or none.
    fn route(
        &mut self,
        task: &Task,
        running: &BTreeMap<String, usize>,
    ) -> anyhow::Result<Option<(String, String)>>;
    /// May this card be spawned now, and which policy said so.
    fn guard(
        &mut self,
        task: &Task,
        running: &BTreeMap<String, usize>,
    ) -> anyhow::Result<(GuardDecision, String)>;
}

/// The board's caps, and what the host ticking it may run.
#[derive(Debug, Clone, Default)]
pub struct Caps {
    pub board: usize,
    /// Each profile of the board and its cap (none: uncapped).
    pub profiles: BTreeMap<String, Option<usize>>,
    /// The labels each profile `requires` of the host that runs it (profiles requiring none are absent).
    pub requires: BTreeMap<String, BTreeSet<String>>,
    pub host: HostRoom,
}

/// The host that ticks: its labels, its `max_workers` and the workers it runs now on every board of its
/// home.
#[derive(Debug, Clone, Default)]
pub struct HostRoom {
    pub labels: BTreeSet<String>,
    pub max_workers: Option<usize>,
    pub running: usize,
}

impl Caps {
    /// The labels `profile` requires that `labels` lacks (empty: a host with `labels` may run it).
    pub fn missing(&self, profile: &str, labels: &BTreeSet<String>) -> Vec<String> {
        self.requires.get(profile).map(|r| r.difference(labels).cloned().collect()).unwrap_or_default()
    }
}

impl Caps {
    /// The caps `board.toml` sets: `dispatch.max_in_progress`, and each profile's `max_in_progress` or else
    /// `dispatch.max_in_progress_per_profile`.
    pub fn of(config: &crate::board::BoardConfig) -> Caps {
        let d = &config.dispatch;
        Caps {
            board: d.max_in_progress as usize,
            profiles: config
                .profiles
                .iter()
                .map(|(name, p)| {
                    (name.clone(), p.max_in_progress.or(d.max_in_progress_per_profile).map(|c| c as usize))
                })
                .collect(),
            requires: config
                .profiles
                .iter()
                .filter(|(_, p)| !p.requires.is_empty())
                .map(|(name, p)| (name.clone(), p.requires.iter().cloned().collect()))
                .collect(),
            host: HostRoom::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Guarded {
    pub task_id: String,
    pub reason: String,
    pub policy: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<i64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AutoAssigned {
    pub task_id: String,
    pub assignee: String,
    pub policy: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Capped {
    pub task_id: String,
    pub assignee: String,
    pub running: usize,
}

/// A card whose profile requires labels the ticking host lacks: another host's to run.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Unfit {
    pub task_id: String,
    pub assignee: String,
    pub missing: Vec<String>,
}

/// The board's pauses, as the tick read them.
#[derive(Debug, Clone, Default)]
pub struct Pauses {
    pub board: Option<Pause>,
    pub profiles: BTreeMap<String, Pause>,
}

impl Pauses {
    pub fn new(pauses: Vec<Pause>) -> Pauses {
        let mut out = Pauses::default();
        for pause in pauses {
            match pause.profile.clone() {
                None => out.board = Some(pause),
                Some(profile) => {
                    out.profiles.insert(profile, pause);
                }
            }
        }
        out
    }

    /// The pause that holds a card given to `profile`: the board's, else the profile's own.
    fn holding(&self, profile: Option<&str>) -> Option<&Pause> {
        self.board.as_ref().or_else(|| profile.and_then(|p| self.profiles.get(p)))
    }
}

/// What a pause held back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PauseScope {
    Board,
    Profile,
}

/// A card a pause held back.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PausedCard {
    pub task_id: String,
    /// The profile it would go to (none: an unassigned card on a paused board, which is not routed).
    pub profile: Option<String>,
    pub scope: PauseScope,
    pub reason: Option<String>,
}

impl PausedCard {
    fn new(task_id: String, profile: Option<String>, pause: &Pause) -> PausedCard {
        let scope = if pause.profile.is_none() { PauseScope::Board } else { PauseScope::Profile };
        PausedCard { task_id, profile, scope, reason: pause.reason.clone() }
    }
}

/// One card to start.
#[derive(Debug, Clone)]
pub struct Start {
    pub task: Task,
    pub lane: Lane,
    pub profile: String,
}

/// What the plan decided.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub start: Vec<Start>,
    pub auto_assigned: Vec<AutoAssigned>,
    /// Guard blocks: (card, reason, policy).
    pub blocked: Vec<(String, String, String)>,
    pub guarded: Vec<Guarded>,
    pub skipped_unassigned: Vec<String>,
    pub skipped_nonspawnable: Vec<String>,
    /// Review cards with no reviewer profile: they wait for a person.
    pub awaiting_review: Vec<String>,
    pub skipped_per_profile_capped: Vec<Capped>,
    pub skipped_board_capped: Vec<String>,
    /// Cards left waiting because this host runs its `max_workers` already.
    pub skipped_host_capped: Vec<String>,
    /// Cards this host lacks the labels for (not counted in `pending`: they wait for another host).
    pub skipped_unfit: Vec<Unfit>,
    /// Cards a pause held back (not counted in `pending`).
    pub paused: Vec<PausedCard>,
    /// Spawnable cards left waiting (capped or deferred).
    pub pending: usize,
}

/// Plan the spawns. `running` counts the cards running per profile before the tick spawns anything.
pub fn plan(
    candidates: Vec<Candidate>,
    running: &BTreeMap<String, usize>,
    caps: &Caps,
    pauses: &Pauses,
    ask: &mut impl Ask,
) -> anyhow::Result<Plan> {
    let mut plan = Plan::default();
    let mut per_profile = running.clone();
    let mut total: usize = running.values().sum();
    let mut on_host = caps.host.running;
    // A pause applies to a profile of the board (a pause left over for a profile since removed from
    // board.toml holds nothing: its cards are not spawnable anyway).
    let held = |profile: Option<&str>| match profile {
        Some(p) if caps.profiles.contains_key(p) => pauses.holding(Some(p)),
        _ => pauses.board.as_ref(),
    };
    // One slot is kept for the review lane while a review card can be dispatched (a paused reviewer
    // cannot be).
    let review_waiting = candidates.iter().any(|c| {
        c.lane == Lane::Review
            && c.profile.as_ref().is_some_and(|p| caps.profiles.contains_key(p) && held(Some(p)).is_none())
    });
    // (A board capped at one worker cannot keep a slot without stopping its work lane; it shares.)
    let work_cap = if review_waiting && caps.board > 1 { caps.board - 1 } else { caps.board };
    for Candidate { task, lane, profile } in candidates {
        let id = task.id.clone();
        if lane == Lane::Review && profile.is_none() {
            plan.awaiting_review.push(id);
            continue;
        }
        // A pause comes before the caps: a paused card is not waiting for a slot, and costs no policy call.
        if let Some(pause) = held(profile.as_deref()) {
            plan.paused.push(PausedCard::new(id, profile, pause));
            continue;
        }
        let cap = match lane {
            Lane::Work => work_cap,
            Lane::Review => caps.board,
        };
        // The board cap comes first: a capped card is reported and costs nothing more (no routing, no
        // policy calls), which keeps a tick on a board with thousands of ready cards cheap.
        if total >= cap {
            plan.skipped_board_capped.push(id);
            plan.pending += 1;
            continue;
        }
        if caps.host.max_workers.is_some_and(|max| on_host >= max) {
            plan.skipped_host_capped.push(id);
            plan.pending += 1;
            continue;
        }
        let profile = match (lane, profile) {
            (_, Some(p)) if !caps.profiles.contains_key(&p) => {
                plan.skipped_nonspawnable.push(id);
                continue;
            }
            (_, Some(p)) => p,
            (_, None) => match ask.route(&task, &per_profile)? {
                Some((p, policy)) => {
                    plan.auto_assigned.push(AutoAssigned {
                        task_id: id.clone(),
                        assignee: p.clone(),
                        policy,
                    });
                    p
                }
                None => {
                    plan.skipped_unassigned.push(id);
                    continue;
                }
            },
        };
        // The router may give a card to a paused profile: the assignment stands, the spawn waits.
        if let Some(pause) = held(Some(&profile)) {
            plan.paused.push(PausedCard::new(id, Some(profile), pause));
            continue;
        }
        let missing = caps.missing(&profile, &caps.host.labels);
        if !missing.is_empty() {
            plan.skipped_unfit.push(Unfit { task_id: id, assignee: profile, missing });
            continue;
        }
        // Per-profile caps: running cards from before this tick count, and so do the ones planned so far.
        let running_here = per_profile.get(&profile).copied().unwrap_or(0);
        if caps.profiles.get(&profile).copied().flatten().is_some_and(|c| running_here >= c) {
            plan.skipped_per_profile_capped.push(Capped {
                task_id: id,
                assignee: profile,
                running: running_here,
            });
            plan.pending += 1;
            continue;
        }
        // Respawn guards: any defer or block wins.
        let mut task = task;
        if lane == Lane::Work {
            task.assignee = Some(profile.clone());
        }
        match ask.guard(&task, &per_profile)? {
            (GuardDecision::Allow, _) => {}
            (GuardDecision::Defer { reason, retry_after }, policy) => {
                plan.guarded.push(Guarded { task_id: id, reason, policy, retry_after });
                plan.pending += 1;
                continue;
            }
            (GuardDecision::Block { reason }, policy) => {
                plan.blocked.push((id, reason, policy));
                continue;
            }
        }
        total += 1;
        on_host += 1;
        *per_profile.entry(profile.clone()).or_default() += 1;
        plan.start.push(Start { task, lane, profile });
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testing::task;

    /// Allows everything, routes nobody, and counts the questions.
    #[derive(Default)]
    struct Yes {
        guarded: usize,
        routed: usize,
        defer: Vec<String>,
    }

    impl Ask for Yes {
        fn route(
            &mut self,
            _: &Task,
            _: &BTreeMap<String, usize>,
        ) -> anyhow::Result<Option<(String, String)>> {
            self.routed += 1;
            Ok(Some(("coder".into(), "router".into())))
        }
        fn guard(
            &mut self,
            t: &Task,
            _: &BTreeMap<String, usize>,
        ) -> anyhow::Result<(GuardDecision, String)> {
            self.guarded += 1;
            if self.defer.contains(&t.id) {
                return Ok((
                    GuardDecision::Defer { reason: "not now".into(), retry_after: None },
                    "g".into(),
                ));
            }
            Ok((GuardDecision::Allow, String::new()))
        }
    }

    fn cand(id: &str, lane: Lane, profile: Option<&str>) -> Candidate {
        Candidate { task: task(id), lane, profile: profile.map(str::to_string) }
    }

    fn caps(board: usize, coder: Option<usize>) -> Caps {
        Caps {
            board,
            profiles: [("coder".to_string(), coder), ("reviewer".to_string(), None)].into(),
            ..Caps::default()
        }
    }

    fn started(p: &Plan) -> Vec<&str> {
        p.start.iter().map(|s| s.task.id.as_str()).collect()
    }

    #[test]
    fn the_board_cap_counts_running_cards_and_capped_cards_cost_no_policy_call() {
        let running = [("coder".to_string(), 2usize)].into();
        let cands = (0..5).map(|i| cand(&format!("t_{i}"), Lane::Work, Some("coder"))).collect();
        let mut ask = Yes::default();
        let p = plan(cands, &running, &caps(3, None), &Pauses::default(), &mut ask).unwrap();
        assert_eq!(started(&p), ["t_0"]);
        assert_eq!(p.skipped_board_capped, ["t_1", "t_2", "t_3", "t_4"]);
        assert_eq!(ask.guarded, 1);
        assert_eq!(p.pending, 4);
    }

    #[test]
    fn per_profile_caps_count_planned_spawns_and_unknown_profiles_are_not_spawnable() {
        let cands = vec![
            cand("a", Lane::Work, Some("coder")),
            cand("b", Lane::Work, Some("coder")),
            cand("c", Lane::Work, Some("ghost")),
            cand("d", Lane::Work, None),
        ];
        let p = plan(cands, &BTreeMap::new(), &caps(8, Some(1)), &Pauses::default(), &mut Yes::default())
            .unwrap();
        assert_eq!(started(&p), ["a"]);
        assert_eq!(p.skipped_per_profile_capped[0].task_id, "b");
        assert_eq!(p.skipped_nonspawnable, ["c"]);
        assert_eq!(p.auto_assigned[0].task_id, "d");
        assert_eq!(p.skipped_per_profile_capped[1].task_id, "d", "a routed card meets the same cap");
    }

    #[test]
    fn a_host_runs_only_the_profiles_it_has_the_labels_for() {
        let mut caps = caps(8, None);
        caps.requires.insert("coder".into(), ["gpu".to_string(), "linux".to_string()].into());
        caps.host.labels = ["linux".to_string()].into();
        let cands = vec![cand("a", Lane::Work, Some("coder")), cand("b", Lane::Work, Some("reviewer"))];
        let mut ask = Yes::default();
        let p = plan(cands.clone(), &BTreeMap::new(), &caps, &Pauses::default(), &mut ask).unwrap();
        assert_eq!(started(&p), ["b"]);
        assert_eq!(
            p.skipped_unfit,
            [Unfit { task_id: "a".into(), assignee: "coder".into(), missing: vec!["gpu".into()] }]
        );
        assert_eq!(
            (p.pending, ask.guarded),
            (0, 1),
            "another host's card neither waits here nor asks a guard"
        );

        caps.host.labels.insert("gpu".into());
        let p = plan(cands, &BTreeMap::new(), &caps, &Pauses::default(), &mut Yes::default()).unwrap();
        assert_eq!(started(&p), ["a", "b"]);
    }

    #[test]
    fn a_host_never_runs_more_than_its_max_workers() {
        let mut caps = caps(8, None);
        caps.host = HostRoom { max_workers: Some(3), running: 1, ..HostRoom::default() };
        let cands = (0..4).map(|i| cand(&format!("t_{i}"), Lane::Work, Some("coder"))).collect();
        let mut ask = Yes::default();
        let p = plan(cands, &BTreeMap::new(), &caps, &Pauses::default(), &mut ask).unwrap();
        assert_eq!(started(&p), ["t_0", "t_1"], "one already runs on another board of the home");
        assert_eq!(p.skipped_host_capped, ["t_2", "t_3"]);
        assert_eq!((p.pending, ask.guarded), (2, 2));
    }

    #[test]
    fn a_waiting_review_keeps_one_slot_of_the_board_cap() {
        let mut cands: Vec<Candidate> =
            (0..4).map(|i| cand(&format!("w{i}"), Lane::Work, Some("coder"))).collect();
        cands.push(cand("r0", Lane::Review, Some("reviewer")));
        let p =
            plan(cands, &BTreeMap::new(), &caps(3, None), &Pauses::default(), &mut Yes::default()).unwrap();
        assert_eq!(started(&p), ["w0", "w1", "r0"], "two work slots, one kept for the review");
        // Without a dispatchable review card the work lane has the whole cap.
        let cands = (0..4).map(|i| cand(&format!("w{i}"), Lane::Work, Some("coder"))).collect();
        let p =
            plan(cands, &BTreeMap::new(), &caps(3, None), &Pauses::default(), &mut Yes::default()).unwrap();
        assert_eq!(started(&p).len(), 3);
        // A review card with no reviewer waits for a person and keeps nothing.
        let mut cands: Vec<Candidate> =
            (0..4).map(|i| cand(&format!("w{i}"), Lane::Work, Some("coder"))).collect();
        cands.push(cand("r1", Lane::Review, None));
        let p =
            plan(cands, &BTreeMap::new(), &caps(3, None), &Pauses::default(), &mut Yes::default()).unwrap();
        assert_eq!(started(&p).len(), 3);
        assert_eq!(p.awaiting_review, ["r1"]);
    }

    #[test]
    fn a_deferred_card_waits_and_the_next_one_takes_its_slot() {
        let cands = vec![cand("a", Lane::Work, Some("coder")), cand("b", Lane::Work, Some("coder"))];
        let mut ask = Yes { defer: vec!["a".into()], ..Yes::default() };
        let p = plan(cands, &BTreeMap::new(), &caps(1, None), &Pauses::default(), &mut ask).unwrap();
        assert_eq!(started(&p), ["b"]);
        assert_eq!(p.guarded[0].task_id, "a");
        assert_eq!(p.pending, 1);
    }

    fn paused(board: bool, profiles: &[&str]) -> Pauses {
        let pause = |profile: Option<&str>| Pause {
            profile: profile.map(str::to_string),
            reason: Some(format!("why {}", profile.unwrap_or("board"))),
            paused_at: 1,
            paused_by: None,
        };
        let mut all: Vec<Pause> = profiles.iter().map(|p| pause(Some(p))).collect();
        if board {
            all.push(pause(None));
        }
        Pauses::new(all)
    }

    fn paused_ids(p: &Plan) -> Vec<(&str, Option<&str>, PauseScope)> {
        p.paused.iter().map(|c| (c.task_id.as_str(), c.profile.as_deref(), c.scope)).collect()
    }

    #[test]
    fn a_paused_board_starts_nothing_in_either_lane_and_asks_no_policy() {
        let cands = vec![
            cand("w", Lane::Work, Some("coder")),
            cand("u", Lane::Work, None),
            cand("r", Lane::Review, Some("reviewer")),
            cand("p", Lane::Review, None),
        ];
        let mut ask = Yes::default();
        let p = plan(cands, &BTreeMap::new(), &caps(8, None), &paused(true, &[]), &mut ask).unwrap();
        assert!(p.start.is_empty());
        assert_eq!(
            paused_ids(&p),
            [
                ("w", Some("coder"), PauseScope::Board),
                ("u", None, PauseScope::Board),
                ("r", Some("reviewer"), PauseScope::Board)
            ]
        );
        assert_eq!(p.paused[0].reason.as_deref(), Some("why board"));
        assert_eq!(p.awaiting_review, ["p"], "a review for a person is not a spawn; it is still listed");
        assert_eq!((ask.guarded, ask.routed), (0, 0), "no policy is asked about a paused card");
        assert_eq!(p.pending, 0, "paused cards are not waiting for a slot");
        assert!(p.skipped_board_capped.is_empty());
    }

    #[test]
    fn a_paused_profile_holds_only_its_own_cards_and_keeps_no_review_slot() {
        // The reviewer is paused: its review card is held and keeps no slot, so the work lane has the cap.
        let cands = vec![
            cand("w0", Lane::Work, Some("coder")),
            cand("r0", Lane::Review, Some("reviewer")),
            cand("w1", Lane::Work, Some("coder")),
        ];
        let mut ask = Yes::default();
        let p =
            plan(cands, &BTreeMap::new(), &caps(2, None), &paused(false, &["reviewer"]), &mut ask).unwrap();
        assert_eq!(started(&p), ["w0", "w1"]);
        assert_eq!(paused_ids(&p), [("r0", Some("reviewer"), PauseScope::Profile)]);
        assert_eq!(p.paused[0].reason.as_deref(), Some("why reviewer"));
        assert_eq!(ask.guarded, 2, "the guard is never asked about the paused card");

        // The coder is paused: a card the router gives to it is assigned, and held.
        let cands = vec![cand("w", Lane::Work, Some("coder")), cand("u", Lane::Work, None)];
        let mut ask = Yes::default();
        let p = plan(cands, &BTreeMap::new(), &caps(8, None), &paused(false, &["coder"]), &mut ask).unwrap();
        assert!(p.start.is_empty());
        assert_eq!(
            paused_ids(&p),
            [("w", Some("coder"), PauseScope::Profile), ("u", Some("coder"), PauseScope::Profile)]
        );
        assert_eq!(p.auto_assigned[0].task_id, "u");
        assert_eq!((ask.guarded, p.pending), (0, 0));

        // A pause of a profile the board no longer has holds nothing; its cards are not spawnable anyway.
        let cands = vec![cand("g", Lane::Work, Some("ghost"))];
        let p =
            plan(cands, &BTreeMap::new(), &caps(8, None), &paused(false, &["ghost"]), &mut Yes::default())
                .unwrap();
        assert_eq!(p.skipped_nonspawnable, ["g"]);
        assert!(p.paused.is_empty());
    }
}
