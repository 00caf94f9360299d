#!/bin/sh
# Make sure Debian's Chromium and a CJK font are installed: tests/kb/test_kb_public.py
# loads the public knowledge-base pages in headless Chromium and keeps screenshots
# (the font makes the Chinese text render rather than boxes).
#
#   sh tests/support/ensure_chromium.sh      # called by `make test` / .ci/run
set -eu
if command -v chromium >/dev/null 2>&1 && fc-list 2>/dev/null | grep -qi "Noto Sans CJK"; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
echo "chromium or fonts-noto-cjk not found: installing the Debian packages" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-noto-cjk >/dev/null
command -v chromium >/dev/null 2>&1 || { echo "chromium still missing after installing it" >&2; exit 1; }
