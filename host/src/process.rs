//! Process identity and signalling.
//!
//! A pid alone is not an identity: after a process exits its pid is recycled. Every process the host may
//! later signal is recorded as a [`ProcessId`] (pid plus the kernel's start time from `/proc/<pid>/stat`),
//! and [`ProcessId::is_alive`] checks both before any signal, so a recycled pid is never killed. Only this
//! module sends signals.

use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessId {
    pub pid: i32,
    /// Start time in clock ticks since boot (field 22 of `/proc/<pid>/stat`).
    pub start: u64,
}

/// Parse `/proc/<pid>/stat`: `(state, start time)`. The command name may contain spaces and parentheses,
/// so fields are counted from the last `)`.
fn stat(pid: i32) -> Option<(char, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // after ")" the fields start at 3 (state); start time is field 22 → index 19.
    let state = fields.first()?.chars().next()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((state, start))
}

impl ProcessId {
    /// The identity of a running process, or `None` if it is gone.
    pub fn of(pid: i32) -> Option<ProcessId> {
        let (state, start) = stat(pid)?;
        (state != 'Z' && state != 'X').then_some(ProcessId { pid, start })
    }

    pub fn current() -> ProcessId {
        ProcessId::of(std::process::id() as i32).expect("/proc/self/stat is readable")
    }

    /// Alive and still the same process (not a zombie, not a recycled pid).
    pub fn is_alive(&self) -> bool {
        matches!(stat(self.pid), Some((state, start)) if start == self.start && state != 'Z' && state != 'X')
    }

    /// SIGTERM the process group this process leads, wait up to `grace`, then SIGKILL it. The identity is
    /// re-checked before every signal. Returns true if the process is gone at the end.
    pub fn terminate_group(&self, grace: Duration) -> bool {
        if !self.is_alive() {
            return true;
        }
        let group = Pid::from_raw(self.pid);
        let _ = killpg(group, Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if !self.is_alive() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if self.is_alive() {
            let _ = killpg(group, Signal::SIGKILL);
            // The kernel needs a moment to tear the group down.
            for _ in 0..40 {
                if !self.is_alive() {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(25));
            }
        }
        !self.is_alive()
    }

    /// Send one signal to this process only (not its group), after checking identity.
    pub fn signal(&self, signal: Signal) -> bool {
        self.is_alive() && kill(Pid::from_raw(self.pid), signal).is_ok()
    }
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

/// This machine's name, used in claims (`<host>:<pid>`).
pub fn hostname() -> String {
    nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_distinguishes_a_live_process_from_a_recycled_pid() {
        let me = ProcessId::current();
        assert!(me.is_alive());
        let impostor = ProcessId { pid: me.pid, start: me.start + 1 };
        assert!(!impostor.is_alive(), "same pid, different start time is another process");
    }

    #[test]
    fn terminate_group_kills_a_group_that_ignores_nothing_and_one_that_ignores_sigterm() {
        use std::os::unix::process::CommandExt;
        for script in ["sleep 30", "trap '' TERM; sleep 30 & wait; sleep 30"] {
            let mut child =
                std::process::Command::new("sh").args(["-c", script]).process_group(0).spawn().unwrap();
            let id = ProcessId::of(child.id() as i32).unwrap();
            assert!(id.terminate_group(Duration::from_millis(300)) || child.try_wait().unwrap().is_some());
            let status = child.wait().unwrap();
            assert!(!status.success(), "{script}: {status:?}");
        }
    }
}
