"""Unit tests of the rule, in plain Python (no WebAssembly):

    python3 -m unittest -v          # from this folder
"""

import unittest

from policy import ConfigError, parse_config, route

CONFIG = '{"prefixes": {"docs:": "writer", "fix:": "coder", "fix: ui": "designer"}}'


class Route(unittest.TestCase):
    def test_a_title_prefix_picks_the_profile(self):
        settings = parse_config(CONFIG)
        self.assertEqual(route(settings, "docs: explain the breaker"), "writer")
        self.assertEqual(route(settings, "FIX: login redirect"), "coder")
        self.assertEqual(route(settings, "fix: UI glitch"), "designer", "the longest prefix wins")

    def test_an_unmatched_title_goes_to_the_default_or_nowhere(self):
        self.assertIsNone(route(parse_config(CONFIG), "Rotate the certificates"))
        settings = parse_config('{"prefixes": {"docs:": "writer"}, "default": "coder"}')
        self.assertEqual(route(settings, "Rotate the certificates"), "coder")


class Config(unittest.TestCase):
    def test_errors_name_the_key(self):
        cases = {
            "{}": "config.prefixes: missing",
            '{"prefixes": ["fix:"]}': "config.prefixes: must be a table",
            '{"prefixes": {" ": "coder"}}': "config.prefixes: a prefix must not be blank",
            '{"prefixes": {"fix:": 1}}': "config.prefixes.fix:: must be a profile name, got 1",
            '{"prefixes": {}, "default": 7}': "config.default: must be a profile name, got 7",
            '{"prefixes": {}, "defualt": "x"}': "config.defualt: unknown key (known: prefixes, default)",
            "[]": "config: must be a table",
        }
        for text, prefix in cases.items():
            with self.assertRaises(ConfigError) as caught:
                parse_config(text)
            self.assertTrue(str(caught.exception).startswith(prefix), (text, str(caught.exception)))


if __name__ == "__main__":
    unittest.main()
