// The rule of {{name}}, a diagnostics policy, in plain JavaScript: no WIT, no WebAssembly, so `node --test`
// runs it as is. component.js is the thin layer the host calls through.
//
// The policy flags a card whose body is empty (or shorter than `min_length` characters): a worker gets little
// to go on from a title alone. Done and archived cards are left alone. Change `diagnose` to make the rule
// yours.

export const KNOWN_KEYS = ['min_length', 'severity'];
export const SEVERITIES = ['info', 'warning', 'error', 'critical'];

/** A config the policy cannot use. The message starts with the key at fault: `config.<key>: ...`. */
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
  const minLength = table.min_length ?? 1;
  if (!Number.isSafeInteger(minLength) || minLength < 1) {
    throw new ConfigError(`config.min_length: must be an integer of at least 1, got ${JSON.stringify(minLength)}`);
  }
  const severity = table.severity ?? 'warning';
  if (!SEVERITIES.includes(severity)) {
    throw new ConfigError(
      `config.severity: unknown value ${JSON.stringify(severity)} (known: ${SEVERITIES.join(', ')})`,
    );
  }
  return { minLength, severity };
}

/** The findings about a card, with the fields of the WIT `finding` record; none when it is healthy. */
export function diagnose(settings, card) {
  if (card.status === 'done' || card.status === 'archived') return [];
  const length = [...card.body.trim()].length;
  if (length >= settings.minLength) return [];
  return [
    {
      rule: 'short-body',
      severity: settings.severity,
      title: length === 0 ? 'the card has no body' : "the card's body is short",
      detail: `${card.id} has ${length} characters of body (at least ${settings.minLength} wanted): a worker gets little to go on`,
      actions: [`kanban edit ${card.id} --body "what done looks like, and where to start"`],
    },
  ];
}
