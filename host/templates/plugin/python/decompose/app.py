"""{{name}}: the component's exports, built with componentize-py against wit/policy.wit.

componentize-py generates the `wit_world` package (the WIT types as dataclasses and one Protocol per exported
interface) while it builds, and looks in this module for classes named after the exported interfaces:
`Plugin` for `kanban:policy/plugin` and `Decompose` for `kanban:policy/decompose`. The rule lives in
policy.py, which has no WIT imports so it can be unit-tested with plain Python.
"""

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.decompose import Child, Plan, Plan_Children, Plan_Leave
from wit_world.imports.types import Context, PluginInfo, PolicyKind

import policy

VERSION = "0.1.0"


class Plugin(exports.Plugin):
    def describe(self) -> PluginInfo:
        return PluginInfo(name="{{name}}", version=VERSION, kind=PolicyKind.DECOMPOSE)

    def validate_config(self, config: str) -> None:
        # A WIT `result<_, string>` is returned by raising Err(message) for the error case.
        try:
            policy.parse_config(config)
        except policy.ConfigError as err:
            raise Err(str(err))


class Decompose(exports.Decompose):
    def decompose(self, ctx: Context) -> Plan:
        # The host validated the config at `board check` and when it loaded the board. If it is bad anyway,
        # the exception traps the call: the host records a policy error and the card stays in triage.
        settings = policy.parse_config(ctx.config)
        card = ctx.card
        plan = policy.decompose(settings, card.id, card.title, card.body, card.priority)
        if isinstance(plan, str):
            return Plan_Leave(plan)
        return Plan_Children(
            [
                Child(
                    title=c["title"],
                    body=c["body"],
                    assignee=c["assignee"],
                    priority=c["priority"],
                    workspace=None,
                    depends_on=c["depends_on"],
                )
                for c in plan
            ]
        )
