"""The rule of {{name}}, a respawn guard, in plain Python.

Nothing here knows about WebAssembly or the WIT bindings, so `python3 -m unittest` runs it on your machine;
app.py is the thin layer the host calls through. The guard answers "not now" for a card whose title contains
a marker (`[hold]` by default). Change `decide` to make the rule yours.
"""

import json

KNOWN_KEYS = ("marker", "retry_after_seconds")


class ConfigError(ValueError):
    """A config the guard cannot use. The message starts with the key at fault: `config.<key>: ...`."""


class Settings:
    def __init__(self, marker, retry_after_seconds):
        self.marker = marker
        self.retry_after_seconds = retry_after_seconds


def _is_int(value):
    # JSON true/false arrive as Python bools, which are ints too: refuse them.
    return isinstance(value, int) and not isinstance(value, bool)


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
    marker = table.get("marker", "[hold]")
    if not isinstance(marker, str) or marker == "":
        raise ConfigError("config.marker: must be a non-empty string, got %s" % json.dumps(marker))
    retry = table.get("retry_after_seconds", 0)
    if not _is_int(retry) or retry < 0:
        raise ConfigError("config.retry_after_seconds: must be a non-negative integer, got %s" % json.dumps(retry))
    return Settings(marker, retry)


def decide(settings, title, now):
    """None to allow the spawn, or (reason, retry_after) to defer it; retry_after is unix seconds or None.

    Time comes only from the host (`now`, unix seconds): a plugin has no clock of its own.
    """
    if settings.marker not in title:
        return None
    retry_after = now + settings.retry_after_seconds if settings.retry_after_seconds > 0 else None
    return "held: the title contains %s" % settings.marker, retry_after
