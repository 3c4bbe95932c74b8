#!/usr/bin/env bash
# Build the polyglot test plugins: guests that misbehave on purpose, written in Python (componentize-py) and
# JavaScript (jco componentize), so the host's tests can check that fuel and memory limits hold for them.
#
#   tests/plugins-polyglot/build.sh [OUT_DIR]     # default OUT_DIR: tests/plugins-polyglot/target
#
# writes hostile_py.wasm and hostile_js.wasm, and the docs examples business_hours_guard.wasm (Python) and
# label_router.wasm (JavaScript) with their own build.sh. The toolchains are the ones the docs examples pin (the same
# componentize-py version as docs/examples/business-hours-guard/build.sh, the same package-lock.json as
# docs/examples/label-router), installed into throwaway folders under /tmp on first use.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="$(mkdir -p "${1:-$here/target}" && cd "${1:-$here/target}" && pwd)"

# Python: the example's pinned componentize-py.
py_example="$root/docs/examples/business-hours-guard"
version="$(sed -n 's/^COMPONENTIZE_PY_VERSION=//p' "$py_example/build.sh")"
venv="${COMPONENTIZE_PY_VENV:-/tmp/kanban-componentize-py-$version}"
if [ "$("$venv/bin/componentize-py" --version 2>/dev/null)" != "componentize-py $version" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "componentize-py==$version"
fi
# In a scratch copy, as the example's build.sh does: componentize-py writes __pycache__ into its Python path.
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
cp "$here/python-hostile/app.py" "$stage/"
(cd "$stage" && "$venv/bin/componentize-py" --wit-path "$root/wit" --world respawn-guard-policy \
    componentize app --output "$out/hostile_py.wasm")

# JavaScript: the label-router example's pinned jco, and its flags (no wasi:http; see its build.sh).
js_example="$root/docs/examples/label-router"
lock_hash="$(cat "$js_example/package.json" "$js_example/package-lock.json" | sha256sum | cut -c1-12)"
tools="${JCO_DIR:-/tmp/kanban-jco-$lock_hash}"
if [ ! -x "$tools/node_modules/.bin/jco" ]; then
    mkdir -p "$tools"
    cp "$js_example/package.json" "$js_example/package-lock.json" "$tools/"
    (cd "$tools" && npm ci --no-audit --no-fund --loglevel=error)
fi
"$tools/node_modules/.bin/jco" componentize "$here/js-hostile/hostile.js" \
    --wit "$root/wit" --world-name respawn-guard-policy --disable http fetch-event --out "$out/hostile_js.wasm"

# The docs examples, built by their own scripts as a reader would.
OUT="$out/business_hours_guard.wasm" "$root/docs/examples/business-hours-guard/build.sh"
OUT="$out/label_router.wasm" "$root/docs/examples/label-router/build.sh"

ls -l "$out"/*.wasm >&2
