#!/bin/sh
# Make sure the report tests have a CJK font (Debian fonts-noto-cjk: the PDF and charts embed it)
# and poppler-utils (pdftoppm, pdftotext, pdffonts: the tests render the PDF to PNG and read it).
# Called by `make test`; does nothing when both are there.  Without root: ask an administrator to
# install the two Debian packages, or install the fonts under ~/.local/share/fonts.
set -eu
have() {
    command -v pdftoppm >/dev/null 2>&1 && command -v fc-list >/dev/null 2>&1 && fc-list | grep -qi "Noto Sans CJK"
}
have && exit 0
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "ensure_fonts: installing Debian packages fonts-noto-cjk poppler-utils fontconfig" >&2
export DEBIAN_FRONTEND=noninteractive
for i in 1 2 3; do
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends fonts-noto-cjk poppler-utils fontconfig >/dev/null && break
    sleep 5  # the dpkg lock may be held by another install
done
have || { echo "ensure_fonts: still no Noto Sans CJK / pdftoppm after installing" >&2; exit 1; }
