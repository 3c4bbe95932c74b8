// Unit tests of the rule, in plain Node (no WebAssembly):  node --test
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { ConfigError, decompose, parseConfig } from './policy.js';

const BODY = 'Move billing to the new tables.\n\n- [ ] write the migration\n- [x] freeze writes\n  * [ ] switch the reads\n- [ ]  \n';

const split = (body, config = '{}') =>
  decompose(parseConfig(config), { id: 't_1a2b3c4d', title: 'Migrate billing', body, priority: 3 });

test('each open checklist line becomes a child', () => {
  const children = split(BODY);
  assert.deepEqual(
    children.map((c) => c.title),
    ['write the migration', 'switch the reads'],
  );
  assert.equal(children[0].body, 'Part of t_1a2b3c4d: Migrate billing');
  assert.equal(children[0].priority, 3);
  assert.equal(children[0].assignee, null);
  assert.ok(children.every((c) => c.dependsOn.length === 0));
});

test('the assignee and the order come from the config', () => {
  const children = split(BODY, JSON.stringify({ assignee: 'coder', sequential: true }));
  assert.equal(children[1].assignee, 'coder');
  assert.deepEqual(
    children.map((c) => c.dependsOn),
    [[], [0]],
  );
});

test('a body without open items stays in triage', () => {
  assert.match(split('- [x] all done'), /no open checklist/);
});

test('config errors name the key at fault', () => {
  const cases = [
    [{ sequential: 'yes' }, 'config.sequential: must be true or false, got "yes"'],
    [{ assignee: 1 }, 'config.assignee: must be a profile name, got 1'],
    [{ assignee: ' ' }, 'config.assignee: must be a profile name'],
    [{ asignee: 'x' }, 'config.asignee: unknown key (known: assignee, sequential)'],
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
