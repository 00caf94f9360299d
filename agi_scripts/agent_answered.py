#!/usr/bin/env python3
"""Classic AGI: one-shot 'answered' report to the ACD (see dialplan/extensions-callcenter.conf).

Request: ``answered?call=${CC_CALL_ID}&...`` as the second AGI() argument.
"""

import sys

try:
    from agi_scripts import _entry
except ImportError:  # run as a file by Asterisk
    import _entry


def main() -> int:
    return _entry.run("answered", resumable=False)


if __name__ == "__main__":
    sys.exit(main())
