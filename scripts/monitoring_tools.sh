#!/usr/bin/env bash
# Installs promtool and prometheus into .monitoring-tools/, idempotently:
#   promtool    the alert-rule tests (tests/monitoring/test_rules.py: `promtool check rules`
#               and `promtool test rules`)
#   prometheus  the local stack's Prometheus (devstack/prometheus.py: the `prometheus`
#               component `make up` starts, scraping the services with the same rules)
#
# Both come from Debian's `prometheus` package, unpacked without installing it: nothing is
# installed system-wide, and no Prometheus server is started or enabled by this script
# (the dev stack starts its own, from .monitoring-tools/, with its own config and data in
# .stack/). `apt-get download` fetches the .deb into a temporary folder, `dpkg-deb -x`
# unpacks it there, and only usr/bin/promtool and usr/bin/prometheus are kept: both from the
# same package, so the rules are tested by the same version that evaluates them. The package
# version is recorded in .monitoring-tools/prometheus.version.
#
# The bootstrap (`make up`, `make test`, .ci/run through `make test`) runs this script; it is
# the one way both tools get installed.
#
# A second run with both tools in place does nothing and prints one line.
# Set FJB_PROMTOOL_REINSTALL=1 to fetch them again.
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS=.monitoring-tools
BINARIES=(promtool prometheus)
VERSION_FILE=$TOOLS/prometheus.version

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

installed() {
  [ -s "$VERSION_FILE" ] || return 1
  for bin in "${BINARIES[@]}"; do
    [ -x "$TOOLS/$bin" ] && "$TOOLS/$bin" --version >/dev/null 2>&1 || return 1
  done
}

if [ "${FJB_PROMTOOL_REINSTALL:-0}" != 1 ] && installed; then
  say "promtool and prometheus ready: $(cat "$VERSION_FILE") ($TOOLS/)"
  exit 0
fi

for tool in apt-get dpkg-deb; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "error: $tool is needed to fetch promtool and prometheus from Debian's prometheus package" >&2
    exit 1
  }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# apt-get download writes into the current folder, as the invoking user; "_apt" must be able
# to write there when run as root, so the folder is opened to it
chmod 0777 "$work"

fetch() { (cd "$work" && apt-get download -q prometheus >/dev/null 2>&1); }

say "fetching Debian's prometheus package (promtool and prometheus only; nothing is installed)"
if ! fetch; then
  if [ "$(id -u)" = 0 ]; then
    say "apt-get download found nothing; running apt-get update first"
    apt-get update -qq >/dev/null
  fi
  fetch || {
    echo "error: 'apt-get download prometheus' failed (run 'apt-get update' as root first?)" >&2
    exit 1
  }
fi

deb=$(find "$work" -maxdepth 1 -name 'prometheus_*.deb' | head -n 1)
[ -n "$deb" ] || { echo "error: no prometheus_*.deb was downloaded" >&2; exit 1; }
version=$(dpkg-deb -f "$deb" Version)

dpkg-deb -x "$deb" "$work/root"
for bin in "${BINARIES[@]}"; do
  [ -x "$work/root/usr/bin/$bin" ] || { echo "error: $deb holds no usr/bin/$bin" >&2; exit 1; }
done

mkdir -p "$TOOLS"
printf '*\n' > "$TOOLS/.gitignore"   # the folder ignores itself: nothing in it is committed
for bin in "${BINARIES[@]}"; do
  install -m 0755 "$work/root/usr/bin/$bin" "$TOOLS/$bin.new"
  mv -f "$TOOLS/$bin.new" "$TOOLS/$bin"
  "$TOOLS/$bin" --version >/dev/null
done
echo "prometheus $version (Debian package), $(basename "$deb")" > "$VERSION_FILE"
rm -f "$TOOLS/promtool.version"   # the version file of earlier runs, which kept promtool only
say "promtool and prometheus ready: $(cat "$VERSION_FILE") ($TOOLS/)"
