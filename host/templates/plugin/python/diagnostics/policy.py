"""The rule of {{name}}, a diagnostics policy, in plain Python.

Nothing here knows about WebAssembly or the WIT bindings, so `python3 -m unittest` runs it on your machine;
app.py is the thin layer the host calls through. The policy flags a card whose body is empty (or shorter than
`min_length` characters): a worker gets little to go on from a title alone. Done and archived cards are left
alone. Change `diagnose` to make the rule yours.
"""

import json

KNOWN_KEYS = ("min_length", "severity")
SEVERITIES = ("info", "warning", "error", "critical")


class ConfigError(ValueError):
    """A config the policy cannot use. The message starts with the key at fault: `config.<key>: ...`."""


class Settings:
    def __init__(self, min_length, severity):
        self.min_length = min_length
        self.severity = severity  # one of SEVERITIES


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
    min_length = table.get("min_length", 1)
    if not isinstance(min_length, int) or isinstance(min_length, bool) or min_length < 1:
        raise ConfigError("config.min_length: must be an integer of at least 1, got %s" % json.dumps(min_length))
    severity = table.get("severity", "warning")
    if severity not in SEVERITIES:
        raise ConfigError(
            "config.severity: unknown value %s (known: %s)" % (json.dumps(severity), ", ".join(SEVERITIES))
        )
    return Settings(min_length, severity)


def diagnose(settings, card_id, status, body):
    """The findings about a card, as dicts with the fields of the WIT `finding` record; none when healthy."""
    if status in ("done", "archived"):
        return []
    length = len(body.strip())
    if length >= settings.min_length:
        return []
    return [
        {
            "rule": "short-body",
            "severity": settings.severity,
            "title": "the card has no body" if length == 0 else "the card's body is short",
            "detail": "%s has %d characters of body (at least %d wanted): a worker gets little to go on"
            % (card_id, length, settings.min_length),
            "actions": ['kanban edit %s --body "what done looks like, and where to start"' % card_id],
        }
    ]
