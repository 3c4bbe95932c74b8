// {{name}}: the component's exports, built with `jco componentize` (componentize-js) against the
// diagnostics-policy world of wit/policy.wit.
//
// Each exported WIT interface is an exported object named after it in camelCase: `plugin` for
// kanban:policy/plugin and `diagnostics` for kanban:policy/diagnostics. Records arrive as objects with
// camelCase fields (ctx.card.body), an s64 as a BigInt (ctx.now); a WIT enum (the severity) is its name as a
// string, and a result<_, string> is returned by returning (ok) or throwing the error string (err).
import { ConfigError, diagnose, parseConfig } from './policy.js';

const VERSION = '0.1.0';

export const plugin = {
  describe() {
    return { name: '{{name}}', version: VERSION, kind: 'diagnostics' };
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

export const diagnostics = {
  diagnose(ctx) {
    // The host validated the config at `board check` and when it loaded the board. If it is bad anyway, the
    // exception traps the call: the host reports it as an error finding naming the plugin.
    const settings = parseConfig(ctx.config);
    return diagnose(settings, ctx.card);
  },
};
