#!/usr/bin/env bash
# Build {{crate_name}}.wasm, a WASI p2 component exporting the {{world}} world of wit/policy.wit, with a
# pinned componentize-py.
#
#   ./build.sh                      # writes {{crate_name}}.wasm next to this script
#
# The toolchain goes into a throwaway virtualenv (COMPONENTIZE_PY_VENV, default under /tmp), created on first
# use from PyPI; only python3 (3.10 or newer, with venv) is needed. WIT points at the folder holding
# policy.wit (default: wit/ here, a copy of kanban's WIT package); OUT picks another output file.
set -euo pipefail

COMPONENTIZE_PY_VERSION=0.25.1
here="$(cd "$(dirname "$0")" && pwd)"
wit="$(cd "${WIT:-$here/wit}" && pwd)"
venv="${COMPONENTIZE_PY_VENV:-/tmp/kanban-componentize-py-$COMPONENTIZE_PY_VERSION}"
out="$(realpath -m "${OUT:-$here/{{crate_name}}.wasm}")"

if [ "$("$venv/bin/componentize-py" --version 2>/dev/null)" != "componentize-py $COMPONENTIZE_PY_VERSION" ]; then
    echo "installing componentize-py $COMPONENTIZE_PY_VERSION into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "componentize-py==$COMPONENTIZE_PY_VERSION"
fi

# componentize-py generates the bindings for the world, imports app.py (and policy.py) into a CPython built
# for WASI, snapshots the initialised interpreter and wraps it as a component. It mounts its Python path into
# that interpreter, writes __pycache__ there and the snapshot keeps the folder's listing, so it runs in a
# scratch folder holding only the plugin's own modules (add yours to the cp line).
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
cp "$here/app.py" "$here/policy.py" "$stage/"
(cd "$stage" && "$venv/bin/componentize-py" --wit-path "$wit" --world {{world}} \
    componentize app --output "$out")
ls -l "$out" >&2
