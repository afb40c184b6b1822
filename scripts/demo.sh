#!/usr/bin/env bash
# The main job: install everything, log a few demo runs (a fork and a rewind among them) into the
# embedded store under ./demo, then serve them with `branchline ui` on http://127.0.0.1:8765.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
.venv/bin/python examples/demo.py --dir demo
exec .venv/bin/branchline ui --dir demo --port "${PORT:-8765}" ${BRANCHLINE_UI_ARGS:-}
