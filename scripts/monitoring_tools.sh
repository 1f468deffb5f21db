#!/usr/bin/env bash
# Installs promtool into .monitoring-tools/, idempotently, for the alert-rule tests
# (tests/monitoring/test_rules.py: `promtool check rules` and `promtool test rules`).
#
# promtool comes from Debian's `prometheus` package, unpacked without installing it: no
# Prometheus server is installed, started or enabled. `apt-get download` fetches the .deb
# into a temporary folder, `dpkg-deb -x` unpacks it there, and only usr/bin/promtool is
# kept. The package version is recorded in .monitoring-tools/promtool.version.
#
# A second run with promtool in place does nothing and prints one line.
# Set FJB_PROMTOOL_REINSTALL=1 to fetch it again.
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS=.monitoring-tools
PROMTOOL=$TOOLS/promtool
VERSION_FILE=$TOOLS/promtool.version

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

if [ -x "$PROMTOOL" ] && [ -s "$VERSION_FILE" ] && [ "${FJB_PROMTOOL_REINSTALL:-0}" != 1 ] \
  && "$PROMTOOL" --version >/dev/null 2>&1; then
  say "promtool ready: $(cat "$VERSION_FILE") ($PROMTOOL)"
  exit 0
fi

for tool in apt-get dpkg-deb; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "error: $tool is needed to fetch promtool from Debian's prometheus package" >&2
    exit 1
  }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# apt-get download writes into the current folder, as the invoking user; "_apt" must be able
# to write there when run as root, so the folder is opened to it
chmod 0777 "$work"

fetch() { (cd "$work" && apt-get download -q prometheus >/dev/null 2>&1); }

say "fetching Debian's prometheus package (for promtool only; nothing is installed)"
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
[ -x "$work/root/usr/bin/promtool" ] || { echo "error: $deb holds no usr/bin/promtool" >&2; exit 1; }

mkdir -p "$TOOLS"
printf '*\n' > "$TOOLS/.gitignore"   # the folder ignores itself: nothing in it is committed
install -m 0755 "$work/root/usr/bin/promtool" "$PROMTOOL.new"
mv -f "$PROMTOOL.new" "$PROMTOOL"
echo "prometheus $version (Debian package), $(basename "$deb")" > "$VERSION_FILE"
"$PROMTOOL" --version >/dev/null
say "promtool ready: $(cat "$VERSION_FILE") ($PROMTOOL)"
