//! {{name}}: a decompose policy for kanban.
//!
//! `kanban decompose ID` asks the board's decompose policy how a triage card splits into child cards. This
//! one makes a child of every open checklist line of the body (`- [ ] write the migration`); ticked lines
//! (`- [x] ...`) are done already and skipped. A body without open items leaves the card in triage, with the
//! reason. Change `decompose` to make the rule yours; README.md has the commands to test, build and install
//! it.

use kanban_policy::Context;
use kanban_policy::config::non_blank;
use kanban_policy::decompose::{Child, Decomposer, Plan};
use serde::Deserialize;

/// The board's `[policies.config]` table, read by the SDK. Every error names the key at fault, and a key
/// this struct does not declare is refused, so a typo in board.toml fails `kanban board check`. A key left
/// out takes its value from `Config::default()`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The profile every child is assigned to; left out, the children are unassigned (routing decides).
    #[serde(deserialize_with = "non_blank")]
    pub assignee: Option<String>,
    /// Each child waits on the one before it, in checklist order; otherwise they may run side by side.
    pub sequential: bool,
}

/// The text of an open checklist line (`- [ ] text` or `* [ ] text`), if `line` is one.
pub fn open_item(line: &str) -> Option<&str> {
    let line = line.trim_start();
    let rest = line
        .strip_prefix("- [ ]")
        .or_else(|| line.strip_prefix("* [ ]"))?;
    let text = rest.trim();
    (!text.is_empty()).then_some(text)
}

/// The exported type. It keeps no state: a new instance may serve any call.
pub struct ChecklistSplit;

impl Decomposer for ChecklistSplit {
    type Config = Config;

    fn decompose(config: &Config, ctx: &Context) -> Plan {
        let card = &ctx.card;
        let items: Vec<&str> = card.body.lines().filter_map(open_item).collect();
        if items.is_empty() {
            return Plan::Leave("no open checklist items (\"- [ ] ...\") in the body".to_string());
        }
        let children = items
            .iter()
            .enumerate()
            .map(|(i, item)| Child {
                title: item.to_string(),
                body: format!("Part of {}: {}", card.id, card.title),
                assignee: config.assignee.clone(),
                priority: card.priority,
                workspace: None,
                // Indexes into this list: the child before this one.
                depends_on: if config.sequential && i > 0 {
                    vec![i as u32 - 1]
                } else {
                    Vec::new()
                },
            })
            .collect();
        Plan::Children(children)
    }
}

// The component's exports: `describe` reports this crate's package name and version, `validate-config`
// reads the config into `Config`, and `decompose` calls `ChecklistSplit::decompose`.
kanban_policy::export_decomposer!(ChecklistSplit);

// The logic is plain Rust: `cargo test` runs these natively, no WebAssembly needed.
#[cfg(test)]
mod tests {
    use super::*;
    use kanban_policy::testing::ContextBuilder;

    const BODY: &str = "Move billing to the new tables.\n\n- [ ] write the migration\n- [x] freeze writes\n  * [ ] switch the reads\n- [ ]  \n";

    fn decompose(body: &str, config: &str) -> Plan {
        let ctx = ContextBuilder::new(1_800_000_000)
            .card(|c| {
                c.id("t_1a2b3c4d")
                    .title("Migrate billing")
                    .status("triage")
                    .body(body)
                    .priority(3)
            })
            .config(config)
            .build();
        // Runs the policy as the host does: the config comes from `ctx.config`.
        kanban_policy::decompose::decompose::<ChecklistSplit>(&ctx)
    }

    #[test]
    fn each_open_checklist_line_becomes_a_child() {
        let Plan::Children(children) = decompose(BODY, "{}") else {
            panic!("expected children")
        };
        let titles: Vec<&str> = children.iter().map(|c| c.title.as_str()).collect();
        assert_eq!(titles, ["write the migration", "switch the reads"]);
        assert_eq!(children[0].body, "Part of t_1a2b3c4d: Migrate billing");
        assert_eq!(children[0].priority, 3);
        assert_eq!(children[0].assignee, None);
        assert!(children.iter().all(|c| c.depends_on.is_empty()));
    }

    #[test]
    fn the_assignee_and_the_order_come_from_the_config() {
        let Plan::Children(children) =
            decompose(BODY, r#"{"assignee": "coder", "sequential": true}"#)
        else {
            panic!("expected children")
        };
        assert_eq!(children[1].assignee.as_deref(), Some("coder"));
        assert_eq!(children[0].depends_on, Vec::<u32>::new());
        assert_eq!(children[1].depends_on, [0]);
    }

    #[test]
    fn a_body_without_open_items_stays_in_triage() {
        assert!(
            matches!(decompose("- [x] all done", "{}"), Plan::Leave(reason) if reason.contains("no open checklist"))
        );
    }

    #[test]
    fn a_bad_config_names_the_key() {
        let err = |json: &str| {
            kanban_policy::config::parse::<Config>(json)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err(r#"{"sequential": "yes"}"#),
            r#"config.sequential: must be true or false, got "yes""#
        );
        assert_eq!(
            err(r#"{"assignee": 1}"#),
            "config.assignee: must be a string, got 1"
        );
        assert_eq!(
            err(r#"{"asignee": "x"}"#),
            "config.asignee: unknown key (known: assignee, sequential)"
        );
    }
}
