// The rule of {{name}}, a routing policy, in plain JavaScript: no WIT, no WebAssembly, so `node --test` runs
// it as is. component.js is the thin layer the host calls through.
//
// The router picks a profile by the start of the card's title: with `prefixes = { "fix:" = "coder" }`,
// `fix: the login redirect` goes to `coder`. Prefixes are matched without regard to case and the longest
// matching one wins; a title no prefix matches goes to `default`, or stays unassigned. Change `route` to make
// the rule yours.

export const KNOWN_KEYS = ['prefixes', 'default'];

/** A config the router cannot use. The message starts with the key at fault: `config.<key>: ...`. */
export class ConfigError extends Error {
  name = 'ConfigError';
}

const isPlainObject = (value) => typeof value === 'object' && value !== null && !Array.isArray(value);
const isName = (value) => typeof value === 'string' && value.trim() !== '';

/**
 * Parse and check the board's `[policies.config]` table (a JSON string).
 * Returns `{ prefixes: Map<lowercased prefix, profile>, fallback: profile | null }`; throws ConfigError.
 */
export function parseConfig(text) {
  let table;
  try {
    table = text.trim() === '' ? {} : JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`config: not valid JSON: ${err.message}`);
  }
  if (!isPlainObject(table)) throw new ConfigError('config: must be a table');
  for (const key of Object.keys(table)) {
    if (!KNOWN_KEYS.includes(key)) {
      throw new ConfigError(`config.${key}: unknown key (known: ${KNOWN_KEYS.join(', ')})`);
    }
  }
  if (!('prefixes' in table)) {
    throw new ConfigError('config.prefixes: missing (e.g. prefixes = { "fix:" = "coder" })');
  }
  if (!isPlainObject(table.prefixes)) {
    throw new ConfigError('config.prefixes: must be a table of prefix = "profile"');
  }
  const prefixes = new Map();
  for (const [prefix, profile] of Object.entries(table.prefixes)) {
    if (prefix.trim() === '') throw new ConfigError('config.prefixes: a prefix must not be blank');
    if (!isName(profile)) {
      throw new ConfigError(`config.prefixes.${prefix}: must be a profile name, got ${JSON.stringify(profile)}`);
    }
    prefixes.set(prefix.toLowerCase(), profile.trim());
  }
  const fallback = table.default ?? null;
  if (fallback !== null && !isName(fallback)) {
    throw new ConfigError(`config.default: must be a profile name, got ${JSON.stringify(fallback)}`);
  }
  return { prefixes, fallback: fallback === null ? null : fallback.trim() };
}

/** The profile for a card titled `title`, or null to leave it unassigned. */
export function route(settings, title) {
  const lowered = title.trimStart().toLowerCase();
  let best = null;
  for (const prefix of settings.prefixes.keys()) {
    if (lowered.startsWith(prefix) && (best === null || prefix.length > best.length)) best = prefix;
  }
  return best === null ? settings.fallback : settings.prefixes.get(best);
}
