"""The rule of {{name}}, a routing policy, in plain Python.

Nothing here knows about WebAssembly or the WIT bindings, so `python3 -m unittest` runs it on your machine;
app.py is the thin layer the host calls through. The router picks a profile by the start of the card's title:
with `prefixes = { "fix:" = "coder" }`, `fix: the login redirect` goes to `coder`. Prefixes are matched
without regard to case and the longest matching one wins; a title no prefix matches goes to `default`, or
stays unassigned. Change `route` to make the rule yours.
"""

import json

KNOWN_KEYS = ("prefixes", "default")


class ConfigError(ValueError):
    """A config the router cannot use. The message starts with the key at fault: `config.<key>: ...`."""


class Settings:
    def __init__(self, prefixes, default):
        self.prefixes = prefixes  # lowercased prefix -> profile
        self.default = default  # profile, or None


def _is_name(value):
    return isinstance(value, str) and value.strip() != ""


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
    if "prefixes" not in table:
        raise ConfigError('config.prefixes: missing (e.g. prefixes = { "fix:" = "coder" })')
    raw = table["prefixes"]
    if not isinstance(raw, dict):
        raise ConfigError('config.prefixes: must be a table of prefix = "profile"')
    prefixes = {}
    for prefix, profile in raw.items():
        if prefix.strip() == "":
            raise ConfigError("config.prefixes: a prefix must not be blank")
        if not _is_name(profile):
            raise ConfigError("config.prefixes.%s: must be a profile name, got %s" % (prefix, json.dumps(profile)))
        prefixes[prefix.lower()] = profile.strip()
    default = table.get("default")
    if default is not None and not _is_name(default):
        raise ConfigError("config.default: must be a profile name, got %s" % json.dumps(default))
    return Settings(prefixes, default.strip() if default is not None else None)


def route(settings, title):
    """The profile for a card titled `title`, or None to leave it unassigned."""
    title = title.lstrip().lower()
    matches = [prefix for prefix in settings.prefixes if title.startswith(prefix)]
    if not matches:
        return settings.default
    return settings.prefixes[max(matches, key=len)]
