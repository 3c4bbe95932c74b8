"""A respawn guard in Python (componentize-py) that misbehaves on purpose, so the host's tests can check
that the sandbox holds for a CPython guest too.

Config: {"mode": M} (missing means "allow"), M one of:
- "allow": allow;
- "loop": spin forever (needs the fuel limit);
- "alloc": allocate and touch 1 MiB chunks forever (needs the memory limit);
- "raise": raise an exception (a trap; the traceback goes to stderr).
"""

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.respawn_guard import Decision, Decision_Allow
from wit_world.imports.types import Context, PluginInfo, PolicyKind

import json

MODES = ("allow", "loop", "alloc", "raise")


def mode(config):
    table = json.loads(config)
    for key in table:
        if key != "mode":
            raise ValueError("config.%s: unknown key (known: mode)" % key)
    value = table.get("mode", "allow")
    if value not in MODES:
        raise ValueError("config.mode: must be one of %s, got %r" % (", ".join(MODES), value))
    return value


class Plugin(exports.Plugin):
    def describe(self) -> PluginInfo:
        return PluginInfo(name="hostile-py", version="0.1.0", kind=PolicyKind.RESPAWN_GUARD)

    def validate_config(self, config: str) -> None:
        try:
            mode(config)
        except ValueError as err:
            raise Err(str(err))


class RespawnGuard(exports.RespawnGuard):
    def decide(self, ctx: Context) -> Decision:
        m = mode(ctx.config)
        if m == "loop":
            counter = 0
            while True:
                counter += 1
        if m == "alloc":
            hoard = []
            while True:
                chunk = bytearray(1 << 20)
                for i in range(0, len(chunk), 4096):
                    chunk[i] = 1
                hoard.append(chunk)
        if m == "raise":
            raise RuntimeError("hostile plugin raised on purpose")
        return Decision_Allow()
