#!/usr/bin/env bash
# Build the web app (frontend/) into src/branchline/server/ui_dist/, which the server serves.
# Idempotent: dependencies are reinstalled (npm ci, from the committed package-lock.json) only
# when the lockfile changed since the last install; the build itself always runs (a few seconds).
# The app's API types are generated first from the server's OpenAPI schema, dumped by the
# installed package (.venv, or $BRANCHLINE_PYTHON), into frontend/src/generated/ (not committed).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root/frontend"
python="${BRANCHLINE_PYTHON:-$root/.venv/bin/python}"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "build-frontend: Node.js 20+ and npm are needed to build the web app (https://nodejs.org)." >&2
  exit 1
fi
major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$major" -lt 20 ]; then
  echo "build-frontend: Node.js $(node --version) is too old; the web app needs Node.js 20 or newer." >&2
  exit 1
fi

stamp="node_modules/.branchline-lock.sha256"
want="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" > "$stamp"
fi
if [ ! -x "$python" ]; then
  echo "build-frontend: $python is missing; install the package first (bash scripts/install.sh)." >&2
  exit 1
fi
mkdir -p src/generated
"$python" - src/generated/openapi.json <<'PY'
"""Write the server's OpenAPI schema (the app is built, never started: no store is opened)."""
import json
import sys

from branchline.server.app import create_app
from branchline.server.settings import ServerSettings

schema = create_app(ServerSettings(store_url="sqlite://", ui_dist=None)).openapi()
with open(sys.argv[1], "w", encoding="utf-8") as out:
    json.dump(schema, out, indent=1, sort_keys=True)
PY
npm run --silent gen:types
npm run --silent build
echo "build-frontend: web app built into src/branchline/server/ui_dist/"
