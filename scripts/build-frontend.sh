#!/usr/bin/env bash
# Build the web app (frontend/) into src/branchline/server/ui_dist/, which the server serves.
# Idempotent: dependencies are reinstalled (npm ci, from the committed package-lock.json) only
# when the lockfile changed since the last install; the build itself always runs (a few seconds).
set -euo pipefail
cd "$(dirname "$0")/../frontend"

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
npm run --silent build
echo "build-frontend: web app built into src/branchline/server/ui_dist/"
