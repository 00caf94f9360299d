#!/usr/bin/env bash
# Build Asterisk 22.10.1 once, with only the modules the end-to-end tests and benchmarks/asterisk.py
# load, and keep the install in a cache OUTSIDE the clone so every run and every clone reuses it.
# Called by `make test` and .ci/run before pytest; does nothing (in well under a second) when the
# cached install's stamp matches this script's source sha256 and module list.
#
#   bash tests/support/ensure_asterisk.sh           build when missing, print the prefix
#   bash tests/support/ensure_asterisk.sh --where   print the prefix if built, else the reason; no build
#
# Where the source comes from, first that exists:
#   1. $CALLCENTER_ASTERISK_SRC (a tarball path), an explicitly named optional cache;
#   2. shared/asterisk/asterisk-22.10.1.tar.gz in a parent directory of the clone (the machines of
#      this project keep a copy there because they cannot download);
#   3. the official release from downloads.asterisk.org (checked against its published .sha256).
# Where none is possible the script says why, writes that ONE reason next to the cache, and exits 0:
# tests/e2e then skip with that reason.  A build that fails is an error (exit 1, log path printed).
#
# Where the install goes: $CALLCENTER_ASTERISK_PREFIX if set, else
# $CALLCENTER_CACHE_DIR/asterisk-22.10.1 with CALLCENTER_CACHE_DIR defaulting to /var/cache/callcenter
# for root and ${XDG_CACHE_HOME:-~/.cache}/callcenter otherwise.  tests/support/asterisk.py uses the
# same rule (it calls this script with --where).  The build log goes to <prefix>.build.log.
set -euo pipefail

VERSION=22.10.1
# sha256 of the git-archive tarball of tag 22.10.1 kept in ../shared/asterisk (see its README)
SHARED_SHA256=248b634d1a6c784aa3266e8cbfb8402780c04a468652992260a4aabab8023ff5
URL_BASE=https://downloads.asterisk.org/pub/telephony/asterisk/releases

# Modules the tests load (a module after its dependencies: menuselect enables in order) (tests/support/asterisk.py writes the same list into modules.conf).
# Core (chan Local, AMI, pbx builtins such as Answer/Wait/Set/GotoIf) is always built.
MODULES=(
    pbx_config pbx_spool
    app_dial app_queue app_playback app_stack app_exec app_echo app_verbose app_senddtmf app_originate
    res_speech res_agi res_musiconhold res_timing_timerfd
    func_callerid func_cdr func_logic func_db func_strings func_channel func_global
    cdr_csv
    bridge_simple bridge_builtin_features bridge_holding
    codec_ulaw codec_alaw codec_a_mu
    format_wav format_pcm format_sln
)

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

if [ "$(id -u)" -eq 0 ]; then
    cache_dir="${CALLCENTER_CACHE_DIR:-/var/cache/callcenter}"
else
    cache_dir="${CALLCENTER_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/callcenter}"
fi
prefix="${CALLCENTER_ASTERISK_PREFIX:-$cache_dir/asterisk-$VERSION}"
stamp="$prefix/.callcenter-stamp"
reason_file="$prefix.unavailable"
log="$prefix.build.log"

# The stamp names what was built: the source's sha256 and the module list.
want_stamp() { printf 'asterisk %s sha256 %s modules %s\n' "$VERSION" "$1" "${MODULES[*]}"; }

built_ok() {
    [ -x "$prefix/sbin/asterisk" ] && [ -f "$stamp" ] || return 1
    local sha
    sha="$(sed -n 's/^asterisk [^ ]* sha256 \([0-9a-f]*\) modules .*/\1/p' "$stamp")"
    [ -n "$sha" ] && [ "$(cat "$stamp")" = "$(want_stamp "$sha")" ]
}

if [ "${1:-}" = "--where" ]; then
    if built_ok; then echo "$prefix"; exit 0; fi
    if [ -f "$reason_file" ]; then cat "$reason_file"; else
        echo "no Asterisk $VERSION built under $prefix: run tests/support/ensure_asterisk.sh (make test does)"
    fi
    exit 3
fi

if built_ok; then
    echo "ensure_asterisk: ok ($prefix)" >&2
    echo "$prefix"
    exit 0
fi

mkdir -p "$(dirname "$prefix")"
unavailable() {
    echo "$1" >"$reason_file"
    echo "ensure_asterisk: $1 (the Asterisk end-to-end tests will skip)" >&2
    exit 0
}

# --------------------------------------------------------------------------- find the source
work="$(mktemp -d "${TMPDIR:-/tmp}/callcenter-asterisk-build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
tarball=""
expected=""
if [ -n "${CALLCENTER_ASTERISK_SRC:-}" ]; then
    [ -f "$CALLCENTER_ASTERISK_SRC" ] || { echo "ensure_asterisk: CALLCENTER_ASTERISK_SRC=$CALLCENTER_ASTERISK_SRC is not a file" >&2; exit 1; }
    tarball="$CALLCENTER_ASTERISK_SRC"
else
    d="$repo"
    while [ "$d" != "/" ]; do
        d="$(dirname "$d")"
        if [ -f "$d/shared/asterisk/asterisk-$VERSION.tar.gz" ]; then
            tarball="$d/shared/asterisk/asterisk-$VERSION.tar.gz"; expected="$SHARED_SHA256"; break
        fi
    done
fi
if [ -z "$tarball" ]; then
    command -v curl >/dev/null 2>&1 || unavailable "no Asterisk $VERSION source: no CALLCENTER_ASTERISK_SRC, no shared/asterisk copy above the clone, and no curl to download it"
    echo "ensure_asterisk: downloading $URL_BASE/asterisk-$VERSION.tar.gz" >&2
    if ! curl -fsSL --max-time 300 -o "$work/asterisk-$VERSION.tar.gz" "$URL_BASE/asterisk-$VERSION.tar.gz" \
        || ! curl -fsSL --max-time 60 -o "$work/asterisk-$VERSION.sha256" "$URL_BASE/asterisk-$VERSION.sha256"; then
        unavailable "no Asterisk $VERSION source: no CALLCENTER_ASTERISK_SRC, no shared/asterisk copy above the clone, and $URL_BASE cannot be reached"
    fi
    tarball="$work/asterisk-$VERSION.tar.gz"
    expected="$(awk '{print $1; exit}' "$work/asterisk-$VERSION.sha256")"
fi
sha="$(sha256sum "$tarball" | awk '{print $1}')"
if [ -n "$expected" ] && [ "$sha" != "$expected" ]; then
    echo "ensure_asterisk: $tarball has sha256 $sha, expected $expected" >&2
    exit 1
fi

# --------------------------------------------------------------------------- build deps
deps=(build-essential libedit-dev libjansson-dev libxml2-dev uuid-dev libsqlite3-dev libssl-dev pkg-config)
missing=()
for p in "${deps[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "ensure_asterisk: missing Debian packages ${missing[*]} and cannot apt-get install them (need root + apt-get)" >&2
        exit 1
    fi
    echo "ensure_asterisk: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    for attempt in 1 2 3 4 5 6 7 8 9 10; do  # another apt may hold the dpkg lock for a while
        if apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then break; fi
        [ "$attempt" -eq 10 ] && { echo "ensure_asterisk: apt-get install failed" >&2; exit 1; }
        sleep 15
    done
fi

# --------------------------------------------------------------------------- build
jobs="${CALLCENTER_ASTERISK_JOBS:-$(nproc 2>/dev/null || echo 2)}"
echo "ensure_asterisk: building Asterisk $VERSION into $prefix (make -j$jobs, a few minutes; log: $log)" >&2
start=$(date +%s)
rm -rf "$prefix" "$reason_file"
(
    set -e
    tar xzf "$tarball" -C "$work"
    cd "$work/asterisk-$VERSION"
    # No SIP here: callers and agents are Local channels.  --with-jansson-bundled=no: Debian's.
    ./configure --prefix="$prefix" --without-pjproject --without-dahdi --without-pri --without-ss7 \
        --without-openr2 --without-libxslt --without-postgres --without-unixodbc --disable-xmldoc
    make menuselect.makeopts
    # every module category off (compiler flags keep their defaults), then the list back on
    args=()
    for cat in ADDONS APPS BRIDGES CDR CEL CHANNELS CODECS FORMATS FUNCS PBX RES TESTS UTILS \
               CORE_SOUNDS MOH EXTRA_SOUNDS; do
        args+=(--disable-category "MENUSELECT_$cat")
    done
    for m in "${MODULES[@]}"; do args+=(--enable "$m"); done
    menuselect/menuselect "${args[@]}" menuselect.makeopts
    for m in "${MODULES[@]}"; do
        if grep -v "^MENUSELECT_BUILD_DEPS=" menuselect.makeopts | grep -Eq "^MENUSELECT_[A-Z_]+=(.* )?$m( |\$)"; then
            grep -E "^MENUSELECT_[A-Z_]+=(.* )?$m( |\$)" menuselect.makeopts >&2 || true
            echo "module $m still disabled" >&2; exit 1
        fi
    done
    make -j"$jobs" NOISY_BUILD=
    make install
) >"$log" 2>&1 || { echo "ensure_asterisk: the build failed, see $log" >&2; exit 1; }
want_stamp "$sha" >"$stamp"
echo "ensure_asterisk: built in $(( $(date +%s) - start )) s ($prefix)" >&2
echo "$prefix"
