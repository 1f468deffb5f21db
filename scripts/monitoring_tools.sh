#!/usr/bin/env bash
# Installs promtool, prometheus and amtool into .monitoring-tools/, idempotently:
#   promtool    the alert-rule tests (tests/monitoring/test_rules.py: `promtool check rules`
#               and `promtool test rules`)
#   prometheus  the local stack's Prometheus (devstack/prometheus.py: the `prometheus`
#               component `make up` starts, scraping the services with the same rules)
#   amtool      the Alertmanager configuration's tests (tests/deploy/test_alertmanager.py:
#               `amtool check-config` and `amtool config routes test` on
#               monitoring/alertmanager/alertmanager.yaml)
#
# promtool and prometheus come from Debian's `prometheus` package, amtool from Debian's
# `prometheus-alertmanager`, each unpacked without installing it: nothing is installed
# system-wide, and no Prometheus or Alertmanager server is started or enabled by this script
# (the dev stack starts its own Prometheus, from .monitoring-tools/, with its own config and
# data in .stack/; it runs no Alertmanager). `apt-get download` fetches each .deb into a
# temporary folder, `dpkg-deb -x` unpacks it there, and only the binaries named below are
# kept: promtool and prometheus from the same package, so the rules are tested by the same
# version that evaluates them. Each package's version is recorded in
# .monitoring-tools/PACKAGE.version (prometheus.version, alertmanager.version).
#
# The bootstrap (`make up`, `make test`, .ci/run through `make test`) runs this script; it is
# the one way these tools get installed.
#
# A second run with every tool in place does nothing and prints one line per package.
# Set FJB_PROMTOOL_REINSTALL=1 to fetch them again. A tool that cannot be fetched or unpacked
# stops the script with an error naming its package and a non-zero status (amtool as promtool:
# the tests that need either fail without it, they do not skip);
# tests/deploy/test_alertmanager.py runs a copy against a stand-in apt-get, both ways.
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS=.monitoring-tools

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

# installed VERSION_FILE BINARY...: every binary runs and the version is recorded
installed() {
  local version_file=$1; shift
  [ -s "$version_file" ] || return 1
  for bin in "$@"; do
    [ -x "$TOOLS/$bin" ] && "$TOOLS/$bin" --version >/dev/null 2>&1 || return 1
  done
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# apt-get download writes into the current folder, as the invoking user; "_apt" must be able
# to write there when run as root, so the folder is opened to it
chmod 0777 "$work"

updated=0
# install PACKAGE VERSION_FILE BINARY...: fetch Debian's PACKAGE, keep usr/bin/BINARY...
install_package() {
  local package=$1 version_file=$2; shift 2
  local names="$*"
  if [ "${FJB_PROMTOOL_REINSTALL:-0}" != 1 ] && installed "$version_file" "$@"; then
    say "${names// / and } ready: $(cat "$version_file") ($TOOLS/)"
    return 0
  fi
  for tool in apt-get dpkg-deb; do
    command -v "$tool" >/dev/null 2>&1 || {
      echo "error: $tool is needed to fetch $names from Debian's $package package" >&2
      return 1
    }
  done
  fetch() { (cd "$work" && apt-get download -q "$package" >/dev/null 2>&1); }
  say "fetching Debian's $package package ($names only; nothing is installed)"
  if ! fetch; then
    if [ "$(id -u)" = 0 ] && [ "$updated" = 0 ]; then
      say "apt-get download found nothing; running apt-get update first"
      apt-get update -qq >/dev/null || { echo "error: 'apt-get update' failed; cannot fetch $package" >&2; return 1; }
      updated=1
    fi
    fetch || {
      echo "error: 'apt-get download $package' failed (run 'apt-get update' as root first?)" >&2
      return 1
    }
  fi
  local deb version
  deb=$(find "$work" -maxdepth 1 -name "${package}_*.deb" | head -n 1)
  [ -n "$deb" ] || { echo "error: no ${package}_*.deb was downloaded" >&2; return 1; }
  version=$(dpkg-deb -f "$deb" Version)
  rm -rf "$work/root"
  dpkg-deb -x "$deb" "$work/root"
  for bin in "$@"; do
    [ -x "$work/root/usr/bin/$bin" ] || { echo "error: $deb holds no usr/bin/$bin" >&2; return 1; }
  done
  mkdir -p "$TOOLS"
  printf '*\n' > "$TOOLS/.gitignore"   # the folder ignores itself: nothing in it is committed
  for bin in "$@"; do
    install -m 0755 "$work/root/usr/bin/$bin" "$TOOLS/$bin.new"
    mv -f "$TOOLS/$bin.new" "$TOOLS/$bin"
    "$TOOLS/$bin" --version >/dev/null
  done
  echo "$package $version (Debian package), $(basename "$deb")" > "$version_file"
  rm -f "$deb"
  say "${names// / and } ready: $(cat "$version_file") ($TOOLS/)"
}

install_package prometheus "$TOOLS/prometheus.version" promtool prometheus
rm -f "$TOOLS/promtool.version"   # the version file of earlier runs, which kept promtool only
install_package prometheus-alertmanager "$TOOLS/alertmanager.version" amtool
