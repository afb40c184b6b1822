#!/usr/bin/env bash
# Install branchline for development into ./.venv: the package with every extra used by the
# tests, the web app build, and Debian's chromium for the browser tests when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[dev]"
# An editable install is not byte-compiled, and with PYTHONDONTWRITEBYTECODE set every process
# would compile the package again (about 0.1 s of each `import branchline`).
.venv/bin/python -m compileall -q src/branchline >/dev/null
# PyTorch (CPU) lets the tests cover tensors as logged values; optional for users.
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  .venv/bin/python -m pip install --quiet "torch==2.13.0" || echo "install: torch could not be installed; torch tests will be skipped"
fi

# The real wandb client, in its own venv (never the project's): tests/test_wandb_client.py drives it
# against a branchline server. Pinned to the newest release on the index when this was written.
WANDB_CLIENT_VERSION="0.31.0"
if ! .wandb-venv/bin/python -c "import wandb, sys; sys.exit(wandb.__version__ != '$WANDB_CLIENT_VERSION')" 2>/dev/null; then
  "$python" -m venv .wandb-venv
  # numpy and Pillow: what wandb.Image needs, for the media scenario.
  .wandb-venv/bin/python -m pip install --quiet "wandb==$WANDB_CLIENT_VERSION" numpy pillow
  # Byte-compile it too: each scenario starts a fresh client process.
  .wandb-venv/bin/python -m compileall -q .wandb-venv/lib >/dev/null 2>&1 || true
fi

# And one older release, from before the client's Go core: its Python code speaks GraphQL itself
# (introspection probes, another Viewer shape, lines ending in newlines). 0.17.9 is the last such.
WANDB_OLD_CLIENT_VERSION="0.17.9"
if ! .wandb-venv-old/bin/python -c "import wandb, sys; sys.exit(wandb.__version__ != '$WANDB_OLD_CLIENT_VERSION')" 2>/dev/null; then
  "$python" -m venv .wandb-venv-old
  .wandb-venv-old/bin/python -m pip install --quiet "wandb==$WANDB_OLD_CLIENT_VERSION"
  .wandb-venv-old/bin/python -m compileall -q .wandb-venv-old/lib >/dev/null 2>&1 || true
fi

# The integrations that log through the wandb client (HF Trainer, Lightning, accelerate), for
# tests/test_wandb_integrations.py. CPU torch first, so no later requirement pulls a CUDA build.
INTEGRATIONS="wandb==$WANDB_CLIENT_VERSION transformers==5.17.0 lightning==2.6.6 accelerate==1.15.0"
if [ "${BRANCHLINE_SKIP_INTEGRATIONS:-0}" != "1" ] \
  && ! .wandb-integrations-venv/bin/python -c "
import importlib.metadata as m, sys
want = dict(s.split('==') for s in '$INTEGRATIONS torch==2.13.0'.split())
sys.exit(any(m.version(n).split('+')[0] != v for n, v in want.items()))" 2>/dev/null; then
  "$python" -m venv .wandb-integrations-venv
  .wandb-integrations-venv/bin/python -m pip install --quiet "torch==2.13.0"
  # shellcheck disable=SC2086
  .wandb-integrations-venv/bin/python -m pip install --quiet $INTEGRATIONS "torch==2.13.0"
  .wandb-integrations-venv/bin/python -m compileall -q .wandb-integrations-venv/lib >/dev/null 2>&1 || true
fi

if [ -f frontend/package.json ]; then
  bash scripts/build-frontend.sh
fi

if [ "${BRANCHLINE_SKIP_BROWSER:-0}" != "1" ] && ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq chromium >/dev/null
  else
    echo "install: Debian's chromium is missing (needed by the browser tests): apt-get install chromium"
  fi
fi
# HAProxy: the load balancer in front of the server replicas in the replica test and bench.
if [ "${BRANCHLINE_SKIP_HAPROXY:-0}" != "1" ] && ! command -v haproxy >/dev/null 2>&1 && [ ! -x /usr/sbin/haproxy ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    { apt-get update -qq && apt-get install -y -qq haproxy >/dev/null; } \
      || echo "install: haproxy could not be installed; the replica test will be skipped"
  else
    echo "install: Debian's haproxy is missing (needed by the replica test): apt-get install haproxy"
  fi
fi
echo "install: done (.venv ready)"
