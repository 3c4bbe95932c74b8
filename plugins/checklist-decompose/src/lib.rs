//! `builtin:checklist-decompose`: splits a triage card into one child per entry of the markdown checklist in
//! its body (unchecked entries only), or, when there is no checklist, per entry of its numbered list. The
//! split is deterministic: the same card always gives the same children.
//!
//! Each child gets the entry's text as its title (at most [`MAX_TITLE_CHARS`]), a body pointing back at the
//! root plus the entry's indented continuation lines, the configured `assignee` (else the root's), the root's
//! priority, and no workspace override (the host applies the root's workspace). With `chain = true` each
//! child waits on the one before it. Config: `chain` (false), `assignee` (none), `max_children` (50).

mod list;

use kanban_policy::Context;
use kanban_policy::config::{ConfigError, non_blank, positive};
use kanban_policy::decompose::{Child, Decomposer, Plan};
use list::{ListKind, find_list};
use serde::Deserialize;

/// The longest child title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Each child waits on the previous one.
    pub chain: bool,
    /// The children's assignee; `None` gives them the root's.
    #[serde(deserialize_with = "non_blank")]
    pub assignee: Option<String>,
    /// More entries than this leave the card in triage.
    #[serde(deserialize_with = "positive")]
    pub max_children: i64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { chain: false, assignee: None, max_children: 50 }
    }
}

impl Settings {
    /// The children for the card in `ctx`, or why it stays in triage.
    pub fn plan(&self, ctx: &Context) -> Plan {
        let root = &ctx.card;
        let Some((kind, items)) = find_list(&root.body) else {
            return Plan::Leave("no checklist or numbered list in the body".into());
        };
        let open: Vec<_> = items.into_iter().filter(|item| !item.checked).collect();
        if open.is_empty() && kind == ListKind::Checklist {
            return Plan::Leave("every checklist item is already checked".into());
        }
        if open.len() as i64 > self.max_children {
            return Plan::Leave(format!(
                "{} items exceeds max_children ({}); raise max_children in the policy config or split the card by hand",
                open.len(),
                self.max_children
            ));
        }
        let assignee = self.assignee.clone().or_else(|| root.assignee.clone());
        let children = open
            .into_iter()
            .enumerate()
            .map(|(i, item)| {
                let (title, truncated) = title_of(&item.text);
                let mut body = format!("Part of {} ({}).", root.title.trim(), root.id);
                if truncated {
                    body.push_str("\n\n");
                    body.push_str(&item.text);
                }
                if !item.continuation.is_empty() {
                    body.push_str("\n\n");
                    body.push_str(&item.continuation.join("\n"));
                }
                Child {
                    title,
                    body,
                    assignee: assignee.clone(),
                    priority: root.priority,
                    workspace: None,
                    depends_on: if self.chain && i > 0 { vec![i as u32 - 1] } else { Vec::new() },
                }
            })
            .collect();
        Plan::Children(children)
    }
}

/// `text` as a title of at most [`MAX_TITLE_CHARS`] characters (a cut one ends in `…`), and whether it was cut.
fn title_of(text: &str) -> (String, bool) {
    match text.char_indices().nth(MAX_TITLE_CHARS) {
        None => (text.to_string(), false),
        Some(_) => {
            let (cut, _) = text.char_indices().nth(MAX_TITLE_CHARS - 1).expect("longer than the limit");
            (format!("{}…", text[..cut].trim_end()), true)
        }
    }
}

struct ChecklistDecompose;

impl Decomposer for ChecklistDecompose {
    type Config = Settings;

    fn decompose(settings: &Settings, ctx: &Context) -> Plan {
        settings.plan(ctx)
    }

    /// A config the host should have refused at load leaves the card in triage, saying why.
    fn config_error(error: ConfigError) -> Plan {
        Plan::Leave(error.to_string())
    }
}

kanban_policy::export_decomposer!(ChecklistDecompose, name = "checklist-decompose");

#[cfg(test)]
mod tests {
    use super::*;
    use kanban_policy::testing::ContextBuilder;

    fn context(body: &str) -> Context {
        ContextBuilder::new(1_800_000_000)
            .card(|c| {
                c.id("t_0000abcd")
                    .title("Ship the billing page")
                    .body(body)
                    .status("triage")
                    .assignee("coder")
                    .priority(3)
                    .workspace("worktree", Some("/srv/web"))
                    .created_at(0)
                    .updated_at(0)
            })
            .board("web")
            .build()
    }

    fn from_config(json: &str) -> Result<Settings, String> {
        kanban_policy::config::parse(json).map_err(String::from)
    }

    fn children(plan: Plan) -> Vec<Child> {
        match plan {
            Plan::Children(children) => children,
            Plan::Leave(reason) => panic!("left in triage: {reason}"),
        }
    }

    fn leave(plan: Plan) -> String {
        match plan {
            Plan::Leave(reason) => reason,
            Plan::Children(children) => panic!("expected leave, got {children:?}"),
        }
    }

    #[test]
    fn a_checklist_becomes_children() {
        let ctx = context(
            "Steps:\n\n- [ ] Design the page\n  Figma link in the thread.\n- [x] Pick a name\n* [ ] Build it\n",
        );
        let kids = children(Settings::default().plan(&ctx));
        assert_eq!(kids.len(), 2);
        assert_eq!(kids[0].title, "Design the page");
        assert_eq!(kids[0].body, "Part of Ship the billing page (t_0000abcd).\n\nFigma link in the thread.");
        assert_eq!(kids[1].title, "Build it");
        assert_eq!(kids[1].body, "Part of Ship the billing page (t_0000abcd).");
        for kid in &kids {
            assert_eq!(kid.assignee.as_deref(), Some("coder"));
            assert_eq!(kid.priority, 3);
            assert!(kid.workspace.is_none());
            assert!(kid.depends_on.is_empty());
        }
    }

    #[test]
    fn a_numbered_list_is_the_fallback_and_chain_links_siblings() {
        let ctx = context("1. one\n2) two\n3. three\n");
        let settings = from_config(r#"{"chain": true, "assignee": " writer "}"#).unwrap();
        let kids = children(settings.plan(&ctx));
        assert_eq!(kids.iter().map(|k| k.title.as_str()).collect::<Vec<_>>(), ["one", "two", "three"]);
        assert_eq!(kids.iter().map(|k| k.depends_on.clone()).collect::<Vec<_>>(), [vec![], vec![0], vec![1]]);
        assert!(kids.iter().all(|k| k.assignee.as_deref() == Some("writer")));
    }

    #[test]
    fn leaves_the_card_when_there_is_nothing_to_split() {
        assert_eq!(
            leave(Settings::default().plan(&context("Just prose."))),
            "no checklist or numbered list in the body"
        );
        assert_eq!(
            leave(Settings::default().plan(&context("- [x] done\n"))),
            "every checklist item is already checked"
        );
        let body: String = (1..=4).map(|i| format!("- [ ] item {i}\n")).collect();
        let settings = Settings { max_children: 3, ..Settings::default() };
        assert!(leave(settings.plan(&context(&body))).starts_with("4 items exceeds max_children (3)"));
        assert_eq!(children(Settings::default().plan(&context(&body))).len(), 4);
    }

    #[test]
    fn long_titles_are_cut_and_kept_whole_in_the_body() {
        let long = "é".repeat(250);
        let kids = children(Settings::default().plan(&context(&format!("- [ ] {long}\n"))));
        assert_eq!(kids[0].title.chars().count(), MAX_TITLE_CHARS);
        assert!(kids[0].title.ends_with('…'));
        assert!(kids[0].body.ends_with(&long));
        let exact = "a".repeat(MAX_TITLE_CHARS);
        assert_eq!(title_of(&exact), (exact.clone(), false));
    }

    #[test]
    fn the_root_assignee_is_used_unless_configured() {
        let mut ctx = context("- [ ] a\n");
        ctx.card.assignee = None;
        assert_eq!(children(Settings::default().plan(&ctx))[0].assignee, None);
    }

    #[test]
    fn config_is_validated() {
        assert_eq!(from_config("{}").unwrap(), Settings::default());
        assert!(
            from_config(r#"{"chain": "yes"}"#)
                .unwrap_err()
                .starts_with("config.chain: must be true or false")
        );
        assert!(from_config(r#"{"max_children": 0}"#).unwrap_err().starts_with("config.max_children:"));
        assert!(
            from_config(r#"{"assignee": 1}"#).unwrap_err().starts_with("config.assignee: must be a string")
        );
        assert_eq!(
            from_config(r#"{"split": true}"#).unwrap_err(),
            "config.split: unknown key (known: chain, assignee, max_children)"
        );
    }

    #[test]
    fn a_config_that_does_not_read_at_call_time_leaves_the_card_in_triage() {
        let mut ctx = context("- [ ] a\n");
        ctx.config = r#"{"chain": "yes"}"#.into();
        let reason = leave(kanban_policy::decompose::decompose::<ChecklistDecompose>(&ctx));
        assert!(reason.starts_with("config.chain: must be true or false"), "{reason}");
    }
}
