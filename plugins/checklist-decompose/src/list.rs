//! Finding the list a card body splits into: a markdown checklist (`- [ ] item`, `* [ ] item`), or, when the
//! body has no checklist, a numbered list (`1. item`, `2) item`).
//!
//! Items are the list entries at the outermost indentation. Lines indented deeper than an item, up to the
//! next line that is not, are its continuation (nested lists included); blank lines between them are kept.
//! Fenced code blocks (```` ``` ```` or `~~~`) are never read as items.

/// Which kind of list the body holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    Checklist,
    Numbered,
}

/// One entry of the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The entry's text, trimmed; never empty.
    pub text: String,
    /// Checked checklist entries (`- [x]`); never set for numbered lists.
    pub checked: bool,
    /// The indented lines under the entry, dedented; blank lines inside kept, none at either end.
    pub continuation: Vec<String>,
}

/// The body's list, if it has one: a checklist wins over a numbered list.
pub fn find_list(body: &str) -> Option<(ListKind, Vec<Item>)> {
    [ListKind::Checklist, ListKind::Numbered].into_iter().find_map(|kind| {
        let items = items_of(body, kind);
        (!items.is_empty()).then_some((kind, items))
    })
}

/// The text after an item marker of `kind` at the start of `content` (already left-trimmed), with whether the
/// checkbox is checked.
fn item_marker(content: &str, kind: ListKind) -> Option<(bool, &str)> {
    match kind {
        ListKind::Checklist => {
            let rest = content.strip_prefix(['-', '*'])?;
            let box_and_text = rest.trim_start_matches([' ', '\t']);
            if box_and_text.len() == rest.len() {
                return None; // `-[ ]` is not a list item
            }
            let checked = match box_and_text.get(..3)? {
                "[ ]" => false,
                "[x]" | "[X]" => true,
                _ => return None,
            };
            let text = &box_and_text[3..];
            (text.is_empty() || text.starts_with([' ', '\t'])).then_some((checked, text))
        }
        ListKind::Numbered => {
            let digits = content.bytes().take_while(u8::is_ascii_digit).count();
            if !(1..=9).contains(&digits) {
                return None;
            }
            let text = content[digits..].strip_prefix(['.', ')'])?;
            (text.is_empty() || text.starts_with([' ', '\t'])).then_some((false, text))
        }
    }
}

/// A line with its leading tabs expanded (to 4 columns) and its indentation in columns.
fn expand_indent(line: &str) -> (usize, String) {
    let content = line.trim_start_matches([' ', '\t']);
    let lead = &line[..line.len() - content.len()];
    let width = lead.chars().fold(0, |col, c| if c == '\t' { col / 4 * 4 + 4 } else { col + 1 });
    (width, format!("{}{content}", " ".repeat(width)))
}

fn is_fence(content: &str) -> bool {
    content.starts_with("```") || content.starts_with("~~~")
}

struct Open {
    indent: usize,
    checked: bool,
    text: String,
    lines: Vec<String>,
    blanks: usize,
}

impl Open {
    fn push(&mut self, line: String) {
        if !self.lines.is_empty() {
            self.lines.extend(std::iter::repeat_n(String::new(), self.blanks));
        }
        self.blanks = 0;
        self.lines.push(line);
    }

    fn finish(self) -> Option<Item> {
        let text = self.text.trim().to_string();
        if text.is_empty() {
            return None;
        }
        let cut =
            self.lines.iter().filter(|l| !l.trim().is_empty()).map(|l| l.len() - l.trim_start().len()).min();
        let continuation = self
            .lines
            .iter()
            .map(|l| {
                if l.trim().is_empty() { String::new() } else { l[cut.unwrap_or(0)..].trim_end().to_string() }
            })
            .collect();
        Some(Item { text, checked: self.checked, continuation })
    }
}

fn items_of(body: &str, kind: ListKind) -> Vec<Item> {
    let lines: Vec<(usize, String)> = body.lines().map(expand_indent).collect();

    // The outermost indentation any item of this kind has, outside code fences.
    let mut in_fence = false;
    let mut base = None::<usize>;
    for (indent, line) in &lines {
        let content = line.trim_start();
        if is_fence(content) {
            in_fence = !in_fence;
        } else if !in_fence && item_marker(content, kind).is_some() {
            base = Some(base.map_or(*indent, |b| b.min(*indent)));
        }
    }
    let Some(base) = base else {
        return Vec::new();
    };

    let mut items = Vec::new();
    let mut open: Option<Open> = None;
    let mut fence: Option<bool> = None; // Some(inside an item's continuation) while in a code fence
    for (indent, line) in lines {
        let content = line.trim_start();
        if let Some(in_item) = fence {
            if is_fence(content) {
                fence = None;
            }
            match open.as_mut() {
                Some(item) if in_item => item.push(line),
                _ => {}
            }
            continue;
        }
        if content.is_empty() {
            if let Some(item) = open.as_mut() {
                item.blanks += 1;
            }
            continue;
        }
        if indent <= base
            && let Some((checked, text)) = item_marker(content, kind)
        {
            items.extend(open.take().and_then(Open::finish));
            open = Some(Open { indent, checked, text: text.to_string(), lines: Vec::new(), blanks: 0 });
            continue;
        }
        let continues = open.as_ref().is_some_and(|item| indent > item.indent);
        if is_fence(content) {
            fence = Some(continues);
        }
        match open.as_mut() {
            Some(item) if continues => item.push(line),
            _ => items.extend(open.take().and_then(Open::finish)),
        }
    }
    items.extend(open.and_then(Open::finish));
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(body: &str) -> Option<(ListKind, Vec<(String, bool)>)> {
        find_list(body).map(|(kind, items)| (kind, items.into_iter().map(|i| (i.text, i.checked)).collect()))
    }

    fn item(text: &str, checked: bool) -> (String, bool) {
        (text.to_string(), checked)
    }

    #[test]
    fn checklist_items_with_both_bullets() {
        let body = "Intro text.\n\n- [ ] First\n* [x] Done already\n- [ ]   Third  \n-[ ] not an item\n- [y] nor this\n";
        assert_eq!(
            texts(body),
            Some((
                ListKind::Checklist,
                vec![item("First", false), item("Done already", true), item("Third", false)]
            ))
        );
    }

    #[test]
    fn a_checklist_wins_over_a_numbered_list() {
        let body = "1. step one\n2. step two\n\n- [ ] the real task\n";
        assert_eq!(texts(body), Some((ListKind::Checklist, vec![item("the real task", false)])));
    }

    #[test]
    fn numbered_lists_with_dots_and_parens() {
        let body =
            "Plan:\n1. Write the schema\n2) Migrate\n10. Ship it\n1.5 is not an item\n1234567890. nor this\n";
        assert_eq!(
            texts(body),
            Some((
                ListKind::Numbered,
                vec![item("Write the schema", false), item("Migrate", false), item("Ship it", false)]
            ))
        );
    }

    #[test]
    fn no_list() {
        assert_eq!(texts("Just prose.\n- a plain bullet\n"), None);
        assert_eq!(texts(""), None);
        assert_eq!(texts("- [ ]   \n1.\n"), None, "empty items are not items");
    }

    #[test]
    fn indented_lines_continue_an_item_and_are_dedented() {
        let body = "- [ ] Add the endpoint\n  Use the v2 router.\n\n    - [ ] nested stays in the body\n\n\
                    - [ ] Write tests\nA paragraph ends the list item.\n  and this indented line belongs to nobody\n";
        let (_, items) = find_list(body).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].continuation, ["Use the v2 router.", "", "  - [ ] nested stays in the body"]);
        assert!(items[1].continuation.is_empty());
    }

    #[test]
    fn a_list_indented_as_a_whole_is_found() {
        let body = "   - [ ] one\n     more about one\n   - [ ] two\n";
        let (_, items) = find_list(body).unwrap();
        assert_eq!(items.iter().map(|i| i.text.as_str()).collect::<Vec<_>>(), ["one", "two"]);
        assert_eq!(items[0].continuation, ["more about one"]);
    }

    #[test]
    fn tabs_indent_continuations() {
        let (_, items) = find_list("1. one\n\tdetail\n2. two\n").unwrap();
        assert_eq!(items[0].continuation, ["detail"]);
    }

    #[test]
    fn code_fences_are_not_read_as_items() {
        let body =
            "```\n- [ ] inside a fence\n```\n- [ ] outside\n  ```sh\n  - [ ] fenced, in the item\n  ```\n";
        let (_, items) = find_list(body).unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].text, "outside");
        assert_eq!(items[0].continuation, ["```sh", "- [ ] fenced, in the item", "```"]);
    }
}
