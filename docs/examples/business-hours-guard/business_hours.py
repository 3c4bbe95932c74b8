"""The decision logic of business-hours-guard, in plain Python.

Nothing here knows about WebAssembly or the WIT bindings, so `python -m unittest` runs it on your machine.
`app.py` is the thin layer that turns the host's `context` record into the arguments of `decide` and the
result back into a WIT `decision`.

The guard defers a spawn while the card's assignee (a profile) is outside its business hours, and tells the
host when the next window opens. Time comes only from the host (`ctx.now`, unix seconds): a plugin has no
clock of its own, and the same input always gives the same answer.
"""

import json

KNOWN_KEYS = ("timezone_offset_minutes", "hours", "days", "holidays")
DEFAULT_DAYS = (1, 2, 3, 4, 5)
DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
# How far ahead to look for the next open window (a long run of holidays could hide it).
LOOKAHEAD_DAYS = 400


class ConfigError(ValueError):
    """A config the guard cannot use. The message starts with the key at fault: `config.<key>: ...`."""


class Settings:
    def __init__(self, offset_minutes, hours, days, holidays):
        self.offset_minutes = offset_minutes  # local time = UTC + this many minutes (a fixed offset, no DST)
        self.hours = hours  # profile (or "*") -> (start hour, end hour), local time, end exclusive
        self.days = days  # ISO weekdays that are working days, Monday = 1
        self.holidays = holidays  # set of local day numbers (days since 1970-01-01) that are not working days


def _is_int(value):
    # JSON true/false arrive as Python bools, which are ints too: refuse them.
    return isinstance(value, int) and not isinstance(value, bool)


def _day_number(text):
    """'2026-12-25' -> days since 1970-01-01, or None if it is not a real date."""
    parts = text.split("-")
    if len(parts) != 3 or len(parts[0]) != 4 or len(parts[1]) != 2 or len(parts[2]) != 2:
        return None
    if not all(p.isdigit() for p in parts):
        return None
    year, month, day = int(parts[0]), int(parts[1]), int(parts[2])
    if not 1 <= month <= 12 or not 1 <= day <= _days_in_month(year, month):
        return None
    return _days_from_civil(year, month, day)


def _days_in_month(year, month):
    if month == 2:
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        return 29 if leap else 28
    return 30 if month in (4, 6, 9, 11) else 31


def _days_from_civil(year, month, day):
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    year -= month <= 2
    era = year // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _civil_from_days(days):
    """The inverse of `_days_from_civil`: (year, month, day)."""
    days += 719468
    era = days // 146097
    doe = days - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (month <= 2), month, day


def _weekday(days):
    """ISO weekday (Monday = 1) of a day number; 1970-01-01 was a Thursday."""
    return (days + 3) % 7 + 1


def parse_config(text):
    """Parse and check the board's `[policies.config]` table (a JSON object). Raises ConfigError."""
    try:
        table = json.loads(text)
    except ValueError as err:
        raise ConfigError("config: not valid JSON: %s" % err)
    if not isinstance(table, dict):
        raise ConfigError("config: must be a table")
    for key in table:
        if key not in KNOWN_KEYS:
            raise ConfigError("config.%s: unknown key (known: %s)" % (key, ", ".join(KNOWN_KEYS)))

    offset = table.get("timezone_offset_minutes", 0)
    if not _is_int(offset) or not -1439 <= offset <= 1439:
        raise ConfigError("config.timezone_offset_minutes: must be a whole number of minutes between -1439 and 1439")

    if "hours" not in table:
        raise ConfigError('config.hours: missing (e.g. hours = { coder = [9, 18] })')
    raw_hours = table["hours"]
    if not isinstance(raw_hours, dict) or not raw_hours:
        raise ConfigError('config.hours: must be a non-empty table of profile = [start, end]')
    hours = {}
    for profile, window in raw_hours.items():
        if (
            not isinstance(window, list)
            or len(window) != 2
            or not all(_is_int(h) for h in window)
            or not 0 <= window[0] < window[1] <= 24
        ):
            raise ConfigError(
                "config.hours.%s: must be [start, end], whole hours with 0 <= start < end <= 24, got %s"
                % (profile, json.dumps(window))
            )
        hours[profile] = (window[0], window[1])

    raw_days = table.get("days", list(DEFAULT_DAYS))
    if (
        not isinstance(raw_days, list)
        or not raw_days
        or not all(_is_int(d) and 1 <= d <= 7 for d in raw_days)
        or len(set(raw_days)) != len(raw_days)
    ):
        raise ConfigError("config.days: must be a non-empty list of distinct weekdays 1-7 (Monday = 1)")

    raw_holidays = table.get("holidays", [])
    if not isinstance(raw_holidays, list):
        raise ConfigError('config.holidays: must be a list of dates like "2026-12-25"')
    holidays = set()
    for i, text in enumerate(raw_holidays):
        day = _day_number(text) if isinstance(text, str) else None
        if day is None:
            raise ConfigError('config.holidays[%d]: not a date like "2026-12-25": %s' % (i, json.dumps(text)))
        holidays.add(day)

    return Settings(offset, hours, frozenset(raw_days), frozenset(holidays))


def _zone(offset_minutes):
    sign = "+" if offset_minutes >= 0 else "-"
    return "UTC%s%02d:%02d" % (sign, abs(offset_minutes) // 60, abs(offset_minutes) % 60)


def _days_text(days):
    names = [DAY_NAMES[d - 1] for d in sorted(days)]
    ordered = sorted(days)
    if len(ordered) > 2 and ordered == list(range(ordered[0], ordered[-1] + 1)):
        return "%s-%s" % (names[0], names[-1])
    return ",".join(names)


def decide(settings, profile, now):
    """The decision for a card assigned to `profile` at unix time `now`.

    Returns None to allow the spawn, or (reason, retry_after) to defer it, where retry_after is the unix time
    the next window opens (None if none opens within LOOKAHEAD_DAYS).
    """
    if profile is None:
        return None  # an unassigned card is spawned by nobody; the router decides who takes it
    window = settings.hours.get(profile, settings.hours.get("*"))
    if window is None:
        return None  # a profile with no business hours may work at any time
    start, end = window
    local = now + settings.offset_minutes * 60
    today, second = divmod(local, 86400)

    def working(day):
        return _weekday(day) in settings.days and day not in settings.holidays

    if working(today) and start * 3600 <= second < end * 3600:
        return None

    opens = None
    for ahead in range(LOOKAHEAD_DAYS + 1):
        day = today + ahead
        if working(day) and (ahead > 0 or second < start * 3600):
            opens = day
            break
    zone = _zone(settings.offset_minutes)
    reason = "outside business hours for %s (%s %02d:00-%02d:00 %s)" % (
        profile,
        _days_text(settings.days),
        start,
        end,
        zone,
    )
    if opens is None:
        return reason + "; no window in the next %d days" % LOOKAHEAD_DAYS, None
    year, month, day = _civil_from_days(opens)
    reason += "; opens %s %04d-%02d-%02d %02d:00" % (DAY_NAMES[_weekday(opens) - 1], year, month, day, start)
    return reason, opens * 86400 + start * 3600 - settings.offset_minutes * 60
