//! Board commands: create, list, show, switch, remove, set the default workdir, check the config, export,
//! import and migrate.

use std::collections::BTreeMap;

use serde::Serialize;

use super::render;
use super::{BoardCommand, Invocation};
use crate::board::Board;
use crate::clock;
use crate::views::BoardRow;

#[derive(Serialize)]
struct BoardDetail<'a> {
    slug: &'a str,
    name: &'a str,
    path: String,
    db: String,
    default_workdir: Option<String>,
    profiles: Vec<&'a str>,
    counts: BTreeMap<String, i64>,
    /// The board's pauses (`kanban pause`): the board's own first, then its profiles'.
    pauses: Vec<crate::model::Pause>,
    config: &'a crate::board::BoardConfig,
}

pub fn run(inv: &Invocation, command: BoardCommand) -> anyhow::Result<()> {
    let home = &inv.home;
    match command {
        BoardCommand::Create { slug, name, default_workdir, database } => {
            let board = home.create_board_in(
                &slug,
                name.as_deref(),
                default_workdir.as_deref(),
                database.as_deref(),
            )?;
            match &board.database {
                Some(url) => println!(
                    "Created board {} at {} (cards in {})",
                    board.slug,
                    board.dir.display(),
                    crate::store::redacted_url(url)
                ),
                None => println!("Created board {} at {}", board.slug, board.dir.display()),
            }
            Ok(())
        }
        BoardCommand::List { json } => {
            let rows = BoardRow::list(home, None)?;
            if json {
                return render::json(&rows);
            }
            if rows.is_empty() {
                println!("no boards (the `default` board is created on first use)");
            }
            for row in &rows {
                println!(
                    "{} {:<20} {:<24} {}",
                    if row.current { "*" } else { " " },
                    row.slug,
                    row.name,
                    row.path
                );
            }
            Ok(())
        }
        BoardCommand::Show { slug, json } => {
            let slug = slug.unwrap_or_else(|| home.pick_board(inv.board_flag.as_deref()));
            let board = home.open_board(&slug)?;
            let mut store = board.open_store()?;
            let stats = store.stats()?;
            let pauses = store.pauses()?;
            show(&board, stats.by_status, pauses, json)
        }
        BoardCommand::Switch { slug } => {
            home.switch_board(&slug)?;
            println!("Switched to board {slug}");
            Ok(())
        }
        BoardCommand::Rm { slug, delete } => {
            match home.remove_board(&slug, delete, clock::now())? {
                Some(moved) => println!("Removed board {slug} (moved to {})", moved.display()),
                None => println!("Deleted board {slug}"),
            }
            Ok(())
        }
        BoardCommand::SetDefaultWorkdir { slug, path } => {
            let board = home.set_default_workdir(&slug, path.as_deref())?;
            match &board.config.board.default_workdir {
                Some(dir) => println!("Board {slug}: default workdir {}", dir.display()),
                None => println!("Board {slug}: default workdir cleared"),
            }
            Ok(())
        }
        BoardCommand::Export { slug, output, force, json } => {
            let done = crate::ops::portable::export(home, &slug, &output, force, clock::now())?;
            if json {
                return render::json(&done);
            }
            println!(
                "Exported board {}: {} card(s), {} file(s), {} bytes to {} (sha256 {})",
                done.slug, done.cards, done.files, done.bytes, done.file, done.sha256
            );
            Ok(())
        }
        BoardCommand::Import { file, as_slug, force, json } => {
            let done = crate::ops::portable::import(home, &file, as_slug.as_deref(), force, clock::now())?;
            if json {
                return render::json(&done);
            }
            println!(
                "Imported board {} from {}: {} card(s), {} file(s), {} bytes (sha256 {})",
                done.slug, done.file, done.cards, done.files, done.bytes, done.sha256
            );
            if let Some(old) = &done.replaced {
                println!("  replaced the existing board (moved to {old})");
            }
            for r in &done.released {
                println!(
                    "  {} was running on the exporting host: run {} ended, now {}",
                    r.id,
                    r.run_id,
                    r.status.as_deref().unwrap_or("unchanged")
                );
            }
            for p in &done.plugins {
                println!("  plugin {} ({}): {}", p.reference, p.sha256, p.status);
            }
            Ok(())
        }
        BoardCommand::Migrate { slug, to, json } => {
            let to = crate::ops::migrate::Destination::parse(&to)?;
            let done = crate::ops::migrate::migrate(home, &slug, &to, clock::now())?;
            for warning in &done.warnings {
                eprintln!("kanban: warning: {warning}");
            }
            if json {
                return render::json(&done);
            }
            migrated(&done);
            Ok(())
        }
        BoardCommand::Check { slug } => {
            let slug = slug.unwrap_or_else(|| home.pick_board(inv.board_flag.as_deref()));
            let board = home.open_board(&slug)?;
            let checked = super::policies::check_policies(inv, &board)?;
            println!(
                "{}: ok ({} profile(s), {checked} polic(ies) loaded and their config accepted)",
                board.toml_path().display(),
                board.config.profiles.len()
            );
            Ok(())
        }
    }
}

fn migrated(done: &crate::ops::migrate::Migrated) {
    let postgres = format!("PostgreSQL {} (schema {})", done.database, done.schema);
    match done.to {
        "postgresql" => println!("Migrated board {} from SQLite to {postgres}", done.slug),
        _ => println!("Migrated board {} from {postgres} to SQLite {}", done.slug, done.sqlite),
    }
    for t in &done.tables {
        println!("  {:<16} {:>8} row(s)  sha256 {}", t.table, t.rows, t.sha256);
    }
    println!("  verified: every table's row count and sha256 read back from both stores match");
    match done.to {
        "postgresql" => {
            println!("  the SQLite database is archived, unchanged: {} (it still opens)", done.sqlite);
            println!("  the board's own file was moved beside it, to {}/original/", done.archive);
        }
        _ => {
            println!(
                "  the schema {} is left intact in the PostgreSQL database: hosts that still name it work it \
                 there; drop it once none does (DROP SCHEMA \"{}\" CASCADE)",
                done.schema, done.schema
            );
            println!("  database.url was moved to {}/", done.archive);
        }
    }
    if done.to == "postgresql" {
        println!(
            "  board.toml and the plugins its policies name are published to the database, shared with every host \
             that joins the board; attachment files, workspaces and logs stay in the board's folder"
        );
    } else {
        println!(
            "  board.toml (this host's copy of the shared config), attachment files, workspaces, logs and installed \
             plugins stay where they were"
        );
    }
}

fn show(
    board: &Board,
    counts: BTreeMap<String, i64>,
    pauses: Vec<crate::model::Pause>,
    json: bool,
) -> anyhow::Result<()> {
    let detail = BoardDetail {
        slug: &board.slug,
        name: board.name(),
        path: board.dir.display().to_string(),
        db: match &board.database {
            Some(url) => crate::store::redacted_url(url),
            None => board.db_path().display().to_string(),
        },
        default_workdir: board.config.board.default_workdir.as_ref().map(|p| p.display().to_string()),
        profiles: board.config.profile_names(),
        counts,
        pauses,
        config: &board.config,
    };
    if json {
        return render::json(&detail);
    }
    println!("{} ({})", detail.slug, detail.name);
    println!("  path             {}", detail.path);
    println!("  database         {}", detail.db);
    println!("  default workdir  {}", detail.default_workdir.as_deref().unwrap_or("-"));
    println!(
        "  profiles         {}",
        if detail.profiles.is_empty() { "-".to_string() } else { detail.profiles.join(", ") }
    );
    let counts: Vec<String> = detail.counts.iter().map(|(s, n)| format!("{s}={n}")).collect();
    println!("  cards            {}", if counts.is_empty() { "none".to_string() } else { counts.join(" ") });
    if detail.pauses.is_empty() {
        println!("  paused           no");
    }
    for p in &detail.pauses {
        let what = p.profile.as_deref().map(|name| format!("profile {name}")).unwrap_or("board".into());
        println!("  paused           {what} {}", super::dispatch::pause_detail(p));
    }
    Ok(())
}
