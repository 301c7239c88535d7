#!/usr/bin/env bash
# Print the path of a Chromium for the browser test: the one on PATH, else Debian's `chromium`
# package installed with apt-get (as root; Playwright drives it, nothing downloads a browser of
# its own). Exits 1 when neither is possible.
set -euo pipefail
for name in chromium chromium-browser; do
  if command -v "$name" >/dev/null 2>&1; then command -v "$name"; exit 0; fi
done
command -v apt-get >/dev/null 2>&1 || { echo "no chromium and no apt-get" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "no chromium: install Debian's chromium package (as root)" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q --no-install-recommends chromium >&2 || {
  apt-get update -q >&2 && apt-get install -y -q --no-install-recommends chromium >&2
} || { echo "apt-get install chromium failed" >&2; exit 1; }
command -v chromium
