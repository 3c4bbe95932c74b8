// {{name}}: the component's exports, built with `jco componentize` (componentize-js) against the
// respawn-guard-policy world of wit/policy.wit.
//
// Each exported WIT interface is an exported object named after it in camelCase: `plugin` for
// kanban:policy/plugin and `respawnGuard` for kanban:policy/respawn-guard. Records arrive as objects with
// camelCase fields (ctx.card.title), an s64 as a BigInt (ctx.now), an option as a value or undefined; a
// variant is returned as `{ tag, val }`, and a result<_, string> by returning (ok) or throwing the error
// string (err).
import { ConfigError, decide, parseConfig } from './policy.js';

const VERSION = '0.1.0';

export const plugin = {
  describe() {
    return { name: '{{name}}', version: VERSION, kind: 'respawn-guard' };
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

export const respawnGuard = {
  decide(ctx) {
    // The host validated the config at `board check` and when it loaded the board. If it is bad anyway, the
    // exception traps the call: the host records a policy error and applies the guard's safe default.
    const settings = parseConfig(ctx.config);
    const verdict = decide(settings, ctx.card.title, Number(ctx.now));
    if (verdict === null) return { tag: 'allow' };
    const retryAfter = verdict.retryAfter === null ? undefined : BigInt(verdict.retryAfter);
    return { tag: 'defer', val: { reason: verdict.reason, retryAfter } };
  },
};
