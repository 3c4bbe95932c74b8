// The rule of {{name}}, a respawn guard, in plain JavaScript: no WIT, no WebAssembly, so `node --test` runs
// it as is. component.js is the thin layer the host calls through.
//
// The guard answers "not now" for a card whose title contains a marker (`[hold]` by default). Change
// `decide` to make the rule yours.

export const KNOWN_KEYS = ['marker', 'retry_after_seconds'];

/** A config the guard cannot use. The message starts with the key at fault: `config.<key>: ...`. */
export class ConfigError extends Error {
  name = 'ConfigError';
}

const isPlainObject = (value) => typeof value === 'object' && value !== null && !Array.isArray(value);

/** Parse and check the board's `[policies.config]` table (a JSON string). Throws ConfigError. */
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
  const marker = table.marker ?? '[hold]';
  if (typeof marker !== 'string' || marker === '') {
    throw new ConfigError(`config.marker: must be a non-empty string, got ${JSON.stringify(marker)}`);
  }
  const retry = table.retry_after_seconds ?? 0;
  if (!Number.isSafeInteger(retry) || retry < 0) {
    throw new ConfigError(
      `config.retry_after_seconds: must be a non-negative integer, got ${JSON.stringify(retry)}`,
    );
  }
  return { marker, retryAfterSeconds: retry };
}

/**
 * null to allow the spawn, or `{ reason, retryAfter }` to defer it (retryAfter: unix seconds or null). Time
 * comes only from the host (`now`, unix seconds, a Number here): a plugin has no clock of its own.
 */
export function decide(settings, title, now) {
  if (!title.includes(settings.marker)) return null;
  const retryAfter = settings.retryAfterSeconds > 0 ? now + settings.retryAfterSeconds : null;
  return { reason: `held: the title contains ${settings.marker}`, retryAfter };
}
