//! `kanban notify`: the board's notification outbox (what was delivered where, what is waiting, what
//! failed) and one delivery pass by hand. Delivery itself lives in [`crate::ops::notify`].

use super::{Invocation, NotifyCommand, render};
use crate::ops::notify;
use crate::store::Delivery;

pub fn run(inv: &Invocation, command: NotifyCommand) -> anyhow::Result<()> {
    let (board, mut store) = inv.open()?;
    match command {
        NotifyCommand::Log { status, limit, json } => {
            let rows = store.deliveries(status.as_deref(), limit)?;
            if json {
                return render::json(&rows);
            }
            if rows.is_empty() {
                println!("No notifications on board '{}'.", board.slug);
            }
            for d in &rows {
                println!("{}", line(d));
            }
            Ok(())
        }
        NotifyCommand::Deliver { json } => {
            notify::sync_routes(&board, &mut store)?;
            let pass = notify::deliver_due(&board, &mut store, crate::clock::now())?;
            if json {
                return render::json(&pass);
            }
            println!(
                "Delivered {}, retrying {}, failed {} on board '{}'",
                pass.delivered, pass.retrying, pass.failed, board.slug
            );
            Ok(())
        }
    }
}

/// `#12  delivered  gave_up  t_1b2c3d4e  -> https://hooks.example/x  (1 attempt)`.
fn line(d: &Delivery) -> String {
    let to = d.target["webhook"]
        .as_str()
        .map(str::to_string)
        .or_else(|| {
            d.target["command"]
                .as_array()
                .map(|c| c.iter().filter_map(|a| a.as_str()).collect::<Vec<_>>().join(" "))
        })
        .unwrap_or_default();
    let when = match (d.status.as_str(), d.delivered_at) {
        ("delivered", Some(at)) => format!(" at {}", render::time(at)),
        ("pending", _) => format!(", next attempt {}", render::time(d.next_attempt_at)),
        _ => String::new(),
    };
    let error = d.last_error.as_deref().map(|e| format!("; last error: {e}")).unwrap_or_default();
    format!(
        "#{:<5} {:<9} {:<18} {:<10} -> {to}  ({} attempt{}{when}{error})",
        d.id,
        d.status,
        d.kind,
        d.task_id.as_deref().unwrap_or("-"),
        d.attempts,
        if d.attempts == 1 { "" } else { "s" }
    )
}
