"""The rule of {{name}}, a decompose policy, in plain Python.

Nothing here knows about WebAssembly or the WIT bindings, so `python3 -m unittest` runs it on your machine;
app.py is the thin layer the host calls through. The policy makes a child card of every open checklist line of
the body (`- [ ] write the migration`); ticked lines (`- [x] ...`) are done already and skipped. A body
without open items leaves the card in triage. Change `decompose` to make the rule yours.
"""

import json

KNOWN_KEYS = ("assignee", "sequential")


class ConfigError(ValueError):
    """A config the policy cannot use. The message starts with the key at fault: `config.<key>: ...`."""


class Settings:
    def __init__(self, assignee, sequential):
        self.assignee = assignee  # profile, or None
        self.sequential = sequential


def parse_config(text):
    """Parse and check the board's `[policies.config]` table (a JSON object). Raises ConfigError."""
    try:
        table = json.loads(text) if text.strip() else {}
    except ValueError as err:
        raise ConfigError("config: not valid JSON: %s" % err)
    if not isinstance(table, dict):
        raise ConfigError("config: must be a table")
    for key in table:
        if key not in KNOWN_KEYS:
            raise ConfigError("config.%s: unknown key (known: %s)" % (key, ", ".join(KNOWN_KEYS)))
    assignee = table.get("assignee")
    if assignee is not None and not (isinstance(assignee, str) and assignee.strip()):
        raise ConfigError("config.assignee: must be a profile name, got %s" % json.dumps(assignee))
    sequential = table.get("sequential", False)
    if not isinstance(sequential, bool):
        raise ConfigError("config.sequential: must be true or false, got %s" % json.dumps(sequential))
    return Settings(assignee.strip() if assignee is not None else None, sequential)


def open_item(line):
    """The text of an open checklist line (`- [ ] text` or `* [ ] text`), or None."""
    line = line.lstrip()
    for mark in ("- [ ]", "* [ ]"):
        if line.startswith(mark):
            return line[len(mark) :].strip() or None
    return None


def decompose(settings, card_id, title, body, priority):
    """A list of children (dicts with the fields of the WIT `child` record), or a string: why the card stays
    in triage."""
    items = [item for item in map(open_item, body.splitlines()) if item is not None]
    if not items:
        return 'no open checklist items ("- [ ] ...") in the body'
    return [
        {
            "title": item,
            "body": "Part of %s: %s" % (card_id, title),
            "assignee": settings.assignee,
            "priority": priority,
            # Indexes into this list: the child before this one.
            "depends_on": [i - 1] if settings.sequential and i > 0 else [],
        }
        for i, item in enumerate(items)
    ]
