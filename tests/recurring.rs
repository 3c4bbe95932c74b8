//! Recurring cards (`kanban recurring`): a schedule is added, listed and removed with its JSON shape; the
//! dispatcher's tick creates one card per occurrence when it is due and not before, once however many
//! dispatchers tick; a dispatcher that was down catches up by the schedule's rule; `--skip-if-open` waits
//! for the previous card; the time zone (DST included) decides when an occurrence falls; a dry run reports
//! and writes nothing; a worker can read the schedules but not change them.

use std::process::Stdio;

use serde_json::Value;

use crate::common::*;

// 2026-01-15 00:00:00 UTC (winter: Berlin is UTC+1) and 2026-07-15 00:00:00 UTC (summer: UTC+2).
const JAN15: i64 = 1_768_435_200;
const JUL15: i64 = 1_784_073_600;
const HOUR: i64 = 3600;

const SCHEDULE_KEYS: &[&str] = &[
    "id",
    "cron",
    "tz",
    "catch_up",
    "skip_if_open",
    "next_at",
    "last_occurrence",
    "last_task_id",
    "created_at",
    "created_by",
    "card",
];

fn home_at(now: i64) -> Kanban {
    let k = Kanban::new();
    k.set_now(now);
    k.ok(&["board", "create", "default"]);
    k
}

fn add(k: &Kanban, title: &str, cron: &str, extra: &[&str]) -> Value {
    let mut args = vec!["recurring", "add", title, "--cron", cron];
    args.extend_from_slice(extra);
    args.push("--json");
    k.json(&args)
}

fn tick(k: &Kanban, extra: &[&str]) -> Value {
    let mut args = vec!["dispatch", "--json"];
    args.extend_from_slice(extra);
    k.json(&args)
}

/// `(schedule, occurrence)` of each entry of a report list.
fn occurrences(list: &Value) -> Vec<(i64, i64)> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|o| (o["schedule"].as_i64().unwrap(), o["occurrence"].as_i64().unwrap()))
        .collect()
}

fn cards(k: &Kanban) -> Vec<Value> {
    k.json(&["list", "--json"]).as_array().unwrap().clone()
}

fn cards_of(k: &Kanban, schedule: i64) -> Vec<Value> {
    let prefix = format!("recurring:{schedule}:");
    cards(k)
        .into_iter()
        .filter(|c| c["idempotency_key"].as_str().is_some_and(|key| key.starts_with(&prefix)))
        .collect()
}

#[test]
fn add_list_and_rm_round_trip_with_their_json_shapes() {
    let k = home_at(JAN15);
    let s = add(
        &k,
        "nightly report",
        "0 3 * * *",
        &[
            "--tz",
            "Europe/Berlin",
            "--catch-up",
            "all",
            "--skip-if-open",
            "--body",
            "the numbers",
            "--assignee",
            "coder",
            "--priority",
            "5",
            "--max-retries",
            "2",
        ],
    );
    assert_keys(&s, SCHEDULE_KEYS, "schedule");
    assert_eq!(s["cron"], "0 3 * * *");
    assert_eq!(s["tz"], "Europe/Berlin");
    assert_eq!(s["catch_up"], "all");
    assert_eq!(s["skip_if_open"], true);
    assert_eq!(s["next_at"], JAN15 + 2 * HOUR, "03:00 in Berlin in January is 02:00 UTC");
    assert_eq!(s["last_task_id"], Value::Null);
    assert_eq!(s["card"]["title"], "nightly report");
    assert_eq!(s["card"]["body"], "the numbers");
    assert_eq!(s["card"]["assignee"], "coder");
    assert_eq!(s["card"]["priority"], 5);
    assert_eq!(s["card"]["max_retries"], 2);

    let plain = add(&k, "hourly", "0 * * * *", &["--assignee", "none"]);
    assert_eq!(plain["card"]["assignee"], Value::Null, "`none` is no assignee, as for create");
    assert_eq!(plain["tz"], "UTC", "the zone is stored explicitly");
    assert_eq!(plain["catch_up"], "latest");
    assert_eq!(plain["skip_if_open"], false);

    let list = k.json(&["recurring", "list", "--json"]);
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(list[0], s);
    let text = k.ok(&["recurring", "list"]);
    assert!(
        text.contains("0 3 * * * Europe/Berlin") && text.contains("next 2026-01-15 02:00:00 UTC"),
        "{text}"
    );
    assert!(text.contains("hourly") && text.contains(" UTC "), "{text}");

    let id = s["id"].as_i64().unwrap().to_string();
    k.ok(&["recurring", "rm", &id]);
    let left = k.json(&["recurring", "list", "--json"]);
    assert_eq!(left.as_array().unwrap().len(), 1);
    assert_eq!(left[0]["card"]["title"], "hourly");
    // (A board kept in PostgreSQL also records its config's publication to the fleet.)
    let events: Vec<Value> = k.events().into_iter().filter(|e| e["kind"] != "config_published").collect();
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["recurring_added", "recurring_added", "recurring_removed"]);
    assert!(events.iter().all(|e| e["task_id"].is_null()), "board-level: {events:?}");
}

#[test]
fn bad_expressions_zones_and_rules_are_usage_errors_and_an_unknown_id_is_not_found() {
    let k = home_at(JAN15);
    let err = k.fails(&["recurring", "add", "x", "--cron", "0 0 3 * * *"], 2);
    assert!(err.contains("'0 0 3 * * *' is not a cron expression"), "{err}");
    let err = k.fails(&["recurring", "add", "x", "--cron", "every day"], 2);
    assert!(err.contains("'every day'"), "{err}");
    let err = k.fails(&["recurring", "add", "x", "--cron", "0 3 * * *", "--tz", "Mars/Olympus"], 2);
    assert!(err.contains("'Mars/Olympus' is not an IANA time zone"), "{err}");
    let err = k.fails(&["recurring", "add", "x", "--cron", "0 3 * * *", "--catch-up", "some"], 2);
    assert!(err.contains("some"), "{err}");
    let err = k.fails(&["recurring", "add", "  ", "--cron", "0 3 * * *"], 2);
    assert!(err.contains("title"), "the card obeys the rules of create: {err}");
    let err = k.fails(&["recurring", "add", "x", "--cron", "0 3 * * *", "--workspace", "dir"], 2);
    assert!(err.contains("default_workdir"), "the board's defaults are checked: {err}");
    let err = k.fails(&["recurring", "rm", "42"], 1);
    assert!(err.contains("recurring schedule 42 not found"), "{err}");
    assert_eq!(k.json(&["recurring", "list", "--json"]), serde_json::json!([]));
}

#[test]
fn an_occurrence_is_created_once_when_due_and_not_before() {
    let k = home_at(JAN15);
    let s = add(&k, "hourly", "0 * * * *", &["--body", "check", "--priority", "3", "--tenant", "acme"]);
    let id = s["id"].as_i64().unwrap();
    k.set_now(JAN15 + HOUR - 1);
    let early = tick(&k, &[]);
    assert_eq!(early["recurring_created"], serde_json::json!([]), "{early}");
    assert!(cards(&k).is_empty());

    k.set_now(JAN15 + HOUR);
    let due = tick(&k, &[]);
    assert_eq!(occurrences(&due["recurring_created"]), [(id, JAN15 + HOUR)], "{due}");
    let task_id = due["recurring_created"][0]["task_id"].as_str().unwrap().to_string();
    let card = k.task(&task_id);
    assert_eq!(card["title"], "hourly");
    assert_eq!(card["body"], "check");
    assert_eq!(card["priority"], 3);
    assert_eq!(card["tenant"], "acme");
    assert_eq!(card["status"], "ready");
    assert_eq!(card["idempotency_key"], format!("recurring:{id}:{}", JAN15 + HOUR));
    assert_eq!(card["created_by"], format!("recurring:{id}"));
    let kinds = k.event_kinds(&task_id);
    assert_eq!(kinds, ["created", "recurring_created"], "{kinds:?}");

    // The same instant again, and a minute later: nothing new.
    tick(&k, &[]);
    k.advance(60);
    assert_eq!(tick(&k, &[])["recurring_created"], serde_json::json!([]));
    assert_eq!(cards(&k).len(), 1);
    let listed = &k.json(&["recurring", "list", "--json"])[0];
    assert_eq!(listed["next_at"], JAN15 + 2 * HOUR);
    assert_eq!(listed["last_task_id"], task_id.as_str());
    assert_eq!(listed["last_occurrence"], JAN15 + HOUR);
}

#[test]
fn two_dispatchers_ticking_at_once_create_an_occurrence_once() {
    let k = home_at(JAN15);
    for i in 0..5 {
        add(&k, &format!("hourly {i}"), "0 * * * *", &[]);
    }
    k.set_now(JAN15 + HOUR);
    for _ in 0..3 {
        let children: Vec<_> = (0..2)
            .map(|_| {
                k.cmd(&["dispatch", "--json"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            expect_ok(&out, &"dispatch");
        }
    }
    let all = cards(&k);
    assert_eq!(all.len(), 5, "one card per schedule and occurrence: {all:?}");
}

#[test]
fn a_dispatcher_down_for_a_day_catches_up_by_each_schedules_rule() {
    let k = home_at(JAN15);
    let latest = add(&k, "latest", "0 * * * *", &[])["id"].as_i64().unwrap();
    let all = add(&k, "all", "0 * * * *", &["--catch-up", "all"])["id"].as_i64().unwrap();
    let none = add(&k, "none", "0 * * * *", &["--catch-up", "none"])["id"].as_i64().unwrap();
    // Down from 00:00 to 01:30 the next day: the occurrences of 01:00 to 01:00 (25) were missed.
    k.set_now(JAN15 + 25 * HOUR + 1800);
    let report = tick(&k, &[]);
    assert_eq!(cards_of(&k, latest).len(), 1);
    assert_eq!(
        cards_of(&k, latest)[0]["idempotency_key"],
        format!("recurring:{latest}:{}", JAN15 + 25 * HOUR)
    );
    assert_eq!(cards_of(&k, all).len(), 25);
    assert_eq!(cards_of(&k, none).len(), 0);
    let skipped = &report["recurring_skipped"];
    assert_eq!(occurrences(skipped), [(none, JAN15 + 25 * HOUR)], "{report}");
    assert_eq!(skipped[0]["skipped"], "missed");
    assert_eq!(report["recurring_created"].as_array().unwrap().len(), 26);

    // Every schedule looks ahead again: the next occurrence, on time, is created by each rule.
    k.set_now(JAN15 + 26 * HOUR + 10);
    let next = tick(&k, &[]);
    let mut created = occurrences(&next["recurring_created"]);
    created.sort();
    assert_eq!(created, [(latest, JAN15 + 26 * HOUR), (all, JAN15 + 26 * HOUR), (none, JAN15 + 26 * HOUR)]);
}

#[test]
fn skip_if_open_skips_while_the_previous_card_is_open_and_creates_after_it_is_done() {
    let k = home_at(JAN15);
    let id = add(&k, "hourly", "0 * * * *", &["--skip-if-open"])["id"].as_i64().unwrap();
    k.set_now(JAN15 + HOUR);
    let first = tick(&k, &[])["recurring_created"][0]["task_id"].as_str().unwrap().to_string();

    k.set_now(JAN15 + 2 * HOUR);
    let report = tick(&k, &[]);
    assert_eq!(report["recurring_created"], serde_json::json!([]), "{report}");
    assert_eq!(occurrences(&report["recurring_skipped"]), [(id, JAN15 + 2 * HOUR)]);
    assert_eq!(report["recurring_skipped"][0]["skipped"], format!("previous card {first} open"));
    let skip_event = k
        .events()
        .iter()
        .find(|e| e["kind"] == "recurring_skipped")
        .cloned()
        .expect("a recurring_skipped event");
    assert_eq!(skip_event["payload"]["occurrence"], JAN15 + 2 * HOUR);
    assert_eq!(k.json(&["recurring", "list", "--json"])[0]["next_at"], JAN15 + 3 * HOUR, "advanced");

    k.ok(&["complete", &first]);
    k.set_now(JAN15 + 3 * HOUR);
    let report = tick(&k, &[]);
    assert_eq!(occurrences(&report["recurring_created"]), [(id, JAN15 + 3 * HOUR)], "{report}");
    assert_eq!(cards_of(&k, id).len(), 2);
}

#[test]
fn the_time_zone_decides_when_an_occurrence_falls_daylight_saving_time_included() {
    // 03:00 in Berlin is 02:00 UTC in winter and 01:00 UTC in summer.
    for (day, utc_hour) in [(JAN15, 2), (JUL15, 1)] {
        let k = home_at(day);
        let s = add(&k, "nightly", "0 3 * * *", &["--tz", "Europe/Berlin"]);
        assert_eq!(s["next_at"], day + utc_hour * HOUR);
        k.set_now(day + utc_hour * HOUR - 1);
        assert_eq!(tick(&k, &[])["recurring_created"], serde_json::json!([]));
        k.set_now(day + utc_hour * HOUR);
        let report = tick(&k, &[]);
        assert_eq!(
            occurrences(&report["recurring_created"]),
            [(s["id"].as_i64().unwrap(), day + utc_hour * HOUR)]
        );
    }
}

#[test]
fn a_dry_run_reports_the_due_occurrences_and_creates_nothing() {
    let k = home_at(JAN15);
    let id = add(&k, "hourly", "0 * * * *", &[])["id"].as_i64().unwrap();
    k.set_now(JAN15 + HOUR);
    let dry = tick(&k, &["--dry-run"]);
    assert_eq!(occurrences(&dry["recurring_due"]), [(id, JAN15 + HOUR)], "{dry}");
    assert_eq!(dry["recurring_due"][0].get("task_id"), None);
    assert_eq!(dry["recurring_created"], serde_json::json!([]));
    assert!(cards(&k).is_empty(), "nothing created");
    assert_eq!(k.json(&["recurring", "list", "--json"])[0]["next_at"], JAN15 + HOUR, "nothing advanced");
    let text = k.ok(&["dispatch", "--dry-run"]);
    assert!(text.contains(&format!("recurring {id}: would create a card for 2026-01-15 01:00:00")), "{text}");

    let real = tick(&k, &[]);
    assert_eq!(occurrences(&real["recurring_created"]), [(id, JAN15 + HOUR)]);
    assert_eq!(real["recurring_due"], serde_json::json!([]));
}

#[test]
fn a_worker_can_list_schedules_but_not_add_or_remove_them() {
    let k = home_at(JAN15);
    let id = add(&k, "hourly", "0 * * * *", &[])["id"].as_i64().unwrap().to_string();
    let card = k.create("mine", &[]);
    let add_args = ["recurring", "add", "sneaky", "--cron", "* * * * *"];
    let out = k.cmd(&add_args).env("KANBAN_TASK", &card).output().unwrap();
    let err = expect_fail(&out, &add_args, 1);
    assert!(err.contains("`kanban recurring add` is not allowed inside a worker"), "{err}");
    let rm_args = ["recurring", "rm", id.as_str()];
    let out = k.cmd(&rm_args).env("KANBAN_TASK", &card).output().unwrap();
    let err = expect_fail(&out, &rm_args, 1);
    assert!(err.contains("`kanban recurring rm` is not allowed inside a worker"), "{err}");
    let out = k.cmd(&["recurring", "list", "--json"]).env("KANBAN_TASK", &card).output().unwrap();
    let list = parse_json(&expect_ok(&out, &"list"), &"list");
    assert_eq!(list.as_array().unwrap().len(), 1, "unchanged, and readable: {list}");
}
