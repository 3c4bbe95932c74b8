"""{{name}}: the component's exports, built with componentize-py against wit/policy.wit.

componentize-py generates the `wit_world` package (the WIT types as dataclasses and one Protocol per exported
interface) while it builds, and looks in this module for classes named after the exported interfaces:
`Plugin` for `kanban:policy/plugin` and `Diagnostics` for `kanban:policy/diagnostics`. The rule lives in
policy.py, which has no WIT imports so it can be unit-tested with plain Python.
"""

from typing import List

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.diagnostics import Finding, Severity
from wit_world.imports.types import Context, PluginInfo, PolicyKind

import policy

VERSION = "0.1.0"


class Plugin(exports.Plugin):
    def describe(self) -> PluginInfo:
        return PluginInfo(name="{{name}}", version=VERSION, kind=PolicyKind.DIAGNOSTICS)

    def validate_config(self, config: str) -> None:
        # A WIT `result<_, string>` is returned by raising Err(message) for the error case.
        try:
            policy.parse_config(config)
        except policy.ConfigError as err:
            raise Err(str(err))


class Diagnostics(exports.Diagnostics):
    def diagnose(self, ctx: Context) -> List[Finding]:
        # The host validated the config at `board check` and when it loaded the board. If it is bad anyway,
        # the exception traps the call: the host reports it as an error finding naming the plugin.
        settings = policy.parse_config(ctx.config)
        card = ctx.card
        return [
            Finding(
                rule=f["rule"],
                severity=Severity[f["severity"].upper()],
                title=f["title"],
                detail=f["detail"],
                actions=f["actions"],
            )
            for f in policy.diagnose(settings, card.id, card.status, card.body)
        ]
