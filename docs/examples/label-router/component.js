// label-router: the component's exports, built with `jco componentize` (componentize-js, StarlingMonkey)
// against the routing-policy world of wit/policy.wit.
//
// Each exported WIT interface is an exported object named after it in camelCase: `plugin` for
// kanban:policy/plugin and `routing` for kanban:policy/routing. Records arrive as objects with camelCase
// fields (ctx.card.title, ctx.board.profiles), an option<string> is a string or undefined, and a
// result<_, string> is returned by returning normally (ok) or throwing the error string (err).
import { ConfigError, parseConfig, pickProfile } from './router.js';

const VERSION = '0.1.0';

export const plugin = {
  describe() {
    return { name: 'label-router', version: VERSION, kind: 'routing' };
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

// The host keeps one instance for a whole tick and hands every call the same config text: parse it once.
let parsed = { text: null, settings: null };

function settingsOf(text) {
  if (parsed.text !== text) parsed = { text, settings: parseConfig(text) };
  return parsed.settings;
}

export const routing = {
  route(ctx) {
    // The host validated the config at `board check` and when it loaded the board. If it is bad anyway, the
    // exception traps the call: the host records a policy error and leaves the card unassigned.
    const settings = settingsOf(ctx.config);
    // A profile the board does not have is refused by the host as a bad_output error, which names it.
    return pickProfile(settings, ctx.card.title) ?? undefined;
  },
};
