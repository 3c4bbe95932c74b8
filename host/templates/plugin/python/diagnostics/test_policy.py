"""Unit tests of the rule, in plain Python (no WebAssembly):

    python3 -m unittest -v          # from this folder
"""

import unittest

from policy import ConfigError, diagnose, parse_config


class Diagnose(unittest.TestCase):
    def test_a_card_without_a_body_is_flagged(self):
        settings = parse_config("{}")
        findings = diagnose(settings, "t_1a2b3c4d", "ready", "  \n")
        self.assertEqual(len(findings), 1, findings)
        self.assertEqual(findings[0]["rule"], "short-body")
        self.assertEqual(findings[0]["severity"], "warning")
        self.assertEqual(findings[0]["title"], "the card has no body")
        self.assertTrue(findings[0]["actions"][0].startswith("kanban edit t_1a2b3c4d --body"), findings)
        self.assertEqual(diagnose(settings, "t_1a2b3c4d", "ready", "Redirect to /home after login."), [])
        self.assertEqual(diagnose(settings, "t_1a2b3c4d", "done", ""), [], "finished cards are left alone")

    def test_the_length_and_severity_come_from_the_config(self):
        settings = parse_config('{"min_length": 20, "severity": "error"}')
        findings = diagnose(settings, "t_1a2b3c4d", "todo", "Fix it.")
        self.assertEqual([(f["title"], f["severity"]) for f in findings], [("the card's body is short", "error")])
        self.assertEqual(diagnose(settings, "t_1a2b3c4d", "todo", "Redirect to /home after a login."), [])


class Config(unittest.TestCase):
    def test_errors_name_the_key(self):
        cases = {
            '{"min_length": 0}': "config.min_length: must be an integer of at least 1, got 0",
            '{"min_length": "5"}': "config.min_length: must be an integer of at least 1",
            '{"severity": "bad"}': 'config.severity: unknown value "bad" (known: info, warning, error, critical)',
            '{"min_len": 3}': "config.min_len: unknown key (known: min_length, severity)",
            "[]": "config: must be a table",
        }
        for text, prefix in cases.items():
            with self.assertRaises(ConfigError) as caught:
                parse_config(text)
            self.assertTrue(str(caught.exception).startswith(prefix), (text, str(caught.exception)))


if __name__ == "__main__":
    unittest.main()
