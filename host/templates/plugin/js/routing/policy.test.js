// Unit tests of the rule, in plain Node (no WebAssembly):  node --test
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { ConfigError, parseConfig, route } from './policy.js';

const CONFIG = JSON.stringify({ prefixes: { 'docs:': 'writer', 'fix:': 'coder', 'fix: ui': 'designer' } });

test('a title prefix picks the profile', () => {
  const settings = parseConfig(CONFIG);
  assert.equal(route(settings, 'docs: explain the breaker'), 'writer');
  assert.equal(route(settings, 'FIX: login redirect'), 'coder');
  assert.equal(route(settings, 'fix: UI glitch'), 'designer', 'the longest prefix wins');
});

test('an unmatched title goes to the default or nowhere', () => {
  assert.equal(route(parseConfig(CONFIG), 'Rotate the certificates'), null);
  const withDefault = parseConfig(JSON.stringify({ prefixes: { 'docs:': 'writer' }, default: 'coder' }));
  assert.equal(route(withDefault, 'Rotate the certificates'), 'coder');
});

test('config errors name the key at fault', () => {
  const cases = [
    [{}, 'config.prefixes: missing'],
    [{ prefixes: ['fix:'] }, 'config.prefixes: must be a table'],
    [{ prefixes: { ' ': 'coder' } }, 'config.prefixes: a prefix must not be blank'],
    [{ prefixes: { 'fix:': 1 } }, 'config.prefixes.fix:: must be a profile name, got 1'],
    [{ prefixes: {}, default: 7 }, 'config.default: must be a profile name, got 7'],
    [{ prefixes: {}, defualt: 'x' }, 'config.defualt: unknown key (known: prefixes, default)'],
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
