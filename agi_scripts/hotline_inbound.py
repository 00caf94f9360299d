#!/usr/bin/env python3
"""Classic AGI: an inbound 12345 call, relayed to the ACD's inbound flow (docs/agi.md)."""

import sys

try:
    from agi_scripts import _entry
except ImportError:  # run as a file by Asterisk
    import _entry


def main() -> int:
    return _entry.run("hotline", resumable=True)


if __name__ == "__main__":
    sys.exit(main())
