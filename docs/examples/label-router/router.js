// The logic of label-router, in plain JavaScript: no WIT, no WebAssembly, so `node --test` runs it as is.
// component.js is the thin layer that the host calls through.
//
// A card titled "[frontend] Fix the button" goes to the profile the config maps `frontend` to. Labels are
// the bracketed words anywhere in the title, matched without regard to case; the first one that has a
// mapping wins. A title with no mapped label goes to `default`, or stays unassigned if there is none.

export const KNOWN_KEYS = ['labels', 'default'];

/** A config the router cannot use. The message starts with the key at fault: `config.<key>: ...`. */
export class ConfigError extends Error {
  name = 'ConfigError';
}

const isPlainObject = (value) => typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * Parse and check the board's `[policies.config]` table (a JSON string).
 * Returns `{ labels: Map<lowercased label, profile>, fallback: profile | null }`; throws ConfigError.
 */
export function parseConfig(text) {
  let table;
  try {
    table = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`config: not valid JSON: ${err.message}`);
  }
  if (!isPlainObject(table)) throw new ConfigError('config: must be a table');
  for (const key of Object.keys(table)) {
    if (!KNOWN_KEYS.includes(key)) {
      throw new ConfigError(`config.${key}: unknown key (known: ${KNOWN_KEYS.join(', ')})`);
    }
  }
  if (!('labels' in table)) {
    throw new ConfigError('config.labels: missing (e.g. labels = { frontend = "web-coder" })');
  }
  if (!isPlainObject(table.labels)) {
    throw new ConfigError('config.labels: must be a table of label = "profile"');
  }
  const labels = new Map();
  for (const [label, profile] of Object.entries(table.labels)) {
    const key = label.trim().toLowerCase();
    if (key === '' || /[\[\]]/.test(key)) {
      throw new ConfigError(`config.labels.${label}: a label is the text between the brackets, e.g. frontend`);
    }
    if (typeof profile !== 'string' || profile.trim() === '') {
      throw new ConfigError(`config.labels.${label}: must be a profile name, got ${JSON.stringify(profile)}`);
    }
    if (labels.has(key)) {
      throw new ConfigError(`config.labels.${label}: the same label as another entry (labels ignore case)`);
    }
    labels.set(key, profile.trim());
  }
  const fallback = table.default ?? null;
  if (fallback !== null && (typeof fallback !== 'string' || fallback.trim() === '')) {
    throw new ConfigError(
      `config.default: must be a profile name (leave it out for none), got ${JSON.stringify(fallback)}`,
    );
  }
  return { labels, fallback: fallback === null ? null : fallback.trim() };
}

/** The bracketed labels of a title, in order, lowercased: "[Frontend][urgent] Fix" -> ["frontend", "urgent"]. */
export function labelsOf(title) {
  return [...title.matchAll(/\[([^\[\]]+)\]/g)].map((m) => m[1].trim().toLowerCase());
}

/** The profile for a card titled `title`, or null to leave it unassigned. */
export function pickProfile(settings, title) {
  for (const label of labelsOf(title)) {
    const profile = settings.labels.get(label);
    if (profile !== undefined) return profile;
  }
  return settings.fallback;
}
