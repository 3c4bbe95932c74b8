//! A host's place among the hosts working a board: its labels and capacity (`[host]` in
//! `<home>/config.toml`), profiles that `requires` labels, and `kanban hosts`.

use serde_json::Value;

use crate::common::*;

/// `<home>/config.toml`.
fn write_home_config(k: &Kanban, text: &str) {
    std::fs::write(k.home().join("config.toml"), text).expect("write config.toml");
}

fn ids_of(report: &Value, key: &str) -> Vec<String> {
    report[key].as_array().unwrap_or_else(|| panic!("{key} in {report}")).iter().map(id_arg).collect()
}

fn spawned(report: &Value) -> Vec<String> {
    report["spawned"].as_array().unwrap().iter().map(|s| s["task_id"].as_str().unwrap().to_string()).collect()
}

#[test]
fn a_profile_that_requires_labels_runs_only_on_a_host_that_has_them() {
    let f = Fleet::new();
    let k = &f.k;
    let sleeper = f.script("sleep.sh", "sleep 30");
    f.write_board(&format!(
        "{}requires = [\"gpu\", \"linux\"]\n\n{}",
        f.profile("trainer", &sleeper, &[]),
        f.profile("coder", &sleeper, &[])
    ));
    let train = k.create("train the model", &["--assignee", "trainer", "--priority", "9"]);
    let code = k.create("write the code", &["--assignee", "coder"]);

    // A host without labels leaves the trainer's card to others, and says which labels it lacks.
    write_home_config(k, "[host]\nlabels = [\"linux\"]\n");
    let report = f.dispatch(&[]);
    assert_eq!(spawned(&report), vec![code.clone()], "{report}");
    assert_eq!(report["skipped_unfit"][0]["task_id"], train.as_str(), "{report}");
    assert_eq!(report["skipped_unfit"][0]["assignee"], "trainer");
    assert_eq!(report["skipped_unfit"][0]["missing"], serde_json::json!(["gpu"]));
    assert_eq!(report["pending"], 0, "a card for another host does not wait here: {report}");
    assert_eq!(k.status(&train), "ready");
    let text = k.ok(&["dispatch", "--dry-run"]);
    assert!(text.contains(&format!("left to another host {train}: profile trainer requires gpu")), "{text}");

    // The same host, given the label, runs it.
    write_home_config(k, "[host]\nlabels = [\"gpu\", \"linux\", \"gpu\"]\n");
    let report = f.dispatch(&[]);
    assert_eq!(spawned(&report), vec![train.clone()], "{report}");
    assert_eq!(k.status(&train), "running");

    let hosts = k.json(&["hosts", "--json"]);
    let host = &hosts[0];
    assert_eq!(hosts.as_array().unwrap().len(), 1, "{hosts}");
    assert_eq!(host["id"], std::fs::read_to_string(k.home().join("host-id")).unwrap().trim());
    assert_eq!(host["labels"], serde_json::json!(["gpu", "linux"]), "sorted, once each: {host}");
    assert_eq!((host["running"].as_u64(), host["max_workers"].is_null()), (Some(2), true), "{host}");
    assert_keys(
        host,
        &["id", "hostname", "pid", "started_at", "last_seen", "running", "max_workers", "labels"],
        "host",
    );
    let text = k.ok(&["hosts"]);
    assert!(text.contains("running 2  labels gpu,linux  (this host)"), "{text}");
}

#[test]
fn a_host_never_runs_more_than_its_max_workers_over_all_its_boards() {
    let f = Fleet::new();
    let k = &f.k;
    let sleeper = f.script("sleep.sh", "sleep 30");
    let profile = f.profile("coder", &sleeper, &[]);
    f.write_board(&profile);
    k.ok(&["board", "create", "other"]);
    std::fs::write(k.toml_path("other"), &profile).unwrap();
    write_home_config(k, "[host]\nmax_workers = 3\n");
    let here: Vec<String> =
        (0..2).map(|i| k.create(&format!("here {i}"), &["--assignee", "coder"])).collect();
    let there: Vec<String> = (0..3)
        .map(|i| k.create(&format!("there {i}"), &["--board", "other", "--assignee", "coder"]))
        .collect();

    let report = f.dispatch(&[]);
    assert_eq!(spawned(&report), here, "{report}");
    // The other board's dispatch counts the two workers of this one.
    let report = k.json(&["--board", "other", "dispatch", "--json"]);
    assert_eq!(spawned(&report), [there[0].clone()], "{report}");
    assert_eq!(ids_of(&report, "skipped_host_capped"), there[1..].to_vec(), "{report}");
    assert_eq!(report["pending"], 2, "{report}");
    let hosts = k.json(&["--board", "other", "hosts", "--json"]);
    assert_eq!(
        (hosts[0]["running"].as_u64(), hosts[0]["max_workers"].as_u64()),
        (Some(1), Some(3)),
        "{hosts}"
    );
    let text = k.ok(&["hosts"]);
    assert!(text.contains("running 2/3  labels -"), "{text}");

    // A worker ends: room for one more.
    k.ok(&["complete", &here[0]]);
    let report = k.json(&["--board", "other", "dispatch", "--json"]);
    assert_eq!(spawned(&report), [there[1].clone()], "{report}");
}

#[test]
fn a_bad_host_config_or_label_is_refused_naming_the_file_and_key() {
    let f = Fleet::new();
    let k = &f.k;
    let sleeper = f.script("sleep.sh", "sleep 30");
    f.write_board(&f.profile("coder", &sleeper, &[]));
    let config = k.home().join("config.toml");
    for (text, key) in [
        ("[host]\nmax_workers = 0\n", "host.max_workers: must be at least 1"),
        ("[host]\nlabels = [\"GPU\"]\n", "host.labels: 'GPU' is not a label"),
        ("[host]\nlabel = [\"gpu\"]\n", "unknown field `label`"),
    ] {
        write_home_config(k, text);
        let err = k.fails(&["dispatch"], 2);
        assert!(err.contains(&config.display().to_string()) && err.contains(key), "{text}: {err}");
    }
    std::fs::remove_file(&config).unwrap();
    f.write_board_unchecked(&format!("{}requires = [\"has space\"]\n", f.profile("coder", &sleeper, &[])));
    let err = k.fails(&["board", "check", "default"], 2);
    assert!(err.contains("profiles.coder.requires: 'has space' is not a label"), "{err}");
}

/// A host's own command for a profile (`[profiles.NAME]` in its `<home>/config.toml`) replaces the board's
/// on that host, its `env` laid over the board's.
#[test]
fn a_host_runs_a_profile_with_its_own_command_and_env() {
    let f = Fleet::new();
    let k = &f.k;
    let board_worker = f.script(
        "board.sh",
        r#"echo "board $WHO" > "$OUT/ran"; "$KANBAN_BIN" complete "$KANBAN_TASK" > /dev/null"#,
    );
    let host_worker = f.script(
        "host.sh",
        r#"echo "host $WHO $MODEL" > "$OUT/ran"; "$KANBAN_BIN" complete "$KANBAN_TASK" > /dev/null"#,
    );
    f.write_board(&f.profile("coder", &board_worker, &[("WHO", "the board"), ("MODEL", "small")]));

    let id = k.create("first", &["--assignee", "coder"]);
    f.dispatch_wait();
    assert_eq!((k.status(&id), f.out("ran")), ("done".to_string(), "board the board\n".to_string()));

    write_home_config(
        k,
        &format!("[profiles.coder]\ncommand = [\"sh\", {host_worker:?}]\nenv = {{ WHO = \"this host\" }}\n"),
    );
    let id = k.create("second", &["--assignee", "coder"]);
    f.dispatch_wait();
    assert_eq!(k.status(&id), "done");
    assert_eq!(f.out("ran"), "host this host small\n", "the host's command, its env over the board's");

    write_home_config(k, "[profiles.coder]\ncommand = []\n");
    let err = k.fails(&["dispatch"], 2);
    assert!(err.contains("profiles.coder.command: must name a program"), "{err}");
}
