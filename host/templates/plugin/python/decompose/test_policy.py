"""Unit tests of the rule, in plain Python (no WebAssembly):

    python3 -m unittest -v          # from this folder
"""

import unittest

from policy import ConfigError, decompose, parse_config

BODY = "Move billing to the new tables.\n\n- [ ] write the migration\n- [x] freeze writes\n  * [ ] switch the reads\n- [ ]  \n"


def split(body, config="{}"):
    return decompose(parse_config(config), "t_1a2b3c4d", "Migrate billing", body, 3)


class Decompose(unittest.TestCase):
    def test_each_open_checklist_line_becomes_a_child(self):
        children = split(BODY)
        self.assertEqual([c["title"] for c in children], ["write the migration", "switch the reads"])
        self.assertEqual(children[0]["body"], "Part of t_1a2b3c4d: Migrate billing")
        self.assertEqual(children[0]["priority"], 3)
        self.assertIsNone(children[0]["assignee"])
        self.assertTrue(all(c["depends_on"] == [] for c in children))

    def test_the_assignee_and_the_order_come_from_the_config(self):
        children = split(BODY, '{"assignee": "coder", "sequential": true}')
        self.assertEqual(children[1]["assignee"], "coder")
        self.assertEqual([c["depends_on"] for c in children], [[], [0]])

    def test_a_body_without_open_items_stays_in_triage(self):
        self.assertIn("no open checklist", split("- [x] all done"))


class Config(unittest.TestCase):
    def test_errors_name_the_key(self):
        cases = {
            '{"sequential": "yes"}': 'config.sequential: must be true or false, got "yes"',
            '{"assignee": 1}': "config.assignee: must be a profile name, got 1",
            '{"assignee": " "}': "config.assignee: must be a profile name",
            '{"asignee": "x"}': "config.asignee: unknown key (known: assignee, sequential)",
            "[]": "config: must be a table",
        }
        for text, prefix in cases.items():
            with self.assertRaises(ConfigError) as caught:
                parse_config(text)
            self.assertTrue(str(caught.exception).startswith(prefix), (text, str(caught.exception)))


if __name__ == "__main__":
    unittest.main()
