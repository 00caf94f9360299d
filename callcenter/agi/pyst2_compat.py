"""pyst2 0.5.1 as the classic scripts use it, with its quirks handled in one place.

Quirks (issue 6, checked against pyst2 0.5.1's asterisk/agi.py):

* ``AGI()`` installs a SIGHUP handler with ``signal.signal``, which raises
  ValueError outside the main thread: :func:`open_agi` refuses early with a
  clear error instead.
* It writes every env line, command and result to stderr, which Asterisk logs
  as warnings: we give it /dev/null.
* ``execute()`` raises ``AGIAppError`` (not ``AGIHangup``) for the command a
  hang-up interrupted (``200 result=-1``), then ``AGISIGHUPHangup`` for every
  later call *without sending anything* (so even SET VARIABLE, which works on a
  dead channel, is lost); a ``511`` becomes ``AGIUnknownError(511, ...)``; a
  bare ``HANGUP`` line (FastAGI) makes it fail with ``ValueError`` (int('')).
  :func:`safe_execute` maps all of these to a plain (code, result) pair and,
  after a SIGHUP, writes the command itself so dead-channel commands still run.

The relay loop itself never calls ``execute()``: it copies raw lines, so none
of these can corrupt a call (see relay_client.py).
"""

from __future__ import annotations

import os
import threading


def open_agi(stdin=None, stdout=None):
    """pyst2's AGI() reading the env block, silenced, in the main thread only."""
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("pyst2's AGI() installs a SIGHUP handler: create it in the main thread")
    import sys

    from asterisk.agi import AGI  # pyst2

    devnull = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    kw = {"stderr": devnull}
    kw["stdin"] = stdin or sys.stdin
    kw["stdout"] = stdout or sys.stdout
    return AGI(**kw)


def safe_execute(agi, command: str, *args) -> tuple[int, str]:
    """Run one command; return (code, result) whatever pyst2 makes of the reply.

    (-1, "") when the pipes are gone.
    """
    from asterisk import agi as pyst

    if getattr(agi, "_got_sighup", False):
        # pyst2 would raise AGISIGHUPHangup without sending: talk to the pipes directly
        try:
            agi.send_command(command, *args)
            line = agi.stdin.readline()
        except (OSError, ValueError):
            return -1, ""
        code, _, rest = line.strip().partition(" ")
        try:
            code_i = int(code)
        except ValueError:
            return 0, line.strip()
        if rest.startswith("result="):
            rest = rest[len("result="):].split(" ", 1)[0]
        return code_i, rest if code_i == 200 else ""
    try:
        res = agi.execute(command, *args)
        return 200, res.get("result", ("", ""))[0]
    except pyst.AGISIGPIPEHangup:
        return -1, ""
    except pyst.AGIAppError:  # result=-1 (incl. the command a hang-up interrupted)
        return 200, "-1"
    except pyst.AGIUnknownError as exc:  # 511 on a dead channel, and other codes
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
        return code, ""
    except pyst.AGIInvalidCommand:
        return 510, ""
    except pyst.AGIUsageError:
        return 520, ""
    except ValueError:  # a bare "HANGUP" line where a reply was expected
        return 0, "HANGUP"
    except OSError:
        return -1, ""
