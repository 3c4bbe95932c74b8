//! `board.toml`: typed, validated board configuration.
//!
//! Parsed with `deny_unknown_fields` everywhere, so a misspelt key is an error naming it, then checked for
//! values serde cannot judge (an empty command, a relative path). Each policy's `config` table is kept as
//! data here; its plugin validates it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::{BUILTIN_POLICIES, OnError, PolicyKind};

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BoardConfig {
    #[serde(default)]
    pub board: BoardSection,
    #[serde(default)]
    pub dispatch: DispatchConfig,
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
    #[serde(default)]
    pub goal: GoalConfig,
    #[serde(default)]
    pub policies: Vec<PolicySpec>,
    #[serde(default)]
    pub review: ReviewConfig,
    /// `[[notify]]`: where to deliver events of chosen kinds.
    #[serde(default)]
    pub notify: Vec<NotifySpec>,
}

/// One `[[notify]]` entry: events of the kinds in `on` are delivered to a webhook (an HTTP POST of a
/// signed JSON payload) or a command (the payload on its stdin), at least once, from the board's outbox.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NotifySpec {
    pub on: Vec<String>,
    pub webhook: Option<String>,
    pub command: Option<Vec<String>>,
    #[serde(default = "default_notify_timeout")]
    pub timeout_seconds: i64,
    #[serde(default = "default_notify_attempts")]
    pub max_attempts: i64,
}

fn default_notify_timeout() -> i64 {
    10
}

fn default_notify_attempts() -> i64 {
    8
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ReviewConfig {
    /// The profile that reviews cards sent to review without `--reviewer`. Unset: such cards wait in the
    /// review lane for a person (`kanban complete` approves, `kanban request-changes` sends back).
    pub reviewer: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BoardSection {
    pub name: Option<String>,
    /// Inherited by `dir` and `worktree` cards only, never by scratch.
    pub default_workdir: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DispatchConfig {
    /// Breaker limit unless a card sets `--max-retries`.
    pub failure_limit: i64,
    pub max_in_progress: u32,
    pub max_in_progress_per_profile: Option<u32>,
    pub claim_ttl_seconds: i64,
    pub crash_grace_seconds: i64,
    pub heartbeat_stale_seconds: i64,
    /// 0 turns the stale-running requeue off.
    pub stale_timeout_seconds: i64,
    pub protocol_violation_limit: i64,
    /// Requeues of a silent (wedged) worker in a row before the breaker trips.
    pub stale_reclaim_limit: i64,
    /// Seconds between SIGTERM and SIGKILL when a worker is stopped.
    pub kill_grace_seconds: i64,
}

impl DispatchConfig {
    /// The breaker's limits.
    pub fn limits(&self) -> crate::breaker::BreakerLimits {
        crate::breaker::BreakerLimits {
            board_failure_limit: self.failure_limit,
            protocol_violation_limit: self.protocol_violation_limit,
            stale_reclaim_limit: self.stale_reclaim_limit,
        }
    }
}

impl Default for DispatchConfig {
    fn default() -> Self {
        DispatchConfig {
            failure_limit: crate::breaker::DEFAULT_FAILURE_LIMIT,
            max_in_progress: 8,
            max_in_progress_per_profile: None,
            claim_ttl_seconds: 900,
            crash_grace_seconds: 30,
            heartbeat_stale_seconds: 3600,
            stale_timeout_seconds: 14_400,
            protocol_violation_limit: 3,
            stale_reclaim_limit: 3,
            kill_grace_seconds: 5,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// argv of the worker, run in the card's workspace.
    pub command: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Overrides `dispatch.max_in_progress_per_profile` for this profile.
    pub max_in_progress: Option<u32>,
    /// Labels a host must have (its `[host] labels` in `<home>/config.toml`) to run this profile's cards.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requires: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GoalConfig {
    pub judge: Option<Vec<String>>,
    pub max_turns: i64,
    /// How long the judge may take to rule on one turn; past it the card is blocked, saying so.
    pub judge_timeout_seconds: i64,
}

impl Default for GoalConfig {
    fn default() -> Self {
        GoalConfig { judge: None, max_turns: 20, judge_timeout_seconds: 600 }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PolicySpec {
    pub kind: PolicyKind,
    /// `builtin:NAME`, an installed plugin's name, or `sha256:HEX`.
    pub plugin: String,
    /// Handed to the plugin as a JSON object; the plugin validates it (`validate-config`).
    #[serde(default)]
    pub config: toml::Table,
    /// Fuel per call (roughly, wasm instructions); the default is generous, a board may tighten it.
    pub fuel: Option<u64>,
    /// Memory cap per instance, in MiB (default 64).
    pub memory_mib: Option<u32>,
    /// Respawn guards only: what a failing guard means, `"allow"` (default) or `"defer"` (fail closed).
    pub on_error: Option<String>,
}

impl PolicySpec {
    /// What a failure of this policy means (validated at parse time: allow unless it says defer).
    pub fn on_error(&self) -> OnError {
        self.on_error.as_deref().and_then(OnError::parse).unwrap_or(OnError::Allow)
    }
}

/// A `board.toml` problem, naming the file and the key at fault.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigError {
    pub path: PathBuf,
    pub message: String,
}

/// `<home>/config.toml`: what belongs to this host (its home) rather than to a board.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HomeConfig {
    pub host: HostConfig,
    /// This host's own command for a profile of any board (`[profiles.NAME]`): it replaces the board's
    /// `command` on this host, and its `env` is laid over the board's. The board still defines the profile
    /// (its caps and `requires`); a host only says how it runs it.
    pub profiles: BTreeMap<String, HostProfile>,
}

/// `[profiles.NAME]` in `<home>/config.toml`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HostProfile {
    pub command: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

/// `[host]`: this host's place among the hosts working a board.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HostConfig {
    /// What this host offers (`gpu`, `macos`): a profile that `requires` labels runs only on hosts with all
    /// of them.
    pub labels: Vec<String>,
    /// The most workers this host runs at once, over all the boards of its home (none: no host cap; the
    /// boards' own caps still hold).
    pub max_workers: Option<u32>,
}

impl HomeConfig {
    /// Parse and validate the text of a `<home>/config.toml` read from `path` (used in messages).
    pub fn parse(text: &str, path: &Path) -> Result<HomeConfig, ConfigError> {
        let fail = |message: String| ConfigError { path: path.to_path_buf(), message };
        let mut config: HomeConfig =
            toml::from_str(text).map_err(|e| fail(e.to_string().trim_end().to_string()))?;
        if let Some(bad) = config.host.labels.iter().find(|l| !is_valid_label(l)) {
            return Err(fail(format!("host.labels: '{bad}' is not a label ({LABEL_RULE})")));
        }
        if config.host.max_workers == Some(0) {
            return Err(fail("host.max_workers: must be at least 1".into()));
        }
        for (name, profile) in &config.profiles {
            check_command(name, &profile.command).map_err(fail)?;
        }
        config.host.labels.sort();
        config.host.labels.dedup();
        Ok(config)
    }
}

/// A profile's `command` (in `board.toml` or a host's `config.toml`) must name a program.
fn check_command(profile: &str, command: &[String]) -> Result<(), String> {
    match command.first() {
        Some(program) if !program.trim().is_empty() => Ok(()),
        _ => Err(format!(
            "profiles.{profile}.command: must name a program, e.g. [\"bash\", \"/abs/worker.sh\"]"
        )),
    }
}

/// What a host label may be.
pub const LABEL_RULE: &str = "1-64 of a-z, 0-9, '-', '_' and '.', starting with a letter or digit";

/// A host label (`gpu`, `macos`, `arm64`, `region.eu`): see [`LABEL_RULE`].
pub fn is_valid_label(label: &str) -> bool {
    let bytes = label.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 64
        && bytes[0].is_ascii_alphanumeric()
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(b))
}

impl BoardConfig {
    /// Parse and validate the text of a `board.toml` read from `path` (used in messages).
    pub fn parse(text: &str, path: &Path) -> Result<BoardConfig, ConfigError> {
        let config: BoardConfig = toml::from_str(text).map_err(|e| ConfigError {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        config.validate().map_err(|message| ConfigError { path: path.to_path_buf(), message })?;
        Ok(config)
    }

    /// Checks serde cannot express. Each message starts with the dotted key at fault.
    fn validate(&self) -> Result<(), String> {
        if let Some(dir) = &self.board.default_workdir
            && !dir.is_absolute()
        {
            return Err(format!("board.default_workdir: must be an absolute path, got '{}'", dir.display()));
        }
        let d = &self.dispatch;
        let positive = [
            ("dispatch.failure_limit", d.failure_limit),
            ("dispatch.max_in_progress", i64::from(d.max_in_progress)),
            ("dispatch.claim_ttl_seconds", d.claim_ttl_seconds),
            ("dispatch.heartbeat_stale_seconds", d.heartbeat_stale_seconds),
            ("dispatch.protocol_violation_limit", d.protocol_violation_limit),
            ("dispatch.stale_reclaim_limit", d.stale_reclaim_limit),
            ("goal.max_turns", self.goal.max_turns),
            ("goal.judge_timeout_seconds", self.goal.judge_timeout_seconds),
        ];
        for (key, value) in positive {
            if value < 1 {
                return Err(format!("{key}: must be at least 1, got {value}"));
            }
        }
        for (key, value) in [
            ("dispatch.crash_grace_seconds", d.crash_grace_seconds),
            ("dispatch.stale_timeout_seconds", d.stale_timeout_seconds),
            ("dispatch.kill_grace_seconds", d.kill_grace_seconds),
        ] {
            if value < 0 {
                return Err(format!("{key}: must not be negative, got {value}"));
            }
        }
        for (key, value) in [
            ("dispatch.claim_ttl_seconds", d.claim_ttl_seconds),
            ("dispatch.heartbeat_stale_seconds", d.heartbeat_stale_seconds),
            ("dispatch.crash_grace_seconds", d.crash_grace_seconds),
            ("dispatch.stale_timeout_seconds", d.stale_timeout_seconds),
            ("dispatch.kill_grace_seconds", d.kill_grace_seconds),
            ("goal.judge_timeout_seconds", self.goal.judge_timeout_seconds),
        ] {
            if value > crate::clock::MAX_DURATION_SECONDS {
                return Err(format!(
                    "{key}: must be at most {} (100 years), got {value}",
                    crate::clock::MAX_DURATION_SECONDS
                ));
            }
        }
        if d.max_in_progress_per_profile == Some(0) {
            return Err("dispatch.max_in_progress_per_profile: must be at least 1".into());
        }
        for (name, profile) in &self.profiles {
            if !crate::board::is_valid_slug(name) {
                return Err(format!(
                    "profiles.{name}: profile names use lowercase letters, digits, '-' and '_' (and start with a letter or digit)"
                ));
            }
            check_command(name, &profile.command)?;
            if profile.max_in_progress == Some(0) {
                return Err(format!("profiles.{name}.max_in_progress: must be at least 1"));
            }
            if let Some(bad) = profile.requires.iter().find(|l| !is_valid_label(l)) {
                return Err(format!("profiles.{name}.requires: '{bad}' is not a label ({LABEL_RULE})"));
            }
        }
        if let Some(judge) = &self.goal.judge
            && (judge.is_empty() || judge[0].trim().is_empty())
        {
            return Err("goal.judge: must name a program".into());
        }
        if let Some(reviewer) = &self.review.reviewer
            && !crate::board::is_valid_slug(reviewer)
        {
            return Err(format!("review.reviewer: '{reviewer}' is not a profile name"));
        }
        for (i, policy) in self.policies.iter().enumerate() {
            validate_plugin_ref(&policy.plugin).map_err(|m| format!("policies[{i}].plugin: {m}"))?;
            if policy.fuel == Some(0) {
                return Err(format!("policies[{i}].fuel: must be at least 1"));
            }
            if let Some(mib) = policy.memory_mib
                && !(1..=4096).contains(&mib)
            {
                return Err(format!("policies[{i}].memory_mib: must be between 1 and 4096, got {mib}"));
            }
            match (policy.on_error.as_deref(), policy.kind) {
                (None, _) => {}
                (Some(v), PolicyKind::RespawnGuard) if OnError::parse(v).is_some() => {}
                (Some(_), PolicyKind::RespawnGuard) => {
                    return Err(format!("policies[{i}].on_error: must be \"allow\" or \"defer\""));
                }
                (Some(_), _) => {
                    return Err(format!("policies[{i}].on_error: only respawn-guard policies take on_error"));
                }
            }
        }
        for (i, notify) in self.notify.iter().enumerate() {
            if notify.on.is_empty() {
                return Err(format!("notify[{i}].on: must list at least one event kind"));
            }
            if let Some(kind) = notify.on.iter().find(|k| crate::model::EventKind::parse(k).is_none()) {
                return Err(format!("notify[{i}].on: '{kind}' is not an event kind (see `kanban events`)"));
            }
            match (&notify.webhook, &notify.command) {
                (Some(url), None) => {
                    if !(url.starts_with("http://") || url.starts_with("https://")) {
                        return Err(format!(
                            "notify[{i}].webhook: must be an http:// or https:// URL, got '{url}'"
                        ));
                    }
                }
                (None, Some(command)) => {
                    if command.is_empty() || command[0].trim().is_empty() {
                        return Err(format!("notify[{i}].command: must name a program"));
                    }
                }
                _ => return Err(format!("notify[{i}]: set exactly one of webhook and command")),
            }
            if !(1..=300).contains(&notify.timeout_seconds) {
                return Err(format!(
                    "notify[{i}].timeout_seconds: must be between 1 and 300, got {}",
                    notify.timeout_seconds
                ));
            }
            if !(1..=100).contains(&notify.max_attempts) {
                return Err(format!(
                    "notify[{i}].max_attempts: must be between 1 and 100, got {}",
                    notify.max_attempts
                ));
            }
        }
        Ok(())
    }

    pub fn profile_names(&self) -> Vec<&str> {
        self.profiles.keys().map(String::as_str).collect()
    }
}

fn validate_plugin_ref(plugin: &str) -> Result<(), String> {
    if let Some(hex) = plugin.strip_prefix("sha256:") {
        if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
            return Ok(());
        }
        return Err(format!("'{plugin}' is not sha256: followed by 64 lowercase hex digits"));
    }
    if let Some(name) = plugin.strip_prefix("builtin:") {
        let known: Vec<&str> = BUILTIN_POLICIES.iter().map(|(n, _)| *n).collect();
        if !known.contains(&name) {
            return Err(format!(
                "'{plugin}' is not a built-in plugin (built in: {})",
                known.iter().map(|n| format!("builtin:{n}")).collect::<Vec<_>>().join(", ")
            ));
        }
        return Ok(());
    }
    let name = plugin;
    if crate::board::is_valid_slug(name) {
        Ok(())
    } else {
        Err(format!("'{plugin}' is not builtin:NAME, an installed plugin name, or sha256:HEX"))
    }
}

/// The `board.toml` written for a new board: every key, commented, with its default. Prose lines start with
/// `##`, examples with `# `, so uncommenting every example gives a valid file (tested).
pub fn template(name: &str, default_workdir: Option<&Path>) -> String {
    let workdir = match default_workdir {
        Some(dir) => format!("default_workdir = {}", toml::Value::String(dir.display().to_string())),
        None => {
            "# default_workdir = \"/abs/path\"   # inherited by dir/worktree cards only, never by scratch"
                .into()
        }
    };
    format!(
        r#"## board.toml: this board's configuration. Every key is shown, with its default where it has one;
## uncomment to change.
## Unknown keys are errors. Check the file with `kanban board check`. Reference: docs/board-toml.md.

[board]
name = {name}
{workdir}

[dispatch]
# failure_limit = 2                   # circuit-breaker limit unless a card sets --max-retries
# max_in_progress = 8                 # running cards on this board
# max_in_progress_per_profile = 2     # optional cap per profile (default: none)
# claim_ttl_seconds = 900             # a heartbeat extends the claim by this much
# crash_grace_seconds = 30            # a worker younger than this is never called crashed
# heartbeat_stale_seconds = 3600      # a live worker silent this long is reclaimed
# stale_timeout_seconds = 14400       # requeue running cards with no heartbeat (0 = off)
# protocol_violation_limit = 3        # exits 0 without complete/block in a row before the breaker trips
# stale_reclaim_limit = 3             # requeues of a silent (wedged) worker in a row before it trips
# kill_grace_seconds = 5              # SIGTERM, then SIGKILL after this long, when a worker is stopped

## An assignee is a profile of the board: the command a worker runs, in the card's workspace.
# [profiles.coder]
# command = ["bash", "/abs/worker.sh"]
# env = {{ KEY = "value" }}
# max_in_progress = 1                 # overrides max_in_progress_per_profile
# requires = ["gpu"]                  # only hosts with these labels run it ([host] in <home>/config.toml)

# [goal]
# judge = ["/abs/judge"]              # required for --goal cards
# max_turns = 20
# judge_timeout_seconds = 600         # a judge slower than this blocks the card, saying so

## Cards sent to review (`kanban review`) are dispatched to their reviewer profile.
# [review]
# reviewer = "reviewer"               # default reviewer profile (unset: a person reviews)

## Policies are WebAssembly plugins. With no [[policies]] the built-in respawn guard and diagnostics run
## with their defaults.
# [[policies]]
# kind = "respawn-guard"              # respawn-guard | diagnostics | routing | decompose
# plugin = "builtin:respawn-guard"    # builtin:NAME, an installed plugin's name, or sha256:HEX
# [policies.config]
# rate_limit_cooldown_seconds = 300

## Notifications: events of these kinds go to a webhook (signed POST) or a command (payload on stdin).
# [[notify]]
# on = ["gave_up", "blocked", "review_requested"]
# webhook = "https://hooks.example.com/kanban"   # or: command = ["/abs/notify.sh"]
# timeout_seconds = 10
# max_attempts = 8
"#,
        name = toml::Value::String(name.to_string()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<BoardConfig, String> {
        BoardConfig::parse(text, Path::new("board.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn the_template_parses_to_the_defaults() {
        let config = parse(&template("Demo", None)).unwrap();
        assert_eq!(config.dispatch, DispatchConfig::default());
        assert_eq!(config.board.name.as_deref(), Some("Demo"));
        // Uncommenting every example line must still give a valid file.
        let uncommented: String = template("Demo", Some(Path::new("/srv")))
            .lines()
            .map(|l| l.strip_prefix("# ").unwrap_or(l))
            .map(|l| format!("{l}\n"))
            .collect();
        parse(&uncommented).unwrap();
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            ("[dispatch]\nmax_in_progres = 3\n", "max_in_progres"),
            ("[dispatch]\nfailure_limit = \"x\"\n", "failure_limit"),
            ("[dispatch]\nfailure_limit = 0\n", "dispatch.failure_limit"),
            ("[board]\ndefault_workdir = \"rel\"\n", "board.default_workdir"),
            ("[profiles.coder]\ncommand = []\n", "profiles.coder.command"),
            ("[profiles.Bad]\ncommand = [\"x\"]\n", "profiles.Bad"),
            ("[[policies]]\nkind = \"routing\"\nplugin = \"sha256:zz\"\n", "policies[0].plugin"),
            ("[[policies]]\nkind = \"nope\"\nplugin = \"builtin:x\"\n", "kind"),
            ("[surprise]\n", "surprise"),
        ];
        for (text, key) in cases {
            let err = parse(text).unwrap_err();
            assert!(err.contains(key), "{text:?}: {err}");
        }
    }
}
