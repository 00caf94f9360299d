"""Optional dependencies, by the extra of setup.cfg that installs them.

The ACD server (``pip install callcenter``) has none of them; the simulator's charts and progress
bars (``[sim]``) and the agents' terminal UI (``[seat]``) do.  A command that needs one says which
extra to install instead of dying with a traceback.
"""

from __future__ import annotations

import importlib

__all__ = ["require"]


def require(*modules: str, extra: str, what: str) -> None:
    """Import ``modules`` or exit with one line naming the extra that installs them."""
    absent = []
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            absent.append(name)
    if absent:
        raise SystemExit(f"{what} needs {', '.join(absent)}, which the ACD server does not install: "
                         f"pip install 'callcenter[{extra}]' (in a checkout: .venv/bin/python -m pip install "
                         f"-e '.[{extra}]', or `make run`, which installs every extra)")
