"""Unit tests of the rule, in plain Python (no WebAssembly):

    python3 -m unittest -v          # from this folder
"""

import unittest

from policy import ConfigError, decide, parse_config

NOW = 1_800_000_000


class Decide(unittest.TestCase):
    def test_a_marked_title_is_held_back(self):
        settings = parse_config("{}")
        self.assertEqual(decide(settings, "[hold] Migrate the billing tables", NOW), ("held: the title contains [hold]", None))
        self.assertIsNone(decide(settings, "Migrate the billing tables", NOW))

    def test_the_marker_and_the_retry_time_come_from_the_config(self):
        settings = parse_config('{"marker": "WIP", "retry_after_seconds": 600}')
        self.assertEqual(decide(settings, "WIP: tidy", NOW), ("held: the title contains WIP", NOW + 600))
        self.assertIsNone(decide(settings, "[hold] tidy", NOW))


class Config(unittest.TestCase):
    def test_errors_name_the_key(self):
        cases = {
            '{"marker": ""}': "config.marker: must be a non-empty string",
            '{"marker": 1}': "config.marker: must be a non-empty string, got 1",
            '{"retry_after_seconds": -1}': "config.retry_after_seconds: must be a non-negative integer",
            '{"retry_after_seconds": true}': "config.retry_after_seconds: must be a non-negative integer",
            '{"markr": "x"}': "config.markr: unknown key (known: marker, retry_after_seconds)",
            "[]": "config: must be a table",
            "{": "config: not valid JSON",
        }
        for text, prefix in cases.items():
            with self.assertRaises(ConfigError) as caught:
                parse_config(text)
            self.assertTrue(str(caught.exception).startswith(prefix), (text, str(caught.exception)))


if __name__ == "__main__":
    unittest.main()
