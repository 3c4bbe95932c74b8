// {{name}}: the component's exports, built with `jco componentize` (componentize-js) against the
// decompose-policy world of wit/policy.wit.
//
// Each exported WIT interface is an exported object named after it in camelCase: `plugin` for
// kanban:policy/plugin and `decompose` for kanban:policy/decompose. Records arrive as objects with camelCase
// fields (ctx.card.body), an s64 as a BigInt (card.priority); a variant is returned as `{ tag, val }`, an
// option as a value or undefined, a list<u32> as a Uint32Array, and a result<_, string> by returning (ok) or
// throwing the error string (err).
import { ConfigError, decompose as split, parseConfig } from './policy.js';

const VERSION = '0.1.0';

export const plugin = {
  describe() {
    return { name: '{{name}}', version: VERSION, kind: 'decompose' };
  },

  validateConfig(config) {
    try {
      parseConfig(config);
    } catch (err) {
      if (err instanceof ConfigError) throw err.message;
      throw `config: ${err}`;
    }
  },
};

export const decompose = {
  decompose(ctx) {
    // The host validated the config at `board check` and when it loaded the board. If it is bad anyway, the
    // exception traps the call: the host records a policy error and the card stays in triage.
    const settings = parseConfig(ctx.config);
    const card = { ...ctx.card, priority: Number(ctx.card.priority) };
    const plan = split(settings, card);
    if (typeof plan === 'string') return { tag: 'leave', val: plan };
    const children = plan.map((child) => ({
      title: child.title,
      body: child.body,
      assignee: child.assignee ?? undefined,
      priority: BigInt(child.priority),
      workspace: undefined,
      dependsOn: Uint32Array.from(child.dependsOn),
    }));
    return { tag: 'children', val: children };
  },
};
