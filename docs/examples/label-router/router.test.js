// Unit tests of the router's logic, in plain Node (no WebAssembly):  node --test
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { ConfigError, labelsOf, parseConfig, pickProfile } from './router.js';

const example = JSON.stringify({ labels: { frontend: 'web-coder', infra: 'ops' }, default: null });

test('a label in the title picks its profile', () => {
  const settings = parseConfig(example);
  assert.equal(pickProfile(settings, '[frontend] Fix button'), 'web-coder');
  assert.equal(pickProfile(settings, 'Rotate the certificates [infra]'), 'ops');
});

test('labels ignore case and surrounding spaces; the first mapped label wins', () => {
  const settings = parseConfig(example);
  assert.equal(pickProfile(settings, '[ Frontend ] Fix button'), 'web-coder');
  assert.equal(pickProfile(settings, '[urgent][INFRA][frontend] Disk full'), 'ops');
});

test('no mapped label: the default, or unassigned when there is none', () => {
  assert.equal(pickProfile(parseConfig(example), '[docs] Typo'), null);
  assert.equal(pickProfile(parseConfig(example), 'No label at all'), null);
  const withDefault = parseConfig(JSON.stringify({ labels: { infra: 'ops' }, default: 'coder' }));
  assert.equal(pickProfile(withDefault, '[docs] Typo'), 'coder');
  assert.equal(pickProfile(withDefault, '[infra] Disk'), 'ops');
});

test('a missing default means none', () => {
  assert.equal(parseConfig(JSON.stringify({ labels: {} })).fallback, null);
});

test('labelsOf reads every bracketed label', () => {
  assert.deepEqual(labelsOf('[a] x [B c] [] [[d]]'), ['a', 'b c', 'd']);
});

test('config errors name the key at fault', () => {
  const cases = [
    [{ labels: {}, defualt: 'x' }, 'config.defualt: unknown key'],
    [{}, 'config.labels: missing'],
    [{ labels: ['frontend'] }, 'config.labels: must be a table'],
    [{ labels: { frontend: '' } }, 'config.labels.frontend: must be a profile name'],
    [{ labels: { frontend: 3 } }, 'config.labels.frontend: must be a profile name'],
    [{ labels: { '[frontend]': 'web' } }, 'config.labels.[frontend]: a label is the text between'],
    [{ labels: { frontend: 'a', Frontend: 'b' } }, 'config.labels.Frontend: the same label'],
    [{ labels: {}, default: 7 }, 'config.default: must be a profile name'],
    [{ labels: {}, default: ' ' }, 'config.default: must be a profile name'],
    [[], 'config: must be a table'],
  ];
  for (const [config, prefix] of cases) {
    assert.throws(
      () => parseConfig(JSON.stringify(config)),
      (err) => err instanceof ConfigError && err.message.startsWith(prefix),
      `${JSON.stringify(config)} should fail with ${prefix}`,
    );
  }
  assert.throws(() => parseConfig('{'), /^ConfigError: config: not valid JSON/);
});
