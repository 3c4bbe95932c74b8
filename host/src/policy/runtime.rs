//! The WebAssembly policy runtime: the one module that owns the wasmtime engine, the linker, the sandbox
//! and the per-world bindings.
//!
//! A policy is a component exporting one of the worlds in `wit/policy.wit`. It runs with no preopened
//! directories, no environment variables, no network, empty stdin, and stdout/stderr captured in memory
//! (and logged, capped). The wall clock reads the context's `now`; the monotonic clock never advances, and
//! a pollable on it is ready at once, so sleeping returns immediately: time does not pass inside a policy,
//! and with seeded randomness a policy is a deterministic function of its input. Every call gets a fuel
//! budget (CPU) and every instance a memory cap; running out of either is a trap, never a host crash.
//!
//! Compiled components are cached in memory per process and on disk under `<home>/cache/wasm`, keyed by
//! the component's sha256 and the engine's compatibility hash. The host deserializes only artifacts it
//! wrote itself: each carries a keyed digest (a per-home secret), checked before loading.

use super::plugins::PluginBytes;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasData, Linker, Resource, ResourceTable};
use wasmtime::{Config, Engine, ResourceLimiter, Store, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::p2::{DynPollable, Pollable};
use wasmtime_wasi::{HostWallClock, WasiCtx, WasiCtxView, WasiView};

use super::PolicyError;
use crate::model::PolicyKind;

/// Generated bindings, one module per world; all four share the `types` interface of the first.
pub mod bindings {
    pub mod guard {
        wasmtime::component::bindgen!({
            path: "../wit",
            world: "respawn-guard-policy",
            // `kanban plugin context` prints the record a policy gets, as JSON.
            additional_derives: [serde::Serialize, serde::Deserialize],
        });
    }
    pub mod diagnostics {
        wasmtime::component::bindgen!({
            path: "../wit",
            world: "diagnostics-policy",
            with: { "kanban:policy/types": super::guard::kanban::policy::types },
        });
    }
    pub mod routing {
        wasmtime::component::bindgen!({
            path: "../wit",
            world: "routing-policy",
            with: { "kanban:policy/types": super::guard::kanban::policy::types },
        });
    }
    pub mod decompose {
        wasmtime::component::bindgen!({
            path: "../wit",
            world: "decompose-policy",
            with: { "kanban:policy/types": super::guard::kanban::policy::types },
        });
    }
    pub use guard::kanban::policy::types;
}

/// The version of the WIT package this host implements.
pub const WIT_VERSION: (u64, u64, u64) = (0, 1, 0);
const WIT_PACKAGE: &str = "kanban:policy";

/// Default per-call fuel (roughly, wasm instructions) and per-instance memory.
pub const DEFAULT_FUEL: u64 = 200_000_000;
pub const DEFAULT_MEMORY_BYTES: usize = 64 << 20;
/// Most bytes of a plugin's stdout/stderr kept per call.
pub const OUTPUT_CAP: usize = 64 << 10;

/// Limits for one policy, from defaults or its `[[policies]]` entry.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub fuel: u64,
    pub memory_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { fuel: DEFAULT_FUEL, memory_bytes: DEFAULT_MEMORY_BYTES }
    }
}

/// What a component declares about itself, read from its exports without running it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentShape {
    pub kind: PolicyKind,
    /// The package version it was built against, e.g. "0.1.0".
    pub version: String,
}

/// Store data: the WASI context and everything the sandbox owns.
pub struct Sandbox {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: Tracked,
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
}

impl Sandbox {
    /// The largest size any linear memory of the instance has reached, in bytes.
    pub fn peak_memory(&self) -> usize {
        self.limits.peak
    }
}

/// The store's limits, remembering the largest linear memory they allowed (for `kanban plugin run`).
pub struct Tracked {
    limits: StoreLimits,
    peak: usize,
}

impl ResourceLimiter for Tracked {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.limits.memory_growing(current, desired, maximum)?;
        if allowed {
            self.peak = self.peak.max(desired);
        }
        Ok(allowed)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.limits.memory_grow_failed(error)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.limits.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}

impl WasiView for Sandbox {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// The sandbox's randomness: a ChaCha20 generator the host reseeds before every call from the plugin's
/// hash and the card being decided. A plugin that draws twice gets two different values, and the same
/// plugin on the same card draws the same sequence every time.
#[derive(Clone)]
pub struct SharedRng(Arc<std::sync::Mutex<chacha20::ChaCha20Rng>>);

impl Default for SharedRng {
    fn default() -> Self {
        use rand_core::SeedableRng;
        SharedRng(Arc::new(std::sync::Mutex::new(chacha20::ChaCha20Rng::from_seed([0; 32]))))
    }
}

impl SharedRng {
    /// Start the stream for `plugin_sha256` deciding `seed` (a card id; empty for calls about no card).
    pub fn reseed(&self, plugin_sha256: &str, seed: &str) {
        use rand_core::SeedableRng;
        let mut hasher = Sha256::new();
        hasher.update(plugin_sha256.as_bytes());
        hasher.update([0]);
        hasher.update(seed.as_bytes());
        let digest: [u8; 32] = hasher.finalize().into();
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = chacha20::ChaCha20Rng::from_seed(digest);
    }
}

impl rand_core::TryRng for SharedRng {
    type Error = std::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        use rand_core::Rng;
        Ok(self.0.lock().unwrap_or_else(|p| p.into_inner()).next_u32())
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        use rand_core::Rng;
        Ok(self.0.lock().unwrap_or_else(|p| p.into_inner()).next_u64())
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        use rand_core::Rng;
        self.0.lock().unwrap_or_else(|p| p.into_inner()).fill_bytes(dst);
        Ok(())
    }
}

/// The wall clock a policy sees: the context's `now`, set by the host before each call.
struct PinnedWallClock(Arc<AtomicI64>);

impl HostWallClock for PinnedWallClock {
    fn resolution(&self) -> std::time::Duration {
        std::time::Duration::from_secs(1)
    }
    fn now(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.0.load(Ordering::Relaxed).max(0) as u64)
    }
}

/// `wasi:clocks/monotonic-clock` for the sandbox: a clock that never advances, whose pollables are ready
/// at once. Replaces wasmtime-wasi's, which sleeps on the host's real clock.
struct FrozenMonotonic;

impl HasData for FrozenMonotonic {
    type Data<'a> = FrozenMonotonicView<'a>;
}

struct FrozenMonotonicView<'a> {
    table: &'a mut ResourceTable,
}

struct ReadyNow;

#[wasmtime_wasi::async_trait]
impl Pollable for ReadyNow {
    async fn ready(&mut self) {}
}

impl wasmtime_wasi::p2::bindings::clocks::monotonic_clock::Host for FrozenMonotonicView<'_> {
    fn now(&mut self) -> wasmtime::Result<u64> {
        Ok(0)
    }
    fn resolution(&mut self) -> wasmtime::Result<u64> {
        Ok(1)
    }
    fn subscribe_instant(&mut self, _when: u64) -> wasmtime::Result<Resource<DynPollable>> {
        let ready = self.table.push(ReadyNow)?;
        wasmtime_wasi::p2::subscribe(self.table, ready)
    }
    fn subscribe_duration(&mut self, _duration: u64) -> wasmtime::Result<Resource<DynPollable>> {
        let ready = self.table.push(ReadyNow)?;
        wasmtime_wasi::p2::subscribe(self.table, ready)
    }
}

/// The process-wide engine, linker and compiled-component cache. Created only by commands that run
/// policies: `show`, `heartbeat`, `complete` and the other card commands never build one.
pub struct PolicyEngine {
    engine: Engine,
    linker: Linker<Sandbox>,
    compiled: HashMap<String, Component>,
    /// How long compiling took, for the components this engine compiled itself (not found in the cache).
    compile_times: HashMap<String, std::time::Duration>,
    cache_dir: Option<PathBuf>,
}

/// Where a component came from when it was loaded: compiled now (and how long that took) or found in the
/// disk cache, and the size of its compiled artifact there.
#[derive(Debug, Clone, Copy)]
pub struct Compiled {
    pub compile_time: Option<std::time::Duration>,
    pub artifact_bytes: Option<u64>,
}

impl PolicyEngine {
    /// Build the engine. `cache_dir` enables the on-disk cache of compiled components.
    pub fn new(cache_dir: Option<PathBuf>) -> Result<PolicyEngine, PolicyError> {
        tracing::debug!("creating the wasmtime engine");
        let mut config = Config::new();
        config.consume_fuel(true);
        config.wasm_component_model(true);
        let engine = Engine::new(&config).map_err(|e| PolicyError::Engine(e.to_string()))?;
        let mut linker: Linker<Sandbox> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(|e| PolicyError::Engine(e.to_string()))?;
        linker.allow_shadowing(true);
        wasmtime_wasi::p2::bindings::clocks::monotonic_clock::add_to_linker::<Sandbox, FrozenMonotonic>(
            &mut linker,
            |s| FrozenMonotonicView { table: &mut s.table },
        )
        .map_err(|e| PolicyError::Engine(e.to_string()))?;
        linker.allow_shadowing(false);
        Ok(PolicyEngine {
            engine,
            linker,
            compiled: HashMap::new(),
            compile_times: HashMap::new(),
            cache_dir,
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Compile (or fetch from the caches) the component whose bytes hash to `sha256`.
    pub fn component(&mut self, sha256: &str, bytes: &PluginBytes) -> Result<Component, PolicyError> {
        if let Some(component) = self.compiled.get(sha256) {
            return Ok(component.clone());
        }
        let component = match self.load_cached(sha256) {
            Some(component) => component,
            None => {
                let bytes = bytes.read()?;
                let started = std::time::Instant::now();
                let component = Component::new(&self.engine, &*bytes).map_err(|e| PolicyError::Invalid {
                    detail: format!("not a loadable WebAssembly component: {e}"),
                })?;
                self.compile_times.insert(sha256.to_string(), started.elapsed());
                self.store_cached(sha256, &component);
                component
            }
        };
        self.compiled.insert(sha256.to_string(), component.clone());
        Ok(component)
    }

    /// How the component of `sha256` was loaded by this engine (see [`Compiled`]).
    pub fn compiled(&self, sha256: &str) -> Compiled {
        Compiled {
            compile_time: self.compile_times.get(sha256).copied(),
            artifact_bytes: self
                .artifact_paths(sha256)
                .and_then(|(artifact, _)| std::fs::metadata(artifact).ok())
                .map(|m| m.len()),
        }
    }

    fn artifact_paths(&self, sha256: &str) -> Option<(PathBuf, PathBuf)> {
        let dir = self.cache_dir.as_ref()?;
        let mut hasher = std::hash::DefaultHasher::new();
        std::hash::Hash::hash(&self.engine.precompile_compatibility_hash(), &mut hasher);
        let compat = std::hash::Hasher::finish(&hasher);
        let base = dir.join(format!("{sha256}-{compat:016x}"));
        Some((base.with_extension("cwasm"), base.with_extension("mac")))
    }

    /// The compiled artifact of `sha256` from the disk cache, if the host wrote it. Its `.mac` file holds
    /// the artifact's digest keyed with this home's secret and, once the file has settled, the artifact's
    /// [fingerprint](crate::digest::fingerprint) keyed the same way: while the file keeps that fingerprint
    /// it is mapped as it is, without reading and hashing its tens of megabytes again.
    fn load_cached(&self, sha256: &str) -> Option<Component> {
        let (artifact, mac_path) = self.artifact_paths(sha256)?;
        let mac = std::fs::read_to_string(&mac_path).ok()?;
        let key = cache_key(self.cache_dir.as_ref()?)?;
        let mut lines = mac.lines();
        let digest = lines.next()?.trim().to_string();
        let fingerprint = crate::digest::fingerprint(&artifact)?;
        let recorded = lines.next().and_then(|l| l.split_once(' '));
        if recorded.is_some_and(|(fp, sealed)| {
            fp == fingerprint.text && sealed == keyed_digest(&key, format!("{digest} {fp}").as_bytes())
        }) {
            // SAFETY: the file is the one whose bytes matched the keyed digest when the fingerprint was
            // sealed (same inode, size and change times, which any write would move), and the host never
            // writes an artifact in place (a new one is renamed over it), so the mapping stays valid.
            return unsafe { Component::deserialize_file(&self.engine, &artifact) }.ok();
        }
        let bytes = std::fs::read(&artifact).ok()?;
        if digest != keyed_digest(&key, &bytes) {
            tracing::warn!(path = %artifact.display(), "ignoring a compiled artifact the host did not write");
            return None;
        }
        if fingerprint.settled {
            seal(&mac_path, &key, &digest, &fingerprint.text);
        }
        // SAFETY: the bytes were produced by `Component::serialize` of this engine configuration (the
        // compatibility hash is in the file name) and carry a digest keyed with this home's secret, so they
        // are the host's own output, not input from a user.
        unsafe { Component::deserialize(&self.engine, &bytes) }.ok()
    }

    fn store_cached(&self, sha256: &str, component: &Component) {
        let Some((artifact, mac_path)) = self.artifact_paths(sha256) else { return };
        let Some(dir) = &self.cache_dir else { return };
        let write = || -> std::io::Result<()> {
            let key = cache_key(dir).ok_or_else(|| std::io::Error::other("no cache key"))?;
            let bytes = component.serialize().map_err(std::io::Error::other)?;
            let tmp = artifact.with_extension(format!("tmp.{}", std::process::id()));
            std::fs::write(&tmp, &bytes)?;
            std::fs::write(&mac_path, keyed_digest(&key, &bytes))?;
            std::fs::rename(&tmp, &artifact)
        };
        if let Err(e) = write() {
            tracing::debug!(error = %e, "could not cache a compiled component");
        }
    }

    /// Read what a component exports: which policy world, against which package version. Refuses a
    /// component that exports none of the worlds, or was built against an incompatible version.
    pub fn shape(&self, component: &Component) -> Result<ComponentShape, PolicyError> {
        let ty = component.component_type();
        let mut interfaces: Vec<(String, String)> = Vec::new();
        for (name, _) in ty.exports(&self.engine) {
            if let Some(rest) = name.strip_prefix(&format!("{WIT_PACKAGE}/")) {
                let (iface, version) = rest.split_once('@').unwrap_or((rest, ""));
                interfaces.push((iface.to_string(), version.to_string()));
            }
        }
        let kinds = [
            ("respawn-guard", PolicyKind::RespawnGuard),
            ("diagnostics", PolicyKind::Diagnostics),
            ("routing", PolicyKind::Routing),
            ("decompose", PolicyKind::Decompose),
        ];
        let found: Vec<&(String, String)> =
            interfaces.iter().filter(|(i, _)| kinds.iter().any(|(k, _)| k == i)).collect();
        let Some((iface, version)) = found.first().copied() else {
            let exported: Vec<String> = ty.exports(&self.engine).map(|(n, _)| n.to_string()).collect();
            return Err(PolicyError::WrongWorld {
                detail: format!(
                    "it exports none of the policy worlds of {WIT_PACKAGE} (respawn-guard, diagnostics, routing, \
                     decompose); its exports: {}",
                    if exported.is_empty() { "none".into() } else { exported.join(", ") }
                ),
            });
        };
        if found.len() > 1 {
            return Err(PolicyError::WrongWorld {
                detail: "it exports more than one policy interface".into(),
            });
        }
        if !interfaces.iter().any(|(i, _)| i == "plugin") {
            return Err(PolicyError::WrongWorld {
                detail: format!("it exports {iface} but not {WIT_PACKAGE}/plugin"),
            });
        }
        check_version(version)?;
        let kind = kinds.iter().find(|(k, _)| k == iface).map(|(_, kind)| *kind).expect("filtered above");
        Ok(ComponentShape { kind, version: version.clone() })
    }

    /// A fresh sandboxed store for one policy instance.
    pub fn new_store(&self, limits: Limits, clock: Arc<AtomicI64>, rng: SharedRng) -> Store<Sandbox> {
        let stdout = MemoryOutputPipe::new(OUTPUT_CAP);
        let stderr = MemoryOutputPipe::new(OUTPUT_CAP);
        let mut wasi = wasmtime_wasi::WasiCtxBuilder::new();
        // Nothing is inherited: no args, env, preopens, network or host stdio.
        wasi.stdout(stdout.clone())
            .stderr(stderr.clone())
            .wall_clock(PinnedWallClock(clock))
            .secure_random(rng.clone())
            .insecure_random(rng)
            .insecure_random_seed(0)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        let sandbox = Sandbox {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            // A component is several core module instances; these counts are summed over all of them.
            // What the toolchains need (measured; docs/plugins.md, "Other languages"):
            //
            // | toolchain                                        | core instances | tables | memories |
            // | Rust, wit-bindgen 0.63, wasm32-wasip2            | 3              | 2      | 1        |
            // | JavaScript, jco 1.34 / componentize-js 0.22      | 4              | 2      | 1        |
            // | Python, componentize-py 0.25.1                   | 14             | 2      | 1        |
            //
            // - instances 20: componentize-py links libc, libpython, three WASI emulation libraries and
            //   its runtime as separate modules, with its own glue, adapter and shim modules: 14. Each
            //   native extension module an app bundles is one more, so 20 leaves room for a few and no
            //   more. An instance by itself is cheap; what a plugin can take is bounded by the memories and
            //   tables below and by `memory_size`.
            // - tables 16, memories 4: unchanged; every toolchain above needs 2 and 1.
            // - memory_size: the policy's `memory_mib` (default 64 MiB) per memory. The largest initial
            //   heaps are componentize-py's snapshot of the initialised interpreter (12.3 MiB) and
            //   componentize-js's SpiderMonkey (9.1 MiB); neither grows while deciding.
            limits: Tracked {
                limits: StoreLimitsBuilder::new()
                    .memory_size(limits.memory_bytes)
                    .instances(20)
                    .tables(16)
                    .memories(4)
                    .trap_on_grow_failure(true)
                    .build(),
                peak: 0,
            },
            stdout,
            stderr,
        };
        let mut store = Store::new(&self.engine, sandbox);
        store.limiter(|s| &mut s.limits);
        store
    }

    pub fn linker(&self) -> &Linker<Sandbox> {
        &self.linker
    }
}

/// Everything the current instance has written to stdout and stderr so far (capped at [`OUTPUT_CAP`]).
pub fn output(store: &mut Store<Sandbox>) -> (String, String) {
    let data = store.data();
    (
        String::from_utf8_lossy(&data.stdout.contents()).into_owned(),
        String::from_utf8_lossy(&data.stderr.contents()).into_owned(),
    )
}

/// Turn a failed call into a typed error. `stderr` is what the plugin printed during the call (a Rust
/// guest prints its panic message there before trapping).
pub fn classify(err: wasmtime::Error, stderr: &str, limits: Limits) -> PolicyError {
    if let Some(trap) = err.downcast_ref::<wasmtime::Trap>()
        && *trap == wasmtime::Trap::OutOfFuel
    {
        return PolicyError::OutOfFuel { fuel: limits.fuel };
    }
    // The error's chain without the wasm backtrace, which goes to the debug log with everything past the
    // first line.
    let full = format!("{err:#}");
    let chain: Vec<String> = err
        .chain()
        .map(|cause| cause.to_string())
        .filter(|text| !text.starts_with("error while executing at wasm backtrace"))
        .collect();
    tracing::debug!(error = %full, "policy call failed");
    let detail = first_line(&chain.join(": "));
    if let Some(at) = stderr.find("panicked at") {
        // "thread '<unnamed>' panicked at src/lib.rs:10:5:\nthe message"
        let after = &stderr[at..];
        let message = after.split_once('\n').map(|(_, m)| m).unwrap_or(after);
        // The first line is the message; the rest (a backtrace hint, a traceback) goes to the debug log.
        let message = first_line(message);
        return PolicyError::Panic { message };
    }
    let lower = full.to_lowercase();
    if lower.contains("forcing trap when growing memory")
        || lower.contains("forcing a memory growth failure")
        || lower.contains("memory allocation of")
        || stderr.contains("memory allocation of")
        || lower.contains("exceeds memory limits")
    {
        return PolicyError::Memory { limit: limits.memory_bytes };
    }
    PolicyError::Trap { detail }
}

/// Is a plugin built against `version` loadable by this host? Same major; for 0.x, also the same minor.
pub fn check_version(version: &str) -> Result<(), PolicyError> {
    let host = format!("{}.{}.{}", WIT_VERSION.0, WIT_VERSION.1, WIT_VERSION.2);
    let parts: Vec<u64> = version
        .split('.')
        .map(|p| p.split(['-', '+']).next().unwrap_or(p))
        .filter_map(|p| p.parse().ok())
        .collect();
    let compatible = match parts.as_slice() {
        [major, minor, _patch] => *major == WIT_VERSION.0 && (*major > 0 || *minor == WIT_VERSION.1),
        _ => false,
    };
    if compatible {
        Ok(())
    } else {
        Err(PolicyError::Incompatible { plugin_version: version.to_string(), host_version: host })
    }
}

fn cache_key(dir: &Path) -> Option<Vec<u8>> {
    let path = dir.join("key");
    if let Ok(key) = std::fs::read(&path)
        && key.len() == 32
    {
        return Some(key);
    }
    std::fs::create_dir_all(dir).ok()?;
    let mut key = vec![0u8; 32];
    getrandom::fill(&mut key).ok()?;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path).ok();
    match file.as_mut() {
        Some(f) => {
            std::io::Write::write_all(f, &key).ok()?;
            Some(key)
        }
        // Another process created it first: use theirs.
        None => std::fs::read(&path).ok().filter(|k| k.len() == 32),
    }
}

/// sha256(key || sha256(bytes) || key): a digest only a holder of the key can produce.
/// Rewrite an artifact's `.mac` file with its fingerprint sealed beside its digest (best effort: without
/// it the next load reads and checks the artifact in full).
fn seal(mac_path: &Path, key: &[u8], digest: &str, fingerprint: &str) {
    let sealed = keyed_digest(key, format!("{digest} {fingerprint}").as_bytes());
    let text = format!("{digest}\n{fingerprint} {sealed}\n");
    if let Err(e) = crate::board::write_atomic(mac_path, text.as_bytes()) {
        tracing::debug!(error = %e, "could not seal a compiled artifact's fingerprint");
    }
}

fn keyed_digest(key: &[u8], bytes: &[u8]) -> String {
    let inner = Sha256::digest(bytes);
    let mut outer = Sha256::new();
    outer.update(key);
    outer.update(inner);
    outer.update(key);
    hex::encode(outer.finalize())
}

/// The first line of an error chain; the rest (a wasm backtrace, "run with RUST_BACKTRACE=1") goes to the
/// debug log only.
pub(crate) fn first_line(detail: &str) -> String {
    let mut lines = detail.lines().filter(|l| !l.trim().is_empty());
    let first = lines.next().unwrap_or_default().trim().to_string();
    let rest: Vec<&str> = lines.collect();
    if !rest.is_empty() {
        tracing::debug!(detail = %rest.join("\n"), "policy error detail");
    }
    first.chars().take(2000).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_rule() {
        assert!(check_version("0.1.0").is_ok());
        assert!(check_version("0.1.7").is_ok());
        let err = check_version("0.2.0").unwrap_err().to_string();
        assert!(err.contains("0.2.0") && err.contains("0.1.0"), "{err}");
        assert!(check_version("1.0.0").is_err());
        assert!(check_version("").is_err());
    }
}
