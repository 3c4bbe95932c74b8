// Unit tests of the rule, in plain Node (no WebAssembly):  node --test
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { ConfigError, diagnose, parseConfig } from './policy.js';

const card = (status, body) => ({ id: 't_1a2b3c4d', title: 'Fix the login redirect', status, body });

test('a card without a body is flagged', () => {
  const settings = parseConfig('{}');
  const findings = diagnose(settings, card('ready', '  \n'));
  assert.equal(findings.length, 1);
  assert.equal(findings[0].rule, 'short-body');
  assert.equal(findings[0].severity, 'warning');
  assert.equal(findings[0].title, 'the card has no body');
  assert.ok(findings[0].actions[0].startsWith('kanban edit t_1a2b3c4d --body'), findings[0].actions[0]);
  assert.deepEqual(diagnose(settings, card('ready', 'Redirect to /home after login.')), []);
  assert.deepEqual(diagnose(settings, card('done', '')), [], 'finished cards are left alone');
});

test('the length and severity come from the config', () => {
  const settings = parseConfig(JSON.stringify({ min_length: 20, severity: 'error' }));
  const findings = diagnose(settings, card('todo', 'Fix it.'));
  assert.deepEqual(
    findings.map((f) => [f.title, f.severity]),
    [["the card's body is short", 'error']],
  );
  assert.deepEqual(diagnose(settings, card('todo', 'Redirect to /home after a login.')), []);
});

test('config errors name the key at fault', () => {
  const cases = [
    [{ min_length: 0 }, 'config.min_length: must be an integer of at least 1, got 0'],
    [{ min_length: '5' }, 'config.min_length: must be an integer of at least 1'],
    [{ severity: 'bad' }, 'config.severity: unknown value "bad" (known: info, warning, error, critical)'],
    [{ min_len: 3 }, 'config.min_len: unknown key (known: min_length, severity)'],
    [[], 'config: must be a table'],
  ];
  for (const [config, prefix] of cases) {
    assert.throws(
      () => parseConfig(JSON.stringify(config)),
      (err) => err instanceof ConfigError && err.message.startsWith(prefix),
      `${JSON.stringify(config)} should fail with ${prefix}`,
    );
  }
});
