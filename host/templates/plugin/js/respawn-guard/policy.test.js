// Unit tests of the rule, in plain Node (no WebAssembly):  node --test
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { ConfigError, decide, parseConfig } from './policy.js';

const NOW = 1_800_000_000;

test('a marked title is held back', () => {
  const settings = parseConfig('{}');
  assert.deepEqual(decide(settings, '[hold] Migrate the billing tables', NOW), {
    reason: 'held: the title contains [hold]',
    retryAfter: null,
  });
  assert.equal(decide(settings, 'Migrate the billing tables', NOW), null);
});

test('the marker and the retry time come from the config', () => {
  const settings = parseConfig(JSON.stringify({ marker: 'WIP', retry_after_seconds: 600 }));
  assert.deepEqual(decide(settings, 'WIP: tidy', NOW), { reason: 'held: the title contains WIP', retryAfter: NOW + 600 });
  assert.equal(decide(settings, '[hold] tidy', NOW), null);
});

test('config errors name the key at fault', () => {
  const cases = [
    [{ marker: '' }, 'config.marker: must be a non-empty string'],
    [{ marker: 1 }, 'config.marker: must be a non-empty string, got 1'],
    [{ retry_after_seconds: -1 }, 'config.retry_after_seconds: must be a non-negative integer'],
    [{ retry_after_seconds: 1.5 }, 'config.retry_after_seconds: must be a non-negative integer'],
    [{ markr: 'x' }, 'config.markr: unknown key (known: marker, retry_after_seconds)'],
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
