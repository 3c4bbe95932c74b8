"""Unit tests of the guard's decision logic, in plain Python (no WebAssembly):

    python3 -m unittest -v test_business_hours      # from this folder
"""

import datetime
import json
import unittest

import business_hours
from business_hours import ConfigError, decide, parse_config


def utc(text):
    """Unix seconds of an ISO UTC time, e.g. utc("2026-11-02T09:30")."""
    return int(datetime.datetime.fromisoformat(text + ":00+00:00").timestamp())


def settings(**config):
    config.setdefault("hours", {"coder": [9, 18]})
    return parse_config(json.dumps(config))


class Decide(unittest.TestCase):
    # 2026-11-02 is a Monday, 2026-11-06 a Friday, 2026-11-07 a Saturday.

    def test_inside_business_hours_allows(self):
        s = settings()
        for at in ("2026-11-02T09:00", "2026-11-02T12:00", "2026-11-06T17:59"):
            self.assertIsNone(decide(s, "coder", utc(at)), at)

    def test_before_opening_defers_until_opening_the_same_day(self):
        reason, retry_after = decide(settings(), "coder", utc("2026-11-02T07:15"))
        self.assertEqual(retry_after, utc("2026-11-02T09:00"))
        self.assertEqual(
            reason, "outside business hours for coder (Mon-Fri 09:00-18:00 UTC+00:00); opens Mon 2026-11-02 09:00"
        )

    def test_the_end_hour_is_exclusive_and_friday_evening_waits_for_monday(self):
        for at in ("2026-11-06T18:00", "2026-11-06T23:59", "2026-11-07T12:00", "2026-11-08T08:00"):
            _, retry_after = decide(settings(), "coder", utc(at))
            self.assertEqual(retry_after, utc("2026-11-09T09:00"), at)

    def test_a_positive_offset_shifts_the_window(self):
        s = settings(timezone_offset_minutes=60)  # UTC+01:00: 09:00 local is 08:00 UTC
        self.assertIsNone(decide(s, "coder", utc("2026-11-02T08:30")))
        reason, retry_after = decide(s, "coder", utc("2026-11-02T07:30"))
        self.assertEqual(retry_after, utc("2026-11-02T08:00"))
        self.assertIn("UTC+01:00", reason)
        # 23:30 UTC on Sunday is already 00:30 local on Monday: still closed until 09:00 local.
        _, retry_after = decide(s, "coder", utc("2026-11-01T23:30"))
        self.assertEqual(retry_after, utc("2026-11-02T08:00"))

    def test_a_negative_offset_crosses_midnight_backwards(self):
        s = settings(timezone_offset_minutes=-300)  # UTC-05:00
        # Tuesday 02:00 UTC is Monday 21:00 local: closed until Tuesday 09:00 local, 14:00 UTC.
        reason, retry_after = decide(s, "coder", utc("2026-11-03T02:00"))
        self.assertEqual(retry_after, utc("2026-11-03T14:00"))
        self.assertIn("UTC-05:00", reason)
        # Saturday 03:00 UTC is Friday 22:00 local: closed until Monday.
        _, retry_after = decide(s, "coder", utc("2026-11-07T03:00"))
        self.assertEqual(retry_after, utc("2026-11-09T14:00"))

    def test_profiles_without_hours_and_unassigned_cards_are_allowed(self):
        s = settings()
        night = utc("2026-11-02T03:00")
        self.assertIsNone(decide(s, "reviewer", night))
        self.assertIsNone(decide(s, None, night))

    def test_a_star_entry_covers_every_other_profile(self):
        s = settings(hours={"coder": [9, 18], "*": [0, 24]}, days=[1, 2, 3, 4, 5])
        self.assertIsNone(decide(s, "ops", utc("2026-11-02T03:00")))
        _, retry_after = decide(s, "ops", utc("2026-11-07T03:00"))
        self.assertEqual(retry_after, utc("2026-11-09T00:00"))

    def test_custom_days_and_holidays_are_skipped(self):
        s = settings(days=[1, 3, 5], holidays=["2026-11-04", "2026-11-06"])
        reason, retry_after = decide(s, "coder", utc("2026-11-03T10:00"))  # Tuesday
        self.assertEqual(retry_after, utc("2026-11-09T09:00"))  # Wed and Fri are holidays
        self.assertIn("(Mon,Wed,Fri 09:00-18:00", reason)
        self.assertIsNotNone(decide(s, "coder", utc("2026-11-04T10:00")))

    def test_it_is_deterministic(self):
        s = settings(timezone_offset_minutes=60)
        at = utc("2026-11-07T12:00")
        self.assertEqual(decide(s, "coder", at), decide(settings(timezone_offset_minutes=60), "coder", at))


class Config(unittest.TestCase):
    def error(self, text):
        with self.assertRaises(ConfigError) as caught:
            parse_config(text)
        return str(caught.exception)

    def test_the_example_config_is_accepted(self):
        s = parse_config('{"timezone_offset_minutes": 60, "hours": {"coder": [9, 18]}, "days": [1,2,3,4,5]}')
        self.assertEqual(s.offset_minutes, 60)
        self.assertEqual(s.hours, {"coder": (9, 18)})

    def test_errors_name_the_key(self):
        cases = {
            '{"hours": {"coder": [9, 18]}, "timezone": 1}': "config.timezone: unknown key",
            '{"hours": {"coder": [18, 9]}}': "config.hours.coder: must be [start, end]",
            '{"hours": {"coder": [9, 25]}}': "config.hours.coder:",
            '{"hours": {"coder": "9-18"}}': "config.hours.coder:",
            '{"hours": {"coder": [9, true]}}': "config.hours.coder:",
            '{"hours": {}}': "config.hours: must be a non-empty table",
            "{}": "config.hours: missing",
            '{"hours": {"coder": [9, 18]}, "days": [0]}': "config.days:",
            '{"hours": {"coder": [9, 18]}, "days": [1, 1]}': "config.days:",
            '{"hours": {"coder": [9, 18]}, "days": []}': "config.days:",
            '{"hours": {"coder": [9, 18]}, "timezone_offset_minutes": 1440}': "config.timezone_offset_minutes:",
            '{"hours": {"coder": [9, 18]}, "timezone_offset_minutes": "60"}': "config.timezone_offset_minutes:",
            '{"hours": {"coder": [9, 18]}, "holidays": ["2026-02-30"]}': "config.holidays[0]:",
            '{"hours": {"coder": [9, 18]}, "holidays": "2026-12-25"}': "config.holidays:",
            "[]": "config: must be a table",
            "{": "config: not valid JSON",
        }
        for text, prefix in cases.items():
            self.assertTrue(self.error(text).startswith(prefix), (text, self.error(text)))


class Calendar(unittest.TestCase):
    def test_day_numbers_agree_with_datetime(self):
        epoch = datetime.date(1970, 1, 1)
        for days in range(-800, 200_000, 37):
            date = epoch + datetime.timedelta(days=days)
            self.assertEqual(business_hours._civil_from_days(days), (date.year, date.month, date.day))
            self.assertEqual(business_hours._days_from_civil(date.year, date.month, date.day), days)
            self.assertEqual(business_hours._weekday(days), date.isoweekday())


if __name__ == "__main__":
    unittest.main()
