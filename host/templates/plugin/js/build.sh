#!/usr/bin/env bash
# Build {{crate_name}}.wasm, a WASI p2 component exporting the {{world}} world of wit/policy.wit, with the
# jco and componentize-js versions pinned in package.json / package-lock.json.
#
#   ./build.sh                      # writes {{crate_name}}.wasm next to this script
#
# The toolchain is installed with `npm ci` into a throwaway folder (JCO_DIR, default under /tmp, named after
# the lockfile's contents), so this folder never gets a node_modules; only Node.js (20 or newer) and npm are
# needed. WIT points at the folder holding policy.wit (default: wit/ here, a copy of kanban's WIT package);
# OUT picks another output file.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
wit="$(cd "${WIT:-$here/wit}" && pwd)"
# The lockfile without its package name: every project with the same pinned toolchain shares one install.
lock_hash="$(grep -v '"name":' "$here/package-lock.json" | sha256sum | cut -c1-12)"
tools="${JCO_DIR:-/tmp/kanban-jco-$lock_hash}"
out="$(realpath -m "${OUT:-$here/{{crate_name}}.wasm}")"

if [ ! -x "$tools/node_modules/.bin/jco" ]; then
    echo "installing jco and componentize-js (package-lock.json) into $tools" >&2
    mkdir -p "$tools"
    cp "$here/package.json" "$here/package-lock.json" "$tools/"
    (cd "$tools" && npm ci --no-audit --no-fund --loglevel=error)
fi

# --bundle: component.js imports policy.js; jco bundles them into one module for componentize-js.
# --disable http fetch-event: by default the component imports wasi:http (for fetch), which the kanban host
# does not provide (a plugin has no network), so it could not be linked. stdio stays on, so console.log and
# the message of an uncaught exception reach the host's log (KANBAN_LOG=info); clocks and random stay on too
# (the host pins the wall clock to ctx.now and seeds randomness).
"$tools/node_modules/.bin/jco" componentize "$here/component.js" --bundle \
    --wit "$wit" --world-name {{world}} --disable http fetch-event --out "$out"
ls -l "$out" >&2
