//! Process identity, sessions and signalling. Only this module sends signals.
//!
//! A pid alone is not an identity: after a process exits its pid is recycled. Every process the host may
//! later signal is recorded as a [`ProcessId`] (pid plus the kernel's start time from `/proc/<pid>/stat`),
//! and identity is checked before any signal, so a recycled pid is never killed.
//!
//! An attempt (one run of a card) is a **session**: the dispatcher starts each supervisor with `setsid`,
//! so the supervisor's pid names a session that holds the worker, the goal judge and everything they
//! start (whatever process groups they make). The session is known before the worker runs a line of code,
//! so a worker is findable even when its own pid was never recorded, and stopping an attempt means every
//! process of its session is gone, not just one group leader. The session number cannot be reused while
//! any member lives (the kernel keeps the number reserved), so once its leader is gone, the processes left
//! in it are the attempt's; and a live process holding the number under another start time means the
//! session died and the number was recycled.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProcessId {
    pub pid: i32,
    /// Start time in clock ticks since boot (field 22 of `/proc/<pid>/stat`).
    pub start: u64,
}

/// The fields of `/proc/<pid>/stat` the host uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stat {
    state: char,
    session: i32,
    start: u64,
}

/// Parse `/proc/<pid>/stat`. The command name may contain spaces and parentheses, so fields are counted
/// from the last `)`.
fn stat(pid: i32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After ")" the fields start at 3 (state): session is field 6, start time field 22.
    Some(Stat {
        state: fields.first()?.chars().next()?,
        session: fields.get(3)?.parse().ok()?,
        start: fields.get(19)?.parse().ok()?,
    })
}

fn live(state: char) -> bool {
    state != 'Z' && state != 'X'
}

impl ProcessId {
    /// The identity of a running process, or `None` if it is gone.
    pub fn of(pid: i32) -> Option<ProcessId> {
        let s = stat(pid)?;
        live(s.state).then_some(ProcessId { pid, start: s.start })
    }

    /// The identity of a child this process started and has not reaped yet, even if it has already
    /// exited: until it is reaped its pid cannot be reused, so the identity is still its own. (A worker
    /// that exits at once is a zombie by the time its supervisor looks; it did start.)
    pub fn of_child(child: &std::process::Child) -> Option<ProcessId> {
        let pid = i32::try_from(child.id()).ok()?;
        stat(pid).map(|s| ProcessId { pid, start: s.start })
    }

    pub fn current() -> ProcessId {
        ProcessId::of(std::process::id() as i32).expect("/proc/self/stat is readable")
    }

    /// From a stored pid and start time (either missing: no identity).
    pub fn from_parts(pid: Option<i64>, start: Option<i64>) -> Option<ProcessId> {
        Some(ProcessId { pid: i32::try_from(pid?).ok()?, start: u64::try_from(start?).ok()? })
    }

    /// Alive and still the same process (not a zombie, not a recycled pid).
    pub fn is_alive(&self) -> bool {
        matches!(stat(self.pid), Some(s) if s.start == self.start && live(s.state))
    }

    /// Send one signal to this process only, after checking identity.
    pub fn signal(&self, signal: Signal) -> bool {
        self.is_alive() && kill(Pid::from_raw(self.pid), signal).is_ok()
    }
}

/// Every live process, by session, read from `/proc` once. The tick takes one snapshot and judges every
/// running card from it, rather than scanning `/proc` once per card.
#[derive(Debug, Default, Clone)]
pub struct ProcessTable {
    by_session: HashMap<i32, Vec<ProcessId>>,
    starts: HashMap<i32, u64>,
}

impl ProcessTable {
    pub fn snapshot() -> ProcessTable {
        let mut table = ProcessTable::default();
        let Ok(entries) = std::fs::read_dir("/proc") else { return table };
        for pid in entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok()) {
            if let Some(s) = stat(pid).filter(|s| live(s.state)) {
                table.by_session.entry(s.session).or_default().push(ProcessId { pid, start: s.start });
                table.starts.insert(pid, s.start);
            }
        }
        table
    }

    /// The live processes of the attempt whose supervisor is `leader` (see [`Session`]).
    pub fn members(&self, leader: ProcessId) -> Vec<ProcessId> {
        if let Some(start) = self.starts.get(&leader.pid)
            && *start != leader.start
        {
            return Vec::new(); // the number was recycled: the session is long gone
        }
        self.by_session
            .get(&leader.pid)
            .map(|members| members.iter().copied().filter(|p| p.start >= leader.start).collect())
            .unwrap_or_default()
    }

    pub fn is_alive(&self, id: ProcessId) -> bool {
        self.starts.get(&id.pid) == Some(&id.start)
    }
}

/// The processes of one attempt: the session its supervisor leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    pub leader: ProcessId,
}

/// How a stop ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stopped {
    /// No process of the session is left (besides the one spared).
    Gone,
    /// These were still alive after SIGKILL (a process in uninterruptible sleep, say).
    Stuck(Vec<i32>),
}

impl Session {
    /// Live members, optionally sparing one (the supervisor, when it stops its own worker).
    pub fn members(&self, spare: Option<ProcessId>) -> Vec<ProcessId> {
        ProcessTable::snapshot().members(self.leader).into_iter().filter(|p| Some(*p) != spare).collect()
    }

    /// Send `signal` to every member but `spare`; returns how many were signalled.
    pub fn signal(&self, signal: Signal, spare: Option<ProcessId>) -> usize {
        signal_all(&self.members(spare), signal)
    }

    /// Stop the session, blocking: SIGTERM to every member but `spare`, up to `grace` for them to go, then
    /// SIGKILL (repeated for members that appear meanwhile) and up to two seconds more to confirm none is
    /// left.
    pub fn stop(&self, grace: Duration, spare: Option<ProcessId>) -> Stopped {
        if self.signal(Signal::SIGTERM, spare) == 0 {
            return Stopped::Gone;
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if self.members(spare).is_empty() {
                return Stopped::Gone;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        self.kill(spare)
    }

    /// SIGKILL every member but `spare` until none is left, for up to two seconds.
    pub fn kill(&self, spare: Option<ProcessId>) -> Stopped {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let left = self.members(spare);
            if left.is_empty() {
                return Stopped::Gone;
            }
            if Instant::now() >= deadline {
                return Stopped::Stuck(left.iter().map(|p| p.pid).collect());
            }
            signal_all(&left, Signal::SIGKILL);
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Signal each process after re-checking its identity; returns how many were signalled.
pub fn signal_all(members: &[ProcessId], signal: Signal) -> usize {
    members.iter().filter(|p| p.signal(signal)).count()
}

/// Reap every exited child of this process without blocking. The dispatcher's children are supervisors;
/// their exit status is recorded by themselves in the store, so only the zombie needs clearing here.
pub fn reap_zombies() -> usize {
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    let mut reaped = 0;
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return reaped,
            Ok(_) => reaped += 1,
        }
    }
}

/// This machine's name, used in claims (`<host>:<pid>`) for people to read.
pub fn hostname() -> String {
    nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;

    #[test]
    fn identity_distinguishes_a_live_process_from_a_recycled_pid() {
        let me = ProcessId::current();
        assert!(me.is_alive());
        let impostor = ProcessId { pid: me.pid, start: me.start + 1 };
        assert!(!impostor.is_alive(), "same pid, different start time is another process");
    }

    /// A session leader whose child ignores SIGTERM and sits in a process group of its own: stopping the
    /// session still gets every process, and confirms it.
    #[test]
    fn stopping_a_session_reaches_every_group_and_confirms_none_is_left() {
        let script = "(trap '' TERM; exec sleep 60) & (set -m; sleep 62 &); sleep 63";
        let mut child = std::process::Command::new("sh");
        child.args(["-c", script]);
        // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
        unsafe {
            child.pre_exec(|| nix::unistd::setsid().map(|_| ()).map_err(std::io::Error::from));
        }
        let mut child = child.spawn().unwrap();
        let leader = ProcessId::of(child.id() as i32).unwrap();
        let session = Session { leader };
        let deadline = Instant::now() + Duration::from_secs(5);
        while session.members(None).len() < 3 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(session.members(None).len() >= 3, "{:?}", session.members(None));
        assert_eq!(session.stop(Duration::from_millis(300), None), Stopped::Gone);
        let _ = child.wait();
        assert!(session.members(None).is_empty());
    }

    /// A child that exited but is not reaped is gone for `of`, still itself for `of_child`.
    #[test]
    fn an_exited_unreaped_child_keeps_its_identity() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while stat(child.id() as i32).is_some_and(|s| s.state != 'Z') && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(ProcessId::of(child.id() as i32), None, "a zombie is not alive");
        let id = ProcessId::of_child(&child).expect("an unreaped child keeps its identity");
        assert_eq!(id.pid, child.id() as i32);
        child.wait().unwrap();
        assert_eq!(ProcessId::of_child(&child), None, "reaped: gone");
    }
}
