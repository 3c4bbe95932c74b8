"""{{name}}: the component's exports, built with componentize-py against wit/policy.wit.

componentize-py generates the `wit_world` package (the WIT types as dataclasses and one Protocol per exported
interface) while it builds, and looks in this module for classes named after the exported interfaces:
`Plugin` for `kanban:policy/plugin` and `RespawnGuard` for `kanban:policy/respawn-guard`. The rule lives in
policy.py, which has no WIT imports so it can be unit-tested with plain Python.
"""

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.respawn_guard import Decision, Decision_Allow, Decision_Defer, Deferral
from wit_world.imports.types import Context, PluginInfo, PolicyKind

import policy

VERSION = "0.1.0"


class Plugin(exports.Plugin):
    def describe(self) -> PluginInfo:
        return PluginInfo(name="{{name}}", version=VERSION, kind=PolicyKind.RESPAWN_GUARD)

    def validate_config(self, config: str) -> None:
        # A WIT `result<_, string>` is returned by raising Err(message) for the error case.
        try:
            policy.parse_config(config)
        except policy.ConfigError as err:
            raise Err(str(err))


class RespawnGuard(exports.RespawnGuard):
    def decide(self, ctx: Context) -> Decision:
        # The host validated the config at `board check` and when it loaded the board. If it is bad anyway,
        # the exception traps the call: the host records a policy error and applies the guard's safe default.
        settings = policy.parse_config(ctx.config)
        verdict = policy.decide(settings, ctx.card.title, ctx.now)
        if verdict is None:
            return Decision_Allow()
        reason, retry_after = verdict
        return Decision_Defer(Deferral(reason=reason, retry_after=retry_after))
