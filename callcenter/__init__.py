"""callcenter: a Twisted ACD for a 12345 government hotline with tiered overflow.

Start with docs/architecture.md.  ``callcenter serve`` (callcenter/cli.py) builds
the :class:`callcenter.app.Acd` runtime and starts its subsystems in order.
"""

__version__ = "0.1.0"
