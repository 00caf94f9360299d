#!/bin/sh
# Make sure `promtool` is on PATH: tests/metrics run it on the real /metrics
# output, the rule files and the dashboard queries.  It comes from Debian's
# `prometheus` package (promtool is in the same package as the server; in a
# container without systemd nothing is started by installing it).
#
#   sh tests/support/ensure_promtool.sh      # called by `make test` / .ci/run
set -eu
if command -v promtool >/dev/null 2>&1; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
echo "promtool not found: installing Debian package 'prometheus'" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
command -v promtool >/dev/null 2>&1 || { echo "promtool still missing after installing 'prometheus'" >&2; exit 1; }
promtool --version 2>&1 | head -1 >&2
