// A respawn guard in JavaScript (jco componentize, StarlingMonkey) that misbehaves on purpose, so the host's
// tests can check that the sandbox holds for a JS engine guest too.
//
// Config: {"mode": M} (missing means "allow"), M one of:
// - "allow": allow;
// - "loop": spin forever (needs the fuel limit);
// - "alloc": allocate and touch 1 MiB chunks forever (needs the memory limit);
// - "throw": throw an Error (a trap).

const MODES = ['allow', 'loop', 'alloc', 'throw'];

function mode(config) {
  const table = JSON.parse(config);
  for (const key of Object.keys(table)) {
    if (key !== 'mode') throw `config.${key}: unknown key (known: mode)`;
  }
  const value = table.mode ?? 'allow';
  if (!MODES.includes(value)) throw `config.mode: must be one of ${MODES.join(', ')}, got ${JSON.stringify(value)}`;
  return value;
}

export const plugin = {
  describe() {
    return { name: 'hostile-js', version: '0.1.0', kind: 'respawn-guard' };
  },
  validateConfig(config) {
    mode(config);
  },
};

export const respawnGuard = {
  decide(ctx) {
    const m = mode(ctx.config);
    if (m === 'loop') {
      let counter = 0;
      for (;;) counter = (counter + 1) | 0;
    }
    if (m === 'alloc') {
      const hoard = [];
      for (;;) {
        const chunk = new Uint8Array(1 << 20);
        for (let i = 0; i < chunk.length; i += 4096) chunk[i] = 1;
        hoard.push(chunk);
      }
    }
    if (m === 'throw') throw new Error('hostile plugin threw on purpose');
    return { tag: 'allow' };
  },
};
