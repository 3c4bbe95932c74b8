//! `kanban import`: cards from JSON Lines, one card per line with the fields of `kanban create`, created all
//! or nothing in one transaction. This module owns the line format (its keys, their types, how a parent is
//! named) and renders the result. The cards go through the creation path of `create`
//! ([`crate::ops::cards::create_batch`]), so every rule of `create` holds for each of them; none is
//! written here.
//!
//! The file is read as a stream, line by line, and only the parsed cards are kept. Nothing is written
//! until every line has parsed; the store then checks every card before its one transaction opens.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::ValueEnum;
use serde::Serialize;
use serde::de::{Deserialize, Deserializer, Error as _, MapAccess, Visitor};
use serde_json::Value;

use super::cards::default_author;
use super::{ImportArgs, InitialStatus, Invocation, UsageError, render, values};
use crate::model::Status;
use crate::ops::{self, Desk};
use crate::store::{BatchCard, BatchError, NewTask, ParentRef};

/// The keys of a line, in the order docs/cli.md lists them.
const KEYS: &[&str] = &[
    "title",
    "body",
    "assignee",
    "priority",
    "parents",
    "triage",
    "initial_status",
    "tenant",
    "workspace",
    "branch",
    "idempotency_key",
    "max_runtime",
    "max_retries",
    "goal",
    "goal_max_turns",
];

pub fn run(inv: &Invocation, args: ImportArgs) -> anyhow::Result<()> {
    let (board, mut store) = inv.open()?;
    let host_id = inv.home.host_id()?;
    let mut progress = Progress::new();
    let stdin = args.file.as_os_str() == "-";
    let name = if stdin { "stdin".to_string() } else { args.file.display().to_string() };
    let reader: Box<dyn BufRead> = if stdin {
        Box::new(std::io::stdin().lock())
    } else {
        let file = File::open(&args.file).with_context(|| format!("cannot read {name}"))?;
        Box::new(BufReader::with_capacity(1 << 16, file))
    };
    let Parsed { mut cards, lines } = read(reader, &name, &mut progress)?;

    let mut desk = Desk::new(&board, &mut store, &host_id);
    let total = cards.len();
    let written = ops::cards::create_batch(&mut desk, &mut cards, &mut |n| {
        progress.show(|| format!("writing cards: {n} of {total}"))
    });
    progress.clear();
    let created = written.map_err(|e| blame(&name, &lines, e))?;

    // The warnings `create` gives, once per kind rather than once per card.
    let mut unknown: BTreeMap<&str, usize> = BTreeMap::new();
    let mut goals = 0;
    for (item, _) in cards.iter().zip(&created).filter(|(_, c)| c.created) {
        if let Some(profile) = item.card.assignee.as_deref()
            && !board.config.profiles.contains_key(profile)
        {
            *unknown.entry(profile).or_default() += 1;
        }
        goals += usize::from(item.card.goal_mode);
    }
    for (profile, n) in unknown {
        let warning = board.unknown_profile(Some(profile)).unwrap_or_default();
        eprintln!("kanban: warning: {warning}; {} assigned to it will not be dispatched", cards_word(n));
    }
    if goals > 0 && board.config.goal.judge.is_none() {
        let (cards, their) =
            if goals == 1 { ("1 goal card".into(), "its") } else { (format!("{goals} goal cards"), "their") };
        eprintln!(
            "kanban: warning: board '{}' has no [goal] judge; {cards} will be blocked after {their} first turn",
            board.slug
        );
    }

    let imported = created.iter().filter(|c| c.created).count();
    let existing = created.len() - imported;
    if args.json {
        let cards = created
            .into_iter()
            .zip(lines)
            .map(|(c, line)| ImportedCard { line, id: c.id, status: c.status, created: c.created })
            .collect();
        return render::json(&ImportJson { board: &board.slug, imported, existing, cards });
    }
    let mut summary = format!("Imported {} into board '{}'", cards_word(imported), board.slug);
    if existing > 0 {
        let lines = if existing == 1 { "1 line".to_string() } else { format!("{existing} lines") };
        summary.push_str(&format!("; {lines} matched existing cards by idempotency key"));
    }
    println!("{summary}");
    Ok(())
}

/// `import --json`.
#[derive(Serialize)]
struct ImportJson<'a> {
    board: &'a str,
    imported: usize,
    existing: usize,
    cards: Vec<ImportedCard>,
}

/// One card of `import --json`, in line order.
#[derive(Serialize)]
struct ImportedCard {
    line: usize,
    id: String,
    status: Status,
    created: bool,
}

fn cards_word(n: usize) -> String {
    if n == 1 { "1 card".into() } else { format!("{n} cards") }
}

/// A store error with the line (and field) of the card that caused it, keeping its exit code.
fn blame(name: &str, lines: &[usize], e: BatchError) -> anyhow::Error {
    let err = anyhow::Error::new(e.error);
    match (e.index.and_then(|i| lines.get(i)), e.field) {
        (Some(line), Some(field)) => err.context(format!("{name} line {line}: {field}")),
        (Some(line), None) => err.context(format!("{name} line {line}")),
        (None, _) => err,
    }
}

/// The cards of a file and the line each came from.
struct Parsed {
    cards: Vec<BatchCard>,
    lines: Vec<usize>,
}

/// Read and parse every line. A line that breaks the format is a usage error naming the line and the key.
fn read(mut reader: impl BufRead, name: &str, progress: &mut Progress) -> anyhow::Result<Parsed> {
    let mut parser = Parser { created_by: default_author(), ..Parser::default() };
    let mut buf = Vec::new();
    let mut line = 0;
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf).with_context(|| format!("cannot read {name}"))? == 0 {
            break;
        }
        line += 1;
        let bad = |problem: String| UsageError(format!("{name} line {line}: {problem}"));
        let text = std::str::from_utf8(&buf).map_err(|_| bad("not valid UTF-8".into()))?;
        let text = text.trim_end_matches(['\n', '\r']);
        if text.trim().is_empty() {
            continue;
        }
        parser.line(line, text).map_err(bad)?;
        progress.show(|| format!("reading {name}: {} cards", parser.cards.len()));
    }
    parser.finish().map_err(|(line, problem)| UsageError(format!("{name} line {line}: {problem}")))?;
    Ok(Parsed { cards: parser.cards, lines: parser.lines })
}

#[derive(Default)]
struct Parser {
    /// Who the cards are from, as for `create`.
    created_by: Option<String>,
    cards: Vec<BatchCard>,
    /// The line of each card, ascending.
    lines: Vec<usize>,
    /// The idempotency keys of the file so far, with their card's index.
    keys: HashMap<String, usize>,
    /// Parents named by a key that no earlier line holds (card index, place in `parents`, key): a key on the
    /// board is fine, one that this or a later line holds is a forward reference (checked at the end).
    by_key: Vec<(usize, usize, String)>,
}

impl Parser {
    /// Parse one non-blank line into a card; the error names the key at fault.
    fn line(&mut self, line: usize, text: &str) -> Result<(), String> {
        let index = self.cards.len();
        let mut new = NewTask { created_by: self.created_by.clone(), ..NewTask::default() };
        let mut title = None;
        let mut parents = Vec::new();
        for (key, value) in fields(text)? {
            match key.as_str() {
                "title" => title = string(&key, value)?,
                "body" => new.body = string(&key, value)?.unwrap_or_default(),
                "assignee" => new.assignee = string(&key, value)?,
                "priority" => new.priority = integer(&key, value)?.unwrap_or(0),
                "parents" => parents = self.parents(index, line, value)?,
                "triage" => new.triage = boolean(&key, value)?.unwrap_or(false),
                "initial_status" => {
                    new.initial_status = match string(&key, value)? {
                        None => None,
                        Some(s) => {
                            Some(InitialStatus::from_str(&s, false).map(InitialStatus::status).map_err(
                                |_| expected(&key, "\"running\" or \"blocked\"", &Value::String(s)),
                            )?)
                        }
                    }
                }
                "tenant" => new.tenant = string(&key, value)?,
                "workspace" => {
                    if let Some(spec) = string(&key, value)? {
                        let spec = values::parse_workspace(&spec).map_err(|e| format!("{key}: {e}"))?;
                        new.workspace_kind = Some(spec.kind);
                        new.workspace_path = spec.path.map(|p| p.display().to_string());
                    }
                }
                "branch" => new.branch_name = string(&key, value)?,
                "idempotency_key" => new.idempotency_key = string(&key, value)?,
                "max_runtime" => {
                    new.max_runtime_seconds = match value {
                        Value::Null => None,
                        Value::String(s) => {
                            Some(values::parse_duration(&s).map_err(|e| format!("{key}: {e}"))?)
                        }
                        Value::Number(n) if n.is_i64() => n.as_i64(),
                        other => return Err(expected(&key, "seconds or a duration such as \"2h\"", &other)),
                    }
                }
                "max_retries" => new.max_retries = integer(&key, value)?,
                "goal" => new.goal_mode = boolean(&key, value)?.unwrap_or(false),
                "goal_max_turns" => new.goal_max_turns = integer(&key, value)?,
                _ => return Err(format!("unknown key \"{key}\" (a card's keys: {})", KEYS.join(", "))),
            }
        }
        new.title = title.ok_or("title: missing (every card needs a title)")?;
        if let Some(key) = &new.idempotency_key
            && let Some(first) = self.keys.insert(key.clone(), index)
        {
            return Err(format!(
                "idempotency_key: \"{key}\" is already the key of line {}",
                self.lines[first]
            ));
        }
        self.cards.push(BatchCard { card: new, parents });
        self.lines.push(line);
        Ok(())
    }

    /// `parents`: each a card id, `key:KEY`, or the line number of an earlier card of the file.
    fn parents(&mut self, index: usize, line: usize, value: Value) -> Result<Vec<ParentRef>, String> {
        let items = match value {
            Value::Null => return Ok(Vec::new()),
            Value::Array(items) => items,
            other => return Err(expected("parents", "an array", &other)),
        };
        let mut parents = Vec::with_capacity(items.len());
        for (n, item) in items.into_iter().enumerate() {
            let at = format!("parents[{n}]");
            parents.push(match item {
                Value::Number(ref number) => {
                    let Some(to) = number.as_u64().filter(|to| *to >= 1).map(|to| to as usize) else {
                        return Err(expected(&at, "a line number (1 or more)", &item));
                    };
                    if to >= line {
                        return Err(format!(
                            "{at}: line {to} does not come before line {line}; a parent must be on an earlier line"
                        ));
                    }
                    match self.lines.binary_search(&to) {
                        Ok(earlier) => ParentRef::Earlier(earlier),
                        Err(_) => return Err(format!("{at}: line {to} holds no card")),
                    }
                }
                Value::String(text) => match text.strip_prefix("key:") {
                    Some(key) if key.trim().is_empty() => return Err(format!("{at}: \"key:\" needs a key")),
                    Some(key) => match self.keys.get(key) {
                        Some(earlier) => ParentRef::Earlier(*earlier),
                        None => {
                            self.by_key.push((index, n, key.to_string()));
                            ParentRef::Key(key.to_string())
                        }
                    },
                    None if text.trim().is_empty() => return Err(format!("{at}: empty card id")),
                    None => ParentRef::Id(text),
                },
                other => {
                    return Err(expected(&at, "a card id, \"key:KEY\" or the line number of an earlier card", &other));
                }
            });
        }
        Ok(parents)
    }

    /// Once every line is read: a parent named by a key that this or a later line holds points forward (a
    /// parent must come first, so the cards of a file never form a cycle). The first such line is named.
    fn finish(&self) -> Result<(), (usize, String)> {
        for (index, n, key) in &self.by_key {
            if let Some(holder) = self.keys.get(key) {
                let line = self.lines[*index];
                let holder = self.lines[*holder];
                return Err((
                    line,
                    format!(
                        "parents[{n}]: key \"{key}\" is the key of line {holder}, which does not come before line \
                         {line}; a parent must be on an earlier line"
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// A line's object, its keys in the order given.
fn fields(text: &str) -> Result<Vec<(String, Value)>, String> {
    if !text.trim_start().starts_with('{') {
        return Err(match serde_json::from_str::<Value>(text) {
            Ok(value) => format!("expected a JSON object (one card per line), got {}", shown(&value)),
            Err(e) => json_error(&e),
        });
    }
    serde_json::from_str::<Fields>(text).map(|f| f.0).map_err(|e| json_error(&e))
}

/// A JSON object read key by key, so that a key given twice is an error: a map would keep the last value
/// and drop the other without a word.
struct Fields(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Fields, D::Error> {
        struct Keys;
        impl<'de> Visitor<'de> for Keys {
            type Value = Fields;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
                let mut fields: Vec<(String, Value)> = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    if fields.iter().any(|(k, _)| *k == key) {
                        return Err(A::Error::custom(format!("{key}: given twice")));
                    }
                    let value = map.next_value()?;
                    fields.push((key, value));
                }
                Ok(Fields(fields))
            }
        }
        deserializer.deserialize_map(Keys)
    }
}

/// serde_json's message without its position (a line is always line 1), with the column for bad syntax.
fn json_error(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let message = text.rsplit_once(" at line ").map_or(text.as_str(), |(m, _)| m);
    match e.classify() {
        serde_json::error::Category::Data => message.to_string(),
        _ => format!("invalid JSON: {message} at column {}", e.column()),
    }
}

fn expected(key: &str, what: &str, got: &Value) -> String {
    format!("{key}: expected {what}, got {}", shown(got))
}

/// A value as JSON, cut short when long.
fn shown(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(60) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text,
    }
}

fn string(key: &str, value: Value) -> Result<Option<String>, String> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s)),
        other => Err(expected(key, "a string", &other)),
    }
}

fn integer(key: &str, value: Value) -> Result<Option<i64>, String> {
    match value {
        Value::Null => Ok(None),
        Value::Number(ref n) if n.is_i64() => Ok(n.as_i64()),
        other => Err(expected(key, "an integer", &other)),
    }
}

fn boolean(key: &str, value: Value) -> Result<Option<bool>, String> {
    match value {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(b)),
        other => Err(expected(key, "true or false", &other)),
    }
}

/// Progress on stderr for a long import: only on a terminal, and only once it has run for a second (most
/// imports are done before anyone could read it). One line, rewritten in place, cleared at the end.
struct Progress {
    on: bool,
    start: Instant,
    shown: Option<Instant>,
}

impl Progress {
    const AFTER: Duration = Duration::from_secs(1);
    const EVERY: Duration = Duration::from_millis(200);

    fn new() -> Progress {
        Progress { on: std::io::stderr().is_terminal(), start: Instant::now(), shown: None }
    }

    fn show(&mut self, line: impl FnOnce() -> String) {
        if !self.on {
            return;
        }
        let now = Instant::now();
        let due = match self.shown {
            Some(shown) => now.duration_since(shown) >= Self::EVERY,
            None => now.duration_since(self.start) >= Self::AFTER,
        };
        if due {
            self.shown = Some(now);
            eprint!("\r\x1b[Kkanban: {}", line());
        }
    }

    fn clear(&mut self) {
        if self.shown.take().is_some() {
            eprint!("\r\x1b[K");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Parsed, String> {
        let mut progress = Progress { on: false, start: Instant::now(), shown: None };
        read(text.as_bytes(), "cards.jsonl", &mut progress).map_err(|e| format!("{e:#}"))
    }

    #[test]
    fn every_key_of_the_docs_is_read_and_no_other() {
        let line =
            r#"{"title":"t","body":"b","assignee":"a","priority":-3,"parents":["t_00000000"],"triage":false,
            "initial_status":"blocked","tenant":"x","workspace":"worktree:/repo","branch":"br",
            "idempotency_key":"k","max_runtime":"2h","max_retries":0,"goal":true,"goal_max_turns":4}"#
                .replace('\n', "");
        let parsed = parse(&line).unwrap();
        let card = &parsed.cards[0].card;
        assert_eq!((card.priority, card.max_runtime_seconds, card.goal_max_turns), (-3, Some(7200), Some(4)));
        assert_eq!(card.initial_status, Some(Status::Blocked));
        assert_eq!(card.workspace_path.as_deref(), Some("/repo"));
        assert_eq!(parsed.cards[0].parents, [ParentRef::Id("t_00000000".into())]);
        // Every key is in KEYS (the test line uses each once).
        let value: Value = serde_json::from_str(&line).unwrap();
        let mut keys: Vec<&str> = value.as_object().unwrap().keys().map(String::as_str).collect();
        let mut listed = KEYS.to_vec();
        keys.sort();
        listed.sort();
        assert_eq!(keys, listed);
    }

    #[test]
    fn parents_by_line_and_by_key_resolve_to_earlier_cards_and_blank_lines_are_skipped() {
        let text = "{\"title\":\"a\",\"idempotency_key\":\"a\"}\n\n{\"title\":\"b\",\"parents\":[1,\"key:a\",\"key:board\"]}\n";
        let parsed = parse(text).unwrap();
        assert_eq!(parsed.lines, [1, 3]);
        assert_eq!(
            parsed.cards[1].parents,
            [ParentRef::Earlier(0), ParentRef::Earlier(0), ParentRef::Key("board".into())]
        );
    }

    #[test]
    fn bad_lines_name_the_line_and_the_key() {
        let cases = [
            (
                "{\"title\":\"x\",\"priority\":\"high\"}",
                "line 1: priority: expected an integer, got \"high\"",
            ),
            ("{\"title\":\"x\",\"prority\":1}", "line 1: unknown key \"prority\""),
            ("{\"title\":\"x\",\"title\":\"y\"}", "line 1: title: given twice"),
            ("{\"body\":\"x\"}", "line 1: title: missing"),
            ("{\"title\":\"x\"", "line 1: invalid JSON: EOF while parsing an object at column"),
            ("[1]", "line 1: expected a JSON object (one card per line), got [1]"),
            ("{\"title\":\"x\",\"parents\":[1]}", "line 1: parents[0]: line 1 does not come before line 1"),
            (
                "{\"title\":\"x\"}\n{\"title\":\"y\",\"parents\":[0]}",
                "line 2: parents[0]: expected a line number",
            ),
            ("\n{\"title\":\"y\",\"parents\":[1]}", "line 2: parents[0]: line 1 holds no card"),
            (
                "{\"title\":\"a\",\"parents\":[\"key:b\"]}\n{\"title\":\"b\",\"idempotency_key\":\"b\"}",
                "line 1: parents[0]: key \"b\" is the key of line 2, which does not come before line 1",
            ),
            (
                "{\"title\":\"a\",\"idempotency_key\":\"k\"}\n{\"title\":\"b\",\"idempotency_key\":\"k\"}",
                "line 2: idempotency_key: \"k\" is already the key of line 1",
            ),
            (
                "{\"title\":\"x\",\"workspace\":\"dir:rel\"}",
                "line 1: workspace: 'rel' must be an absolute path",
            ),
            (
                "{\"title\":\"x\",\"initial_status\":\"ready\"}",
                "line 1: initial_status: expected \"running\" or",
            ),
            ("{\"title\":\"x\",\"max_runtime\":1.5}", "line 1: max_runtime: expected seconds or a duration"),
            ("{\"title\":\"x\",\"goal\":1}", "line 1: goal: expected true or false, got 1"),
        ];
        for (text, want) in cases {
            let err = parse(text).err().unwrap_or_else(|| panic!("{text} parsed"));
            assert!(err.starts_with(&format!("cards.jsonl {want}")), "{text}:\n  got  {err}\n  want {want}");
        }
    }
}
