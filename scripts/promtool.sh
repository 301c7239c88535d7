#!/usr/bin/env bash
# Print the path of a promtool binary: the one on PATH, or one extracted from Debian's
# `prometheus` package into .run/tools/ (downloaded with apt-get, not installed: no service is
# started and nothing outside the repository changes; $POWEROPS_TOOLS picks another folder).
# Exits 1 if neither is possible.
set -euo pipefail
if command -v promtool >/dev/null 2>&1; then command -v promtool; exit 0; fi
root="$(cd "$(dirname "$0")/.." && pwd)"
tools="${POWEROPS_TOOLS:-$root/.run/tools}"
if [ -x "$tools/usr/bin/promtool" ]; then echo "$tools/usr/bin/promtool"; exit 0; fi
command -v apt-get >/dev/null 2>&1 || { echo "no promtool and no apt-get" >&2; exit 1; }
mkdir -p "$tools/deb"
(cd "$tools/deb" && apt-get download prometheus >&2) || {
  echo "apt-get download prometheus failed (is the package index there? apt-get update)" >&2
  exit 1
}
dpkg-deb -x "$tools"/deb/prometheus_*.deb "$tools"
rm -rf "$tools/deb"
echo "$tools/usr/bin/promtool"
