// The rule of {{name}}, a decompose policy, in plain JavaScript: no WIT, no WebAssembly, so `node --test`
// runs it as is. component.js is the thin layer the host calls through.
//
// The policy makes a child card of every open checklist line of the body (`- [ ] write the migration`);
// ticked lines (`- [x] ...`) are done already and skipped. A body without open items leaves the card in
// triage. Change `decompose` to make the rule yours.

export const KNOWN_KEYS = ['assignee', 'sequential'];

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
  const assignee = table.assignee ?? null;
  if (assignee !== null && (typeof assignee !== 'string' || assignee.trim() === '')) {
    throw new ConfigError(`config.assignee: must be a profile name, got ${JSON.stringify(assignee)}`);
  }
  const sequential = table.sequential ?? false;
  if (typeof sequential !== 'boolean') {
    throw new ConfigError(`config.sequential: must be true or false, got ${JSON.stringify(sequential)}`);
  }
  return { assignee: assignee === null ? null : assignee.trim(), sequential };
}

/** The text of an open checklist line (`- [ ] text` or `* [ ] text`), or null. */
export function openItem(line) {
  const trimmed = line.trimStart();
  for (const mark of ['- [ ]', '* [ ]']) {
    if (trimmed.startsWith(mark)) return trimmed.slice(mark.length).trim() || null;
  }
  return null;
}

/**
 * The children of a triage card (`{ title, body, assignee, priority, dependsOn }`, priority a Number), or a
 * string: why the card stays in triage.
 */
export function decompose(settings, card) {
  const items = card.body.split('\n').map(openItem).filter((item) => item !== null);
  if (items.length === 0) return 'no open checklist items ("- [ ] ...") in the body';
  return items.map((item, i) => ({
    title: item,
    body: `Part of ${card.id}: ${card.title}`,
    assignee: settings.assignee,
    priority: card.priority,
    // Indexes into this list: the child before this one.
    dependsOn: settings.sequential && i > 0 ? [i - 1] : [],
  }));
}
