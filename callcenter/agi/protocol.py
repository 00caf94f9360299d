"""AGI protocol core: bytes in, events out; commands formatted, never sent (like h11).

Ground truth: the Asterisk 22.10.1 transcripts in
``tests/agi/transcripts`` (README.txt summary table).  What this
module relies on:

* Every line Asterisk writes ends with a bare LF, never CRLF (README "Legend").
  We split on LF only and keep any CR: a CR in a reply is data.
* The environment block is ``key: value`` lines (colon + one space, an empty
  value is ``key: ``) ended by one empty line (01, 01d, 08a).
* A reply is ``200 result=<v>[ (<data>)][ key=value...]`` (01); ``510 ...``
  for an unknown command; ``511 ...`` for a channel command on a dead channel
  (02, 03, 08b); ``520-...`` starts a multi-line usage reply that only the line
  ``520 End of proper usage.`` ends -- the lines in between are raw XML-doc
  text and may look like replies (01: ``Example return code: 200 result=1``).
* FastAGI: after a caller hang-up Asterisk writes an unprompted ``HANGUP``
  line *after* the reply to the running command and *before* the next reply;
  one more ``HANGUP`` follows when the server closes (08a, 08b, 08b2).  It is
  an event of its own, never a reply.
* Lines may arrive split across TCP segments (README surprise 9): we buffer.
* Commands must end with LF alone: Asterisk keeps a CR as part of the last
  word (01b: ``ANSWER\\r\\n`` gives 510).  :func:`format_command` refuses CR and
  LF inside arguments instead of stripping them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = [
    "ProtocolError",
    "Environment",
    "Reply",
    "HangupReceived",
    "EnvironmentReceived",
    "AgiReader",
    "parse_reply_line",
    "parse_environment",
    "format_command",
    "quote",
    "DEAD_CHANNEL",
    "INVALID_COMMAND",
    "USAGE",
]

OK = 200
INVALID_COMMAND = 510
DEAD_CHANNEL = 511
USAGE = 520

MAX_LINE = 8192  # Asterisk's own AGI buffer is 2048 for commands; replies carry variable values
MAX_ENV_LINES = 256
MAX_USAGE_LINES = 200

_ENV_KEY = re.compile(r"^[A-Za-z0-9_]{1,64}$")
_REPLY = re.compile(r"^(\d{3})([ -])(.*)$", re.S)
# result=<value>[ (<data>)][ key=value ...]; the data is greedy up to the last ")"
# that is followed only by key=value pairs (values may contain ")" and spaces).
_RESULT = re.compile(r"^result=(?P<result>\S*)(?: \((?P<data>.*)\))?(?P<rest>(?: [A-Za-z_]+=\S*)*)$", re.S)
_KV = re.compile(r"([A-Za-z_]+)=(\S*)")


class ProtocolError(Exception):
    """The peer broke the AGI protocol (malformed line, oversized line, bad block)."""


@dataclass(frozen=True, slots=True)
class Environment:
    """The ``agi_*`` block, in the order received."""

    values: dict[str, str]

    def get(self, key: str, default: str = "") -> str:
        return self.values.get(key, default)

    @property
    def network(self) -> bool:
        return self.values.get("agi_network") == "yes"

    @property
    def script(self) -> str:
        """FastAGI: the path after host:port/ including any ?query (08a); classic: agi_request."""
        return self.values.get("agi_network_script") or self.values.get("agi_request", "")

    @property
    def script_name(self) -> str:
        return self.script.split("?", 1)[0].strip("/")

    @property
    def query(self) -> dict[str, str]:
        from urllib.parse import parse_qsl

        parts = self.script.split("?", 1)
        return dict(parse_qsl(parts[1], keep_blank_values=True)) if len(parts) == 2 else {}

    @property
    def args(self) -> list[str]:
        out = []
        i = 1
        while f"agi_arg_{i}" in self.values:
            out.append(self.values[f"agi_arg_{i}"])
            i += 1
        return out

    @property
    def uniqueid(self) -> str:
        return self.values.get("agi_uniqueid", "")

    @property
    def callerid(self) -> str:
        """The raw caller number ('' when Asterisk says ``unknown``, 01d). Personal data: mask it."""
        v = self.values.get("agi_callerid", "")
        return "" if v in ("unknown", "") else v

    def to_lines(self) -> bytes:
        return b"".join(f"{k}: {v}\n".encode() for k, v in self.values.items()) + b"\n"


@dataclass(frozen=True, slots=True)
class Reply:
    """One complete reply to one command."""

    code: int
    result: str | None = None  # the text after result=, possibly ""
    data: str | None = None  # the text in parentheses, if any
    extra: dict[str, str] = field(default_factory=dict)  # endpos=..., etc.
    text: str = ""  # the whole first line after the code
    usage: tuple[str, ...] = ()  # 520: the usage lines in between

    @property
    def ok(self) -> bool:
        return self.code == OK

    @property
    def dead_channel(self) -> bool:
        return self.code == DEAD_CHANNEL

    @property
    def result_int(self) -> int | None:
        try:
            return int(self.result) if self.result not in (None, "") else None
        except ValueError:
            return None

    @property
    def digit(self) -> str:
        """The DTMF digit of a WAIT FOR DIGIT / STREAM FILE reply ('' for none).

        Replies carry the ASCII code ('5' is 53).  WAIT FOR DIGIT interrupted by a
        pipelined command answers ``result=1`` (01b), which is not a digit.
        """
        v = self.result_int
        if v is not None and 32 < v < 127:
            ch = chr(v)
            if ch in "0123456789*#ABCD":
                return ch
        return ""

    @property
    def timed_out(self) -> bool:
        return self.data == "timeout"


@dataclass(frozen=True, slots=True)
class EnvironmentReceived:
    env: Environment


@dataclass(frozen=True, slots=True)
class HangupReceived:
    """The unprompted ``HANGUP`` line (FastAGI), or a SIGHUP relayed as one."""


def parse_reply_line(line: str) -> Reply:
    """Parse one single-line reply (not the 520 block); raise ProtocolError if malformed."""
    m = _REPLY.match(line)
    if not m:
        raise ProtocolError(f"not an AGI reply: {line[:80]!r}")
    code = int(m.group(1))
    text = m.group(3)
    if code != OK:
        return Reply(code=code, text=text)
    r = _RESULT.match(text)
    if not r:
        raise ProtocolError(f"malformed 200 reply: {line[:80]!r}")
    extra = dict(_KV.findall(r.group("rest") or ""))
    return Reply(code=code, result=r.group("result"), data=r.group("data"), extra=extra, text=text)


def parse_environment(lines: list[str]) -> Environment:
    values: dict[str, str] = {}
    for line in lines:
        key, sep, value = line.partition(": ")
        if not sep:
            # "key:" with nothing after the colon is tolerated; anything else is not AGI
            if line.endswith(":") and _ENV_KEY.match(line[:-1]):
                key, value = line[:-1], ""
            else:
                raise ProtocolError(f"malformed environment line: {line[:80]!r}")
        if not _ENV_KEY.match(key):
            raise ProtocolError(f"malformed environment key: {key[:80]!r}")
        values[key] = value
    return Environment(values)


class AgiReader:
    """Incremental parser of what Asterisk sends to an AGI program.

    ``receive_data(bytes)`` returns the events completed by those bytes:
    :class:`EnvironmentReceived` once, then :class:`Reply` and
    :class:`HangupReceived` in wire order.  Raises :class:`ProtocolError` on a
    malformed or oversized line; the reader is then unusable (close the link).
    """

    def __init__(self, *, expect_env: bool = True, max_line: int = MAX_LINE):
        self._buf = b""
        self._max_line = max_line
        self._env_lines: list[str] | None = [] if expect_env else None
        self._usage: list[str] | None = None
        self._usage_first = ""
        self.broken: ProtocolError | None = None

    @property
    def in_environment(self) -> bool:
        return self._env_lines is not None

    def receive_data(self, data: bytes) -> list:
        if self.broken:
            raise self.broken
        self._buf += data
        events: list = []
        try:
            while True:
                nl = self._buf.find(b"\n")
                if nl < 0:
                    if len(self._buf) > self._max_line:
                        raise ProtocolError(f"line longer than {self._max_line} bytes")
                    break
                if nl > self._max_line:
                    raise ProtocolError(f"line longer than {self._max_line} bytes")
                raw, self._buf = self._buf[:nl], self._buf[nl + 1 :]
                ev = self._line(raw.decode("utf-8", "surrogateescape"))
                if ev is not None:
                    events.append(ev)
        except ProtocolError as exc:
            self.broken = exc
            raise
        return events

    def _line(self, line: str):
        if self._env_lines is not None:
            if line == "":
                env = parse_environment(self._env_lines)
                self._env_lines = None
                return EnvironmentReceived(env)
            if len(self._env_lines) >= MAX_ENV_LINES:
                raise ProtocolError("environment block too long")
            self._env_lines.append(line)
            return None
        if self._usage is not None:
            if line.startswith("520 "):
                usage, self._usage = tuple(self._usage), None
                return Reply(code=USAGE, text=self._usage_first, usage=usage)
            if len(self._usage) >= MAX_USAGE_LINES:
                raise ProtocolError("520 usage block too long")
            self._usage.append(line)
            return None
        if line == "HANGUP":
            return HangupReceived()
        if line.startswith("520-"):
            self._usage = []
            self._usage_first = line[4:]
            return None
        return parse_reply_line(line)


_SAFE = re.compile(r'^[^\s"\\]+$')


def quote(arg) -> str:
    """Quote one argument the way res_agi's parser reads it (quotes, backslash escapes)."""
    s = str(arg)
    if "\n" in s or "\r" in s or "\x00" in s:
        raise ValueError(f"AGI arguments cannot hold CR, LF or NUL: {s[:40]!r}")
    if _SAFE.match(s):
        return s
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_command(*words, raw_tail: str | None = None) -> bytes:
    """``format_command("SET VARIABLE", "X", "a b")`` -> ``b'SET VARIABLE X "a b"\\n'``.

    The first word is the command verb(s), written as is; the rest are quoted.
    ``raw_tail`` is appended unquoted (an EXEC application's comma-separated data
    must reach the application as one argument: quote it yourself with quote()).
    """
    if not words:
        raise ValueError("empty AGI command")
    verb = str(words[0])
    if not verb or any(c in verb for c in "\r\n\x00"):
        raise ValueError(f"bad AGI verb {verb!r}")
    parts = [verb] + [quote(w) for w in words[1:]]
    if raw_tail is not None:
        if any(c in raw_tail for c in "\r\n\x00"):
            raise ValueError("AGI command tail cannot hold CR, LF or NUL")
        parts.append(raw_tail)
    return (" ".join(parts) + "\n").encode("utf-8")
