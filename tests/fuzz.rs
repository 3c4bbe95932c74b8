//! Property-based fuzzing (proptest) of what the host parses and validates: board.toml, durations, CLI
//! arguments and plugin results. Each property checks a model of the rule, not only "no panic".
//!
//! Case counts are proptest's defaults (256) for in-process properties and 48 for the ones that run the
//! binary. For a long run: `PROPTEST_CASES=20000 cargo test --release --test fuzz`. A failure prints the
//! shrunk input; bugs found this way are kept below as plain regression tests.

mod common;

use std::path::{Path, PathBuf};

use clap::{CommandFactory, Parser};
use common::Kanban;
use kanban::board::config::{BoardConfig, BoardSection, GoalConfig, ReviewConfig};
use kanban::board::{DispatchConfig, NotifySpec, PolicyKind, PolicySpec, Profile};
use kanban::cli::Cli;
use kanban::clock::MAX_DURATION_SECONDS;
use kanban::ops::input::{parse_duration, parse_workspace};
use kanban::policy::{MAX_ITEMS, MAX_TEXT, PolicyError, RawChild as ChildSpec, check_children, check_route};
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------------------
// board.toml

/// Integers around every boundary the validator has, plus anything at all.
fn int() -> impl Strategy<Value = i64> {
    prop_oneof![
        60 => 1i64..=100_000,
        1 => -3i64..=3,
        1 => Just(MAX_DURATION_SECONDS),
        1 => Just(MAX_DURATION_SECONDS + 1),
        1 => Just(i64::MAX),
        1 => Just(i64::MIN),
        1 => any::<i64>(),
    ]
}

fn small_u32() -> impl Strategy<Value = u32> {
    prop_oneof![1 => 0u32..=3, 6 => 1u32..=64, 1 => any::<u32>()]
}

fn slugish() -> impl Strategy<Value = String> {
    prop_oneof![
        30 => "[a-z0-9][a-z0-9_-]{0,12}",
        1 => Just("Bad Name".to_string()),
        1 => Just("-lead".to_string()),
        1 => Just(String::new()),
        1 => "\\PC{1,6}",
    ]
}

fn path() -> impl Strategy<Value = PathBuf> {
    prop_oneof![4 => "(/[a-z]{1,6}){1,3}", 1 => "[a-z]{1,6}(/[a-z]{1,6}){0,2}"].prop_map(PathBuf::from)
}

fn command() -> impl Strategy<Value = Vec<String>> {
    prop_oneof![
        1 => Just(vec![]),
        1 => Just(vec![" ".to_string()]),
        16 => prop::collection::vec("[a-z/.]{1,10}|\\PC{0,6}", 1..4),
    ]
}

fn profile() -> impl Strategy<Value = Profile> {
    (command(), prop::collection::btree_map("[A-Z_]{1,6}", "\\PC{0,8}", 0..3), prop::option::of(small_u32()))
        .prop_map(|(command, env, max_in_progress)| Profile {
            command,
            env,
            max_in_progress,
            requires: vec![],
        })
}

fn plugin_ref() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just("builtin:respawn-guard".to_string()),
        3 => Just("builtin:default-assignee".to_string()),
        1 => Just("builtin:no-such-thing".to_string()),
        2 => "sha256:[0-9a-f]{64}",
        1 => "sha256:[0-9a-fA-F]{60,66}",
        2 => slugish(),
    ]
}

fn policy() -> impl Strategy<Value = PolicySpec> {
    let kind = prop_oneof![
        Just(PolicyKind::RespawnGuard),
        Just(PolicyKind::Diagnostics),
        Just(PolicyKind::Routing),
        Just(PolicyKind::Decompose),
    ];
    let on_error = prop_oneof![8 => Just(None), 1 => Just(Some("allow")), 1 => Just(Some("defer")), 1 => Just(Some("maybe"))];
    let fuel = prop_oneof![6 => Just(None), 1 => Just(Some(0u64)), 6 => (1u64..=1_000_000_000).prop_map(Some), 1 => Just(Some(i64::MAX as u64))];
    let memory = prop_oneof![6 => Just(None), 1 => Just(Some(0u32)), 6 => (1u32..=4096).prop_map(Some), 1 => (4097u32..=100_000).prop_map(Some)];
    (kind, plugin_ref(), fuel, memory, on_error, any::<bool>()).prop_map(
        |(kind, plugin, fuel, memory_mib, on_error, with_config)| {
            let mut config = toml::Table::new();
            if with_config {
                config.insert("assignee".into(), toml::Value::String("coder".into()));
            }
            PolicySpec { kind, plugin, config, fuel, memory_mib, on_error: on_error.map(str::to_string) }
        },
    )
}

fn notify() -> impl Strategy<Value = NotifySpec> {
    let kind =
        prop_oneof![4 => Just("gave_up"), 2 => Just("blocked"), 1 => Just("completed"), 1 => Just("nope")];
    let url = prop_oneof![3 => Just("https://hooks.example/k"), 1 => Just("http://127.0.0.1:9/"), 1 => Just("ftp://x")];
    let target = prop_oneof![
        3 => url.prop_map(|u| (Some(u.to_string()), None)),
        2 => command().prop_map(|c| (None, Some(c))),
        1 => Just((None, None)),
        1 => command().prop_map(|c| (Some("https://hooks.example/k".to_string()), Some(c))),
    ];
    (prop::collection::vec(kind, 0..3), target, -1i64..302, -1i64..102).prop_map(
        |(on, (webhook, command), timeout_seconds, max_attempts)| NotifySpec {
            on: on.into_iter().map(str::to_string).collect(),
            webhook,
            command,
            timeout_seconds,
            max_attempts,
        },
    )
}

fn board_config() -> impl Strategy<Value = BoardConfig> {
    let limits = (int(), int(), int());
    let dispatch = (int(), small_u32(), prop::option::of(small_u32()), int(), int(), int(), int(), limits)
        .prop_map(
            |(failure_limit, max_in_progress, per_profile, ttl, grace, stale_hb, stale, (pv, srl, kill))| {
                DispatchConfig {
                    failure_limit,
                    max_in_progress,
                    max_in_progress_per_profile: per_profile,
                    claim_ttl_seconds: ttl,
                    crash_grace_seconds: grace,
                    heartbeat_stale_seconds: stale_hb,
                    stale_timeout_seconds: stale,
                    protocol_violation_limit: pv,
                    stale_reclaim_limit: srl,
                    kill_grace_seconds: kill,
                }
            },
        );
    let goal =
        (prop::option::of(command()), int(), int()).prop_map(|(judge, max_turns, judge_timeout_seconds)| {
            GoalConfig { judge, max_turns, judge_timeout_seconds }
        });
    let review = prop::option::of(slugish()).prop_map(|reviewer| ReviewConfig { reviewer });
    (
        prop::option::of("\\PC{0,16}"),
        prop::option::of(path()),
        dispatch,
        prop::collection::btree_map(slugish(), profile(), 0..3),
        goal,
        prop::collection::vec(policy(), 0..3),
        review,
        prop::collection::vec(notify(), 0..2),
    )
        .prop_map(|(name, default_workdir, dispatch, profiles, goal, policies, review, notify)| {
            BoardConfig {
                board: BoardSection { name, default_workdir },
                dispatch,
                profiles,
                goal,
                policies,
                review,
                notify,
            }
        })
}

fn is_slug(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'_')
}

/// The model: every key of `c` that breaks a documented rule (docs/board-toml.md).
fn faults(c: &BoardConfig) -> Vec<String> {
    let mut bad = Vec::new();
    let d = &c.dispatch;
    if c.board.default_workdir.as_ref().is_some_and(|p| !p.is_absolute()) {
        bad.push("board.default_workdir".to_string());
    }
    for (key, v, min) in [
        ("dispatch.failure_limit", d.failure_limit, 1),
        ("dispatch.max_in_progress", i64::from(d.max_in_progress), 1),
        ("dispatch.claim_ttl_seconds", d.claim_ttl_seconds, 1),
        ("dispatch.heartbeat_stale_seconds", d.heartbeat_stale_seconds, 1),
        ("dispatch.protocol_violation_limit", d.protocol_violation_limit, 1),
        ("dispatch.stale_reclaim_limit", d.stale_reclaim_limit, 1),
        ("goal.max_turns", c.goal.max_turns, 1),
        ("goal.judge_timeout_seconds", c.goal.judge_timeout_seconds, 1),
        ("dispatch.crash_grace_seconds", d.crash_grace_seconds, 0),
        ("dispatch.stale_timeout_seconds", d.stale_timeout_seconds, 0),
        ("dispatch.kill_grace_seconds", d.kill_grace_seconds, 0),
    ] {
        let is_duration = key.ends_with("_seconds");
        if v < min || (is_duration && v > MAX_DURATION_SECONDS) {
            bad.push(key.to_string());
        }
    }
    if d.max_in_progress_per_profile == Some(0) {
        bad.push("dispatch.max_in_progress_per_profile".into());
    }
    for (name, p) in &c.profiles {
        if !is_slug(name) {
            bad.push(format!("profiles.{name}"));
        } else if p.command.first().is_none_or(|c| c.trim().is_empty()) {
            bad.push(format!("profiles.{name}.command"));
        } else if p.max_in_progress == Some(0) {
            bad.push(format!("profiles.{name}.max_in_progress"));
        }
    }
    if c.goal.judge.as_ref().is_some_and(|j| j.first().is_none_or(|c| c.trim().is_empty())) {
        bad.push("goal.judge".into());
    }
    if c.review.reviewer.as_ref().is_some_and(|r| !is_slug(r)) {
        bad.push("review.reviewer".into());
    }
    for (i, p) in c.policies.iter().enumerate() {
        let plugin_ok = match p.plugin.split_once(':') {
            Some(("sha256", hex)) => {
                hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            }
            Some(("builtin", name)) => {
                ["respawn-guard", "diagnostics", "default-assignee", "checklist-decompose"].contains(&name)
            }
            _ => is_slug(&p.plugin),
        };
        if !plugin_ok {
            bad.push(format!("policies[{i}].plugin"));
        }
        if p.fuel == Some(0) {
            bad.push(format!("policies[{i}].fuel"));
        }
        if p.memory_mib.is_some_and(|m| !(1..=4096).contains(&m)) {
            bad.push(format!("policies[{i}].memory_mib"));
        }
        let on_error_ok = match (p.on_error.as_deref(), p.kind) {
            (None, _) => true,
            (Some(v), PolicyKind::RespawnGuard) => v == "allow" || v == "defer",
            (Some(_), _) => false,
        };
        if !on_error_ok {
            bad.push(format!("policies[{i}].on_error"));
        }
    }
    for (i, n) in c.notify.iter().enumerate() {
        if n.on.is_empty() || n.on.iter().any(|k| k == "nope") {
            bad.push(format!("notify[{i}].on"));
        }
        match (&n.webhook, &n.command) {
            (Some(url), None) if !(url.starts_with("http://") || url.starts_with("https://")) => {
                bad.push(format!("notify[{i}].webhook"))
            }
            (None, Some(cmd)) if cmd.is_empty() || cmd[0].trim().is_empty() => {
                bad.push(format!("notify[{i}].command"))
            }
            (Some(_), None) | (None, Some(_)) => {}
            _ => bad.push(format!("notify[{i}]")),
        }
        if !(1..=300).contains(&n.timeout_seconds) {
            bad.push(format!("notify[{i}].timeout_seconds"));
        }
        if !(1..=100).contains(&n.max_attempts) {
            bad.push(format!("notify[{i}].max_attempts"));
        }
    }
    bad
}

proptest! {
    /// A config written out as TOML parses back to itself exactly when the model says it is valid; when it
    /// is not, the error names the file and one of the keys at fault.
    #[test]
    fn board_toml_round_trips_or_names_the_key(config in board_config()) {
        let text = toml::to_string(&config).expect("serialize");
        let file = Path::new("/boards/fuzz/board.toml");
        let bad = faults(&config);
        match BoardConfig::parse(&text, file) {
            Ok(parsed) => {
                if std::env::var("FUZZ_COUNT").is_ok() { eprintln!("VALID"); }

                prop_assert!(bad.is_empty(), "accepted a config with faults {bad:?}:\n{text}");
                prop_assert_eq!(parsed, config);
            }
            Err(e) => {
                let message = e.to_string();
                prop_assert!(!bad.is_empty(), "refused a valid config: {message}\n{text}");
                prop_assert!(message.starts_with("/boards/fuzz/board.toml: "), "{message}");
                prop_assert!(bad.iter().any(|key| message.contains(key.as_str())), "{message} names none of {bad:?}");
            }
        }
    }

    /// Any text at all: parsed or refused with the file named, never a panic.
    #[test]
    fn board_toml_parsing_never_panics(text in "\\PC{0,200}") {
        if let Err(e) = BoardConfig::parse(&text, Path::new("/b/board.toml")) {
            prop_assert!(e.to_string().starts_with("/b/board.toml: "));
        }
    }

    /// Real keys with values of the wrong type, misspellings and stray tables: the error names the key.
    #[test]
    fn board_toml_type_errors_name_the_key(
        key in prop::sample::select(vec![
            "failure_limit", "max_in_progress", "max_in_progress_per_profile", "claim_ttl_seconds",
            "crash_grace_seconds", "heartbeat_stale_seconds", "stale_timeout_seconds", "protocol_violation_limit",
        ]),
        value in prop::sample::select(vec!["\"ten\"", "1.5", "true", "[1]", "{ a = 1 }", "-99999999999999999999"]),
    ) {
        let text = format!("[dispatch]\n{key} = {value}\n");
        let err = BoardConfig::parse(&text, Path::new("/b/board.toml")).expect_err("a wrong type is refused");
        let message = err.to_string();
        prop_assert!(message.contains(key), "{message}");
    }

    /// The template for a new board always parses, whatever the board's name and default workdir.
    #[test]
    fn the_board_template_always_parses(name in "\\PC{0,30}", dir in prop::option::of("(/[^/\\x00]{1,8}){1,3}")) {
        let text = kanban::board::config::template(&name, dir.as_deref().map(Path::new));
        let parsed = BoardConfig::parse(&text, Path::new("/b/board.toml"));
        prop_assert!(parsed.is_ok(), "{parsed:?}\n{text}");
        prop_assert_eq!(parsed.unwrap().board.default_workdir, dir.map(PathBuf::from));
    }
}

/// Found while modelling the duration keys for the property above: any positive `claim_ttl_seconds` was
/// accepted, and the tick computes `now + claim_ttl_seconds`. Near `i64::MAX` that overflowed: the
/// dispatcher panicked in a debug build, and in a release build the claim wrapped into the past and expired
/// at once. Durations are now capped at 100 years.
#[test]
fn regression_a_claim_ttl_near_i64_max_is_refused_not_overflowed() {
    let err = BoardConfig::parse(
        "[dispatch]\nclaim_ttl_seconds = 9223372036854775807\n",
        Path::new("/b/board.toml"),
    )
    .expect_err("refused");
    assert!(err.to_string().contains("dispatch.claim_ttl_seconds: must be at most"), "{err}");

    let k = Kanban::new();
    k.create("x", &[]);
    std::fs::write(
        k.toml_path("default"),
        "[dispatch]\nclaim_ttl_seconds = 9223372036854775807\n\n[profiles.p]\ncommand = [\"true\"]\n",
    )
    .unwrap();
    let err = k.fails(&["dispatch"], 2);
    assert!(err.contains("dispatch.claim_ttl_seconds"), "{err}");
}

/// Same class: `--max-runtime 99999999999d` was accepted (it fits in an i64 as seconds) and a stray
/// `KANBAN_NOW` near `i64::MAX` was used as the clock, so `now + ttl` could overflow from either side.
#[test]
fn regression_huge_flag_durations_and_clock_values_are_refused() {
    assert!(parse_duration("99999999999d").unwrap_err().contains("too long"));
    let k = Kanban::new();
    let err = k.fails(&["create", "x", "--max-runtime", "99999999999d"], 2);
    assert!(err.contains("too long"), "{err}");
    let out = k.cmd(&["create", "y", "--json"]).env("KANBAN_NOW", i64::MAX.to_string()).output().unwrap();
    let created = common::parse_json(&common::expect_ok(&out, &"create"), &"create");
    assert!(created["created_at"].as_i64().unwrap() < kanban::clock::MAX_NOW, "{created}");
}

// ---------------------------------------------------------------------------------------------------------
// Durations and workspaces

const UNITS: [(&str, i64); 5] = [("", 1), ("s", 1), ("m", 60), ("h", 3600), ("d", 86_400)];

proptest! {
    #[test]
    fn parse_duration_never_panics_and_stays_in_range(text in "\\PC{0,24}") {
        if let Ok(secs) = parse_duration(&text) {
            prop_assert!((1..=MAX_DURATION_SECONDS).contains(&secs), "{text:?} -> {secs}");
        }
    }

    /// `N` with a unit is N times the unit's seconds, when that is within 100 years; otherwise an error.
    #[test]
    fn parse_duration_is_n_times_the_unit(
        n in prop_oneof![1i64..=1000, 1i64..=10_000_000_000, any::<i64>().prop_map(i64::unsigned_abs).prop_map(|n| n as i64).prop_filter("positive", |n| *n > 0)],
        unit in 0usize..5,
        pad in prop::sample::select(vec!["", " ", "\t"]),
    ) {
        let (suffix, scale) = UNITS[unit];
        let text = format!("{pad}{n}{suffix}{pad}");
        match n.checked_mul(scale).filter(|s| *s <= MAX_DURATION_SECONDS) {
            Some(secs) => prop_assert_eq!(parse_duration(&text), Ok(secs)),
            None => prop_assert!(parse_duration(&text).is_err(), "{text:?} should be too long"),
        }
    }

    #[test]
    fn parse_duration_refuses_zero_signs_and_garbage(
        text in prop_oneof![Just("0".to_string()), "0+[smhd]?", "[-+][0-9]{1,4}[smhd]?", "[0-9]{1,3}[a-ce-gi-ln-rt-z]", "[0-9]{1,3}(ms|hh|sx)", "[smhd]"],
    ) {
        prop_assert!(parse_duration(&text).is_err(), "{text:?} was accepted");
    }

    #[test]
    fn parse_workspace_accepts_only_the_documented_forms(text in prop_oneof!["\\PC{0,20}", "(scratch|dir|worktree)(:\\PC{0,10})?"]) {
        let valid = match text.split_once(':') {
            None => ["scratch", "dir", "worktree"].contains(&text.as_str()),
            Some((kind, path)) => (kind == "dir" || kind == "worktree") && path.starts_with('/'),
        };
        match parse_workspace(&text) {
            Ok(spec) => {
                prop_assert!(valid, "{text:?} accepted as {spec:?}");
                prop_assert!(spec.path.as_ref().is_none_or(|p| p.is_absolute()));
                prop_assert_eq!(Some(spec.kind.as_str()), text.split(':').next());
            }
            Err(_) => prop_assert!(!valid, "{text:?} refused"),
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Plugin results

fn raw_child() -> impl Strategy<Value = ChildSpec> {
    let title = prop_oneof![
        4 => "\\PC{1,20}",
        1 => Just("   ".to_string()),
        1 => Just(String::new()),
        1 => Just("t".repeat(MAX_TEXT + 1)),
    ];
    let text = prop_oneof![4 => "\\PC{0,20}", 1 => Just("b".repeat(MAX_TEXT + 1))];
    let assignee = prop::option::of(prop_oneof![
        "[a-z]{1,8}",
        Just("  ".to_string()),
        Just(" coder ".to_string()),
        Just("a".repeat(MAX_TEXT + 1)),
    ]);
    let workspace = prop::option::of((
        prop_oneof![Just("scratch"), Just("dir"), Just("worktree"), Just("elsewhere"), Just("")]
            .prop_map(String::from),
        prop::option::of(prop_oneof!["(/[a-z]{1,6}){1,3}", "[a-z]{1,6}"]),
    ));
    (title, text, assignee, any::<i64>(), workspace, prop::collection::vec(0usize..8, 0..4)).prop_map(
        |(title, body, assignee, priority, workspace, depends_on)| ChildSpec {
            title,
            body,
            assignee,
            priority,
            workspace,
            depends_on,
        },
    )
}

/// The model of a decomposition plan's rules (docs/plugins.md).
fn plan_is_valid(children: &[ChildSpec]) -> bool {
    (1..=MAX_ITEMS).contains(&children.len())
        && children.iter().enumerate().all(|(i, c)| {
            !c.title.trim().is_empty()
                && c.title.len() <= MAX_TEXT
                && c.body.len() <= MAX_TEXT
                && c.assignee.as_ref().is_none_or(|a| a.len() <= MAX_TEXT)
                && c.depends_on.iter().all(|d| *d < i)
                && c.workspace.as_ref().is_none_or(|(kind, path)| {
                    ["scratch", "dir", "worktree"].contains(&kind.as_str())
                        && path.as_ref().is_none_or(|p| p.starts_with('/'))
                })
        })
}

proptest! {
    /// Whatever a decomposition plugin returns is accepted exactly when it follows the rules, and what is
    /// accepted is normalised: trimmed titles, no blank assignee, dependencies on earlier siblings only.
    #[test]
    fn decomposition_plans_are_checked_against_the_rules(children in prop::collection::vec(raw_child(), 0..6)) {
        let valid = plan_is_valid(&children);
        match check_children(children.clone()) {
            Ok(checked) => {
                prop_assert!(valid, "accepted an invalid plan: {children:?}");
                prop_assert_eq!(checked.len(), children.len());
                for (i, c) in checked.iter().enumerate() {
                    prop_assert_eq!(c.title.as_str(), children[i].title.trim());
                    prop_assert!(c.assignee.as_ref().is_none_or(|a| !a.is_empty() && a.trim() == a));
                    prop_assert!(c.depends_on.iter().all(|d| *d < i));
                    prop_assert_eq!(c.priority, children[i].priority);
                }
            }
            Err(PolicyError::BadOutput { .. }) => prop_assert!(!valid, "refused a valid plan: {children:?}"),
            Err(other) => prop_assert!(false, "a plan check can only say bad_output, said {other:?}"),
        }
    }

    /// More children than the cap is bad output, however good each child is.
    #[test]
    fn too_many_children_are_refused(extra in 1usize..50) {
        let child = ChildSpec { title: "x".into(), ..ChildSpec::default() };
        prop_assert!(check_children(vec![child; MAX_ITEMS + extra]).is_err());
    }

    #[test]
    fn a_router_answer_is_trimmed_and_capped(answer in prop::option::of(prop_oneof!["\\PC{0,20}", "[ \t]{0,3}[a-z]{1,8}[ \t]{0,3}", Just("r".repeat(MAX_TEXT + 1))])) {
        match check_route(answer.clone()) {
            Ok(Some(name)) => {
                prop_assert_eq!(Some(name.as_str()), answer.as_deref().map(str::trim));
                prop_assert!(!name.is_empty() && name.len() <= MAX_TEXT);
            }
            Ok(None) => prop_assert!(answer.as_ref().is_none_or(|a| a.trim().is_empty())),
            Err(_) => prop_assert!(answer.is_some_and(|a| a.len() > MAX_TEXT)),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Every plan the check accepts can be applied: the store relies on dependencies pointing at earlier
    /// siblings, and a plan it accepts must never fail (or panic) half-way in the store.
    #[test]
    fn every_accepted_plan_applies_in_one_transaction(children in prop::collection::vec(raw_child(), 1..6)) {
        let Ok(checked) = check_children(children) else { return Ok(()) };
        let dir = tempfile::tempdir().unwrap();
        let home = kanban::board::Home::resolve(Some(dir.path().to_path_buf())).unwrap();
        let board = home.create_board("fuzz", None, None).unwrap();
        let mut store = board.open_store().unwrap();
        let root = kanban::store::NewTask {
            title: "root".into(),
            triage: true,
            workspace_kind: Some(kanban::model::WorkspaceKind::Dir),
            workspace_path: Some("/srv/root".into()),
            ..kanban::store::NewTask::default()
        };
        let (root, _) = store.create_task(&root, 1_800_000_000).unwrap();
        let ids = store.apply_decomposition(&root.id, &checked, "fuzz", 1_800_000_000);
        prop_assert!(ids.is_ok(), "{ids:?} for {checked:?}");
        let ids = ids.unwrap();
        prop_assert_eq!(ids.len(), checked.len());
        let conn = rusqlite::Connection::open(board.db_path()).unwrap();
        let links: i64 = conn.query_row("SELECT count(*) FROM task_links", [], |r| r.get(0)).unwrap();
        let mut expected: Vec<(usize, usize)> =
            checked.iter().enumerate().flat_map(|(i, c)| c.depends_on.iter().map(move |d| (*d, i))).collect();
        expected.sort();
        expected.dedup();
        prop_assert_eq!(links as usize, expected.len() + checked.len());
    }
}

// ---------------------------------------------------------------------------------------------------------
// CLI arguments

const SUBCOMMANDS: &[&[&str]] = &[
    &["create"],
    &["list"],
    &["show"],
    &["assign"],
    &["comment"],
    &["link"],
    &["unlink"],
    &["edit"],
    &["block"],
    &["unblock"],
    &["schedule"],
    &["promote"],
    &["complete"],
    &["archive"],
    &["reclaim"],
    &["review"],
    &["request-changes"],
    &["reassign"],
    &["attach"],
    &["attachments"],
    &["attach-rm"],
    &["events"],
    &["runs"],
    &["stats"],
    &["heartbeat"],
    &["log"],
    &["context"],
    &["dispatch"],
    &["diagnostics"],
    &["decompose"],
    &["gc"],
    &["pause"],
    &["resume"],
    &["board", "create"],
    &["board", "list"],
    &["board", "show"],
    &["board", "switch"],
    &["board", "rm"],
    &["board", "set-default-workdir"],
    &["board", "check"],
    &["plugin", "list"],
    &["plugin", "show"],
    &["plugin", "rm"],
    &["plugin", "verify"],
    &["plugin", "install"],
    &["help"],
];

/// Flags and values from the real CLI. `--follow` (blocks forever), `--home` (would leave the temporary
/// home), `daemon`, `demo` and the hidden `supervise` are left out: the property runs each command to its end.
const TOKENS: &[&str] = &[
    "--json",
    "--assignee",
    "--priority",
    "--body",
    "--parent",
    "--triage",
    "--initial-status",
    "--tenant",
    "--idempotency-key",
    "--max-runtime",
    "--max-retries",
    "--workspace",
    "--status",
    "--archived",
    "--reason",
    "--kind",
    "--result",
    "--summary",
    "--note",
    "--attempt",
    "--rm",
    "--task",
    "--severity",
    "--all",
    "--dry-run",
    "--older-than",
    "--profile",
    "--wait",
    "--name",
    "--title",
    "--author",
    "--delete",
    "--default-workdir",
    "--board",
    "--limit",
    "--help",
    "-h",
    "--version",
    "CARD",
    "CARD2",
    "coder",
    "none",
    "x",
    "",
    "0",
    "-1",
    "7",
    "99999999999999999999",
    "1d",
    "30s",
    "transient",
    "needs-input",
    "running",
    "blocked",
    "ready",
    "scratch",
    "dir:/srv/x",
    "worktree",
    "dir:relative",
    "default",
    "fuzz-board",
    "Bad Board",
    "/etc/hostname",
    "/nonexistent/file",
    "warning",
    "critical",
    "builtin:respawn-guard",
    "\u{1F600}",
    "t_00000000",
];

fn argv() -> impl Strategy<Value = Vec<String>> {
    (prop::sample::select(SUBCOMMANDS), prop::collection::vec(prop::sample::select(TOKENS), 0..5))
        .prop_map(|(sub, rest)| sub.iter().chain(rest.iter()).map(|s| s.to_string()).collect())
}

#[test]
fn the_clap_definition_is_consistent() {
    Cli::command().debug_assert();
}

proptest! {
    /// In process: any argument vector, from the real vocabulary or not, parses or is refused; never a panic.
    #[test]
    fn cli_parsing_never_panics(args in argv(), junk in prop::collection::vec("\\PC{0,8}", 0..3)) {
        let mut full = vec!["kanban".to_string()];
        full.extend(args);
        full.extend(junk);
        let _ = Cli::try_parse_from(&full);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// The real binary on a board with two cards: exit 0, 1 or 2 only, never a panic or a signal; every
    /// failure says `kanban: ` first; `--json` output on success is JSON (one document or JSON lines).
    #[test]
    fn the_binary_answers_any_argument_vector_with_a_contract_exit(args in argv()) {
        let k = Kanban::new();
        let a = k.create("first", &["--assignee", "coder"]);
        let b = k.create("second", &[]);
        let args: Vec<String> = args
            .into_iter()
            .map(|t| match t.as_str() { "CARD" => a.clone(), "CARD2" => b.clone(), _ => t })
            .collect();
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = k.run(&argv);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        prop_assert!(!stderr.contains("panicked at"), "{argv:?} panicked: {stderr}");
        let code = out.status.code();
        prop_assert!(matches!(code, Some(0..=2)), "{argv:?} exited {:?}: {stderr}", out.status);
        if code != Some(0) {
            prop_assert!(stderr.starts_with("kanban: "), "{argv:?}: {stderr}");
        }
        let help = argv.iter().any(|a| ["--help", "-h", "--version", "help"].contains(a));
        if code == Some(0) && argv.contains(&"--json") && !help && !stdout.trim().is_empty() {
            let one = serde_json::from_str::<serde_json::Value>(&stdout).is_ok();
            let lines = stdout.lines().filter(|l| !l.trim().is_empty()).all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok());
            prop_assert!(one || lines, "{argv:?} printed non-JSON: {stdout}");
        }
    }
}
