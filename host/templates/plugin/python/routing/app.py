"""{{name}}: the component's exports, built with componentize-py against wit/policy.wit.

componentize-py generates the `wit_world` package (the WIT types as dataclasses and one Protocol per exported
interface) while it builds, and looks in this module for classes named after the exported interfaces:
`Plugin` for `kanban:policy/plugin` and `Routing` for `kanban:policy/routing`. The rule lives in policy.py,
which has no WIT imports so it can be unit-tested with plain Python.
"""

from typing import Optional

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports.types import Context, PluginInfo, PolicyKind

import policy

VERSION = "0.1.0"


class Plugin(exports.Plugin):
    def describe(self) -> PluginInfo:
        return PluginInfo(name="{{name}}", version=VERSION, kind=PolicyKind.ROUTING)

    def validate_config(self, config: str) -> None:
        # A WIT `result<_, string>` is returned by raising Err(message) for the error case.
        try:
            policy.parse_config(config)
        except policy.ConfigError as err:
            raise Err(str(err))


class Routing(exports.Routing):
    def route(self, ctx: Context) -> Optional[str]:
        # The host validated the config at `board check` and when it loaded the board. If it is bad anyway,
        # the exception traps the call: the host records a policy error and leaves the card unassigned. A
        # profile the board does not have is refused by the host as a bad_output error naming it.
        settings = policy.parse_config(ctx.config)
        return policy.route(settings, ctx.card.title)
