// {{name}}: the component's exports, built with `jco componentize` (componentize-js) against the
// routing-policy world of wit/policy.wit.
//
// Each exported WIT interface is an exported object named after it in camelCase: `plugin` for
// kanban:policy/plugin and `routing` for kanban:policy/routing. Records arrive as objects with camelCase
// fields (ctx.card.title), an s64 as a BigInt (ctx.now), an option<string> as a string or undefined; a
// result<_, string> is returned by returning (ok) or throwing the error string (err).
import { ConfigError, parseConfig, route } from './policy.js';

const VERSION = '0.1.0';

export const plugin = {
  describe() {
    return { name: '{{name}}', version: VERSION, kind: 'routing' };
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

export const routing = {
  route(ctx) {
    // The host validated the config at `board check` and when it loaded the board. If it is bad anyway, the
    // exception traps the call: the host records a policy error and leaves the card unassigned. A profile the
    // board does not have is refused by the host as a bad_output error naming it.
    const settings = parseConfig(ctx.config);
    return route(settings, ctx.card.title) ?? undefined;
  },
};
