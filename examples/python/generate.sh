#!/usr/bin/env bash
# Generates the typed Python client from the committed OpenAPI document into
# examples/python/client/ (not committed: it is made from docs/openapi.json), in a virtualenv
# (default examples/python/.venv; VENV overrides) that then has the client installed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
VENV=${VENV:-$here/.venv}
if [ ! -x "$VENV/bin/openapi-python-client" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q 'openapi-python-client==0.29.1'
fi
rm -rf "$here/client"
# --config: no post hooks (ruff is not needed to use the client). --fail-on-warning: a schema
# the generator cannot model fails here instead of silently leaving a model out.
"$VENV/bin/openapi-python-client" generate --path "$here/../../docs/openapi.json" \
  --output-path "$here/client" --config "$here/generator.yaml" --fail-on-warning
"$VENV/bin/pip" install -q "$here/client"
