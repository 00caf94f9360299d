"""Asterisk 22's side of AGI and FastAGI, for tests and benchmarks (like treq.testing).

Asterisk cannot be installed here, so this plays it exactly as the recorded
transcripts show (tests/agi/transcripts, README summary table):

* the ``agi_*`` environment block in Asterisk's order, FastAGI with
  ``agi_network``/``agi_network_script`` first (08a);
* replies: ``200 result=...``, ``510``, the multi-line ``520`` usage block,
  ``511`` for channel/media commands on a dead channel (02, 03, 08b);
* a caller hang-up: the running command answers ``-1`` first, then SIGHUP
  (classic) or an unprompted ``HANGUP`` line (FastAGI); nothing with
  ``AGISIGHUP=no``; ``AGIEXITONHANGUP=yes`` closes the pipes (04);
* how res_agi *reads* commands (res/res_agi.c ``run_agi``): the descriptor is
  wrapped in a stdio stream (``fdopen`` + ``setlinebuf``) and one ``fgets`` runs
  each time ``poll()`` finds the raw descriptor readable.  The first ``fgets``
  ``read()``s every byte waiting, so lines written together while no command
  runs stay in the stdio buffer and are never run until *new* bytes arrive
  (README point 14): the session stalls exactly as Asterisk's does.  A line
  arriving while ``STREAM FILE``/``SAY NUMBER``/``GET DATA`` runs aborts it with
  no reply; while ``WAIT FOR DIGIT`` runs it answers ``200 result=1`` (01b,
  point 7: those commands poll the raw descriptor).  Applications run by
  ``EXEC`` (Dial, Wait, ...) do not watch it: the line waits until they return;
* ``EXEC Dial``: DIALSTATUS ANSWER/NOANSWER/BUSY/CONGESTION/CHANUNAVAIL/CANCEL,
  ``-1`` when the agent hangs up first without ``g`` (06b), the ``U()``
  gosub run on answer; empty Dial variables after a failed Dial (01, 05);
* one more ``HANGUP`` when the FastAGI server closes (08a); a CR kept in a
  command (01b); optional split writes (surprise 9).

:class:`FakeChannel` is the protocol-level model (no I/O); :class:`FastAgiCall`
and :class:`ClassicAgiCall` connect it to a real server socket or a real
script's pipes.  Durations are scaled by ``speed`` so tests run fast.
"""

from __future__ import annotations

import os
import re
import shlex
import signal as _signal
import sys
from dataclasses import dataclass, field

from twisted.internet import defer, protocol

DEAD = "511 Command Not Permitted on a dead channel or intercept routine\n"
INVALID = "510 Invalid or unknown command\n"
GET_VARIABLE_USAGE = (
    "520-Invalid command syntax.  Proper usage follows:\n"
    "Returns <literal>0</literal> if <replaceable>variablename</replaceable> is not set. Returns "
    "<literal>1</literal> if <replaceable>variablename</replaceable> is set and returns the variable in "
    "parentheses.\n"
    "Example return code: 200 result=1 (testvariable)\n"
    "520 End of proper usage.\n"
)
GENERIC_USAGE = "520-Invalid command syntax.  Proper usage follows:\nUsage text.\n520 End of proper usage.\n"
# every channel/media command answers 511 once the caller is gone (02, 03)
DEAD_REFUSED = {"ANSWER", "CHANNEL STATUS", "WAIT FOR DIGIT", "STREAM FILE", "HANGUP", "SAY NUMBER", "GET DATA",
                "CONTROL STREAM FILE", "RECORD FILE", "SAY DIGITS"}
# commands that poll the AGI descriptor while they run, so a new line stops them (01b, point 7)
INTERRUPTED_BY_INPUT = {"wfd", "stream", "say", "getdata"}
KNOWN = ["CHANNEL STATUS", "GET FULL VARIABLE", "GET VARIABLE", "SET VARIABLE", "WAIT FOR DIGIT", "STREAM FILE",
         "SAY NUMBER", "GET DATA", "DATABASE PUT", "DATABASE GET", "DATABASE DEL", "ANSWER", "HANGUP", "NOOP",
         "VERBOSE", "EXEC"]
ENV_ORDER = ["agi_request", "agi_channel", "agi_language", "agi_type", "agi_uniqueid", "agi_version",
             "agi_callerid", "agi_calleridname", "agi_callingpres", "agi_callingani2", "agi_callington",
             "agi_callingtns", "agi_dnid", "agi_rdnis", "agi_context", "agi_extension", "agi_priority",
             "agi_enhanced", "agi_accountcode", "agi_threadid"]


def environment(*, request: str, uniqueid: str, callerid: str = "13812345678", network_script: str | None = None,
                args: tuple = (), extension: str = "12345", context: str = "cc-inbound") -> list[tuple[str, str]]:
    """The env block as (key, value) pairs in Asterisk 22's order (01, 08a)."""
    n = uniqueid.split(".")[-1]
    vals = {
        "agi_request": request, "agi_channel": f"PJSIP/trunk-{int(n):08x}" if n.isdigit() else "PJSIP/trunk-0",
        "agi_language": "en", "agi_type": "PJSIP", "agi_uniqueid": uniqueid, "agi_version": "22.10.1",
        "agi_callerid": callerid or "unknown", "agi_calleridname": "unknown" if not callerid else "Caller",
        "agi_callingpres": "0" if callerid else "67", "agi_callingani2": "0", "agi_callington": "0",
        "agi_callingtns": "0", "agi_dnid": extension, "agi_rdnis": "unknown", "agi_context": context,
        "agi_extension": extension, "agi_priority": "3", "agi_enhanced": "0.0", "agi_accountcode": "",
        "agi_threadid": "139896897091264",
    }
    pairs = []
    if network_script is not None:
        pairs += [("agi_network", "yes"), ("agi_network_script", network_script)]
    pairs += [(k, vals[k]) for k in ENV_ORDER]
    pairs += [(f"agi_arg_{i}", str(a)) for i, a in enumerate(args, 1)]
    return pairs


def env_bytes(pairs) -> bytes:
    return b"".join(f"{k}: {v}\n".encode() for k, v in pairs) + b"\n"


@dataclass
class Agent:
    """How a dialled agent endpoint behaves (like the transcripts' [agents] 2001-2006)."""

    answer_after: float | None = 0.05  # None: rings until the Dial timeout (2002)
    talk: float = 0.2  # then the agent hangs up first; None: talks until the caller hangs up
    busy: bool = False  # 2003
    congestion: bool = False  # 2004


@dataclass
class CallRecord:
    """What happened on the Asterisk side: the dialplan's view after AGI() returned."""

    commands: list[str] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)
    variables: dict = field(default_factory=dict)
    agistatus: str = ""
    dialplan_continued: bool = False  # False: AGI() returned -1, the h extension ran (hang-up)
    dead: bool = False
    exit_status: int | None = None
    stderr: bytes = b""
    hangup_lines: int = 0
    signals: int = 0
    dials: list[str] = field(default_factory=list)
    interrupts: int = 0  # running media/wait commands stopped by a line from the program (01b)
    unread: list[str] = field(default_factory=list)  # lines written but never run (pipelined at idle, point 14)


class FakeChannel:
    """One caller's channel as res_agi presents it (pure model; time via ``clock``)."""

    def __init__(self, clock, *, agents: dict | None = None, speed: float = 0.05, agisighup: bool = True,
                 exit_on_hangup: bool = False, variables: dict | None = None, file_seconds: dict | None = None,
                 answered_hook=None, default_agent: Agent | None = None):
        self.clock = clock
        self.agents = agents or {}
        self.default_agent = default_agent  # an endpoint not in ``agents``; None: CHANUNAVAIL (like 2999)
        self.speed = speed
        self.agisighup = agisighup
        self.exit_on_hangup = exit_on_hangup
        self.vars = dict(variables or {})
        self.db: dict = {}
        self.file_seconds = file_seconds or {}
        self.answered_hook = answered_hook  # (call_id, agent_id) -> Deferred: the Dial U() gosub
        self.up = False
        self.dead = False
        self.failed = False
        self.record = CallRecord()
        self.write = None  # set by the transport: write(str)
        self.signal_hangup = None  # set by the transport: deliver SIGHUP / HANGUP line
        self.close_pipes = None
        self._running = None  # (kind, timer/state dict)
        self.on_idle = None
        self._triggers: list = []
        self.moh = False
        self._fd = b""  # bytes written to Asterisk's end of the descriptor, not read() yet
        self._stdio = b""  # bytes res_agi's stdio stream has read() but fgets has not returned yet
        self._polling = False

    # ------------------------------------------------------------ the caller

    def when(self, prefix: str, action, delay: float = 0.0, once: bool = True, nth: int = 1) -> None:
        """Run ``action(channel)`` ``delay`` s after the ``nth`` command starting with ``prefix``."""
        self._triggers.append({"prefix": prefix, "action": action, "delay": delay, "once": once, "n": nth})

    def press(self, digit: str) -> None:
        """The caller presses a key: it reaches a running WAIT FOR DIGIT/STREAM FILE/GET DATA, else is lost (01)."""
        if self.dead or self._running is None:
            return
        kind, st = self._running
        if kind == "wfd":
            self._complete(f"200 result={ord(digit)}\n")
        elif kind in ("stream", "say"):
            if digit in st["escape"]:
                pos = int(8000 * (self.clock.seconds() - st["t0"]) / self.speed) if self.speed else 0
                self._complete(f"200 result={ord(digit)}" + (f" endpos={pos}\n" if kind == "stream" else "\n"))
        elif kind == "getdata":
            st["digits"] += digit
            if digit == "#" or len(st["digits"]) >= st["max"]:
                self._complete(f"200 result={st['digits'].rstrip('#')}\n")

    def hang_up(self) -> None:
        """The caller hangs up: the running command answers -1 first, then the signal (README surprise 1)."""
        if self.dead:
            return
        self.dead = True
        self.record.dead = True
        if self._running is not None:
            kind, st = self._running
            if kind == "dial":
                self.vars["DIALSTATUS"] = "ANSWER" if st.get("answered") else "CANCEL"
                if not st.get("answered"):
                    self._dial_vars_empty(ring=True)
            line = "200 result=-1\n"
            if kind == "stream":
                pos = int(8000 * (self.clock.seconds() - st["t0"]) / self.speed) if self.speed else 0
                line = f"200 result=-1 endpos={pos}\n"
            self._complete(line, poll=False)
        if self.agisighup and self.signal_hangup is not None:
            self.record.signals += 1
            self.signal_hangup()
        if self.exit_on_hangup and self.close_pipes is not None:
            self.close_pipes()
            return
        self._poll()  # run_agi: needhup is handled (signal) before the next poll() and fgets

    # ------------------------------------------------------------ commands

    def data_received(self, data: bytes) -> None:
        """Bytes from the AGI program arrived on the descriptor (not read yet: see the module doc)."""
        if not data:
            return
        self._fd += data
        if self._running is not None:
            kind, _st = self._running
            if kind not in INTERRUPTED_BY_INPUT:
                return  # EXEC Dial/Wait/...: the line waits in the descriptor until the app returns
            # ast_waitstream_full / ast_waitfordigit_full / ast_app_getdata_full saw the raw
            # descriptor readable: STREAM FILE, SAY NUMBER and GET DATA stop with no reply,
            # WAIT FOR DIGIT answers 1 (01b; res_agi.c handle_streamfile "don't print a result line")
            self._cancel_running()
            self.record.interrupts += 1
            if kind == "wfd":
                self._reply("200 result=1\n")
        self._poll()

    def _poll(self) -> None:
        """run_agi's loop: while idle and poll() finds the descriptor readable, one fgets + one command."""
        if self._polling:
            return
        self._polling = True
        try:
            while self._running is None and self._fd:
                nl = self._stdio.find(b"\n")
                if nl < 0:
                    # fgets with an empty stdio buffer: read() takes everything waiting
                    self._stdio += self._fd
                    self._fd = b""
                    nl = self._stdio.find(b"\n")
                    if nl < 0:
                        break  # fgets waits for the rest of the line
                line, self._stdio = self._stdio[:nl], self._stdio[nl + 1:]
                self.command(line.decode("utf-8", "surrogateescape"))  # only LF removed; CR kept (01b)
        finally:
            self._polling = False

    def session_started(self) -> None:
        """A new AGI() on this channel: a new descriptor and stdio stream (nothing carried over)."""
        self._fd = b""
        self._stdio = b""

    @property
    def unread(self) -> list[str]:
        """Complete lines the program wrote that Asterisk has not run (stuck in the stdio buffer or fd)."""
        return [ln.decode("utf-8", "surrogateescape") for ln in (self._stdio + self._fd).split(b"\n")[:-1]]

    def command(self, line: str) -> None:
        """Run one command line read by fgets while no command runs (LF already removed; any CR kept, 01b)."""
        self.record.commands.append(line)
        if self._running is not None:  # pragma: no cover - _poll only reads while idle
            raise AssertionError(f"res_agi reads no command while {self._running[0]} runs")
        self._run_triggers(line)
        try:
            self._execute(line)
        except _Usage as u:
            self._reply(u.text)

    def _run_triggers(self, line: str) -> None:
        for t in list(self._triggers):
            if line.upper().startswith(t["prefix"].upper()):
                t["n"] -= 1
                if t["n"] > 0:
                    continue
                if t["once"]:
                    self._triggers.remove(t)
                self.clock.callLater(t["delay"], t["action"], self)

    def _execute(self, line: str) -> None:
        upper = line.upper()
        verb = next((k for k in KNOWN if upper == k or upper.startswith(k + " ")), None)
        if verb is None:
            self._reply(INVALID)
            return
        rest = line[len(verb):]
        if '"' not in rest and "\\" not in rest:
            args = rest.split()
        else:
            try:
                args = shlex.split(rest, posix=True)
            except ValueError:
                args = rest.split()
        if self.dead and verb in DEAD_REFUSED:
            self._reply(DEAD)
            return
        getattr(self, "_c_" + verb.lower().replace(" ", "_"))(args)

    def _c_answer(self, args):
        self.up = True
        self._reply("200 result=0\n")

    def _c_hangup(self, args):
        self._reply("200 result=1\n")
        self.hang_up()

    def _c_channel_status(self, args):
        self._reply(f"200 result={6 if self.up else 4}\n")

    def _c_noop(self, args):
        self._reply("200 result=0\n")

    def _c_verbose(self, args):
        self._reply("200 result=1\n")

    def _c_set_variable(self, args):
        if len(args) < 2:
            raise _Usage(GENERIC_USAGE)
        self.vars[args[0]] = args[1]
        self._reply("200 result=1\n")

    def _c_get_variable(self, args):
        if not args:
            raise _Usage(GET_VARIABLE_USAGE)
        if args[0] in self.vars:
            self._reply(f"200 result=1 ({self.vars[args[0]]})\n")
        else:
            self._reply("200 result=0\n")

    def _c_get_full_variable(self, args):
        if not args:
            raise _Usage(GENERIC_USAGE)
        text = re.sub(r"\$\{([^}]*)\}", lambda m: str(self.vars.get(m.group(1), "")), args[0])
        self._reply(f"200 result=1 ({text})\n")

    def _c_database_put(self, args):
        if len(args) < 3:
            raise _Usage(GENERIC_USAGE)
        self.db[(args[0], args[1])] = args[2]
        self._reply("200 result=1\n")

    def _c_database_get(self, args):
        if len(args) < 2:
            raise _Usage(GENERIC_USAGE)
        v = self.db.get((args[0], args[1]))
        self._reply("200 result=0\n" if v is None else f"200 result=1 ({v})\n")

    def _c_database_del(self, args):
        if len(args) < 2:
            raise _Usage(GENERIC_USAGE)
        self.db.pop((args[0], args[1]), None)
        self._reply("200 result=1\n")

    def _c_wait_for_digit(self, args):
        if not args or not args[0].lstrip("-").isdigit():
            raise _Usage(GENERIC_USAGE)
        ms = int(args[0])
        st = {"t0": self.clock.seconds()}
        self._start("wfd", st, ms / 1000.0 * self.speed, "200 result=0\n")

    def _c_stream_file(self, args):
        if len(args) < 1:
            raise _Usage(GENERIC_USAGE)
        name = args[0]
        escape = args[1] if len(args) > 1 else ""
        secs = self.file_seconds.get(name, 1.0)
        if secs is None:  # a missing file: -1 endpos=0 and AGISTATUS=FAILURE later (01b)
            self.failed = True
            self._reply("200 result=-1 endpos=0\n")
            return
        st = {"t0": self.clock.seconds(), "escape": escape}
        self._start("stream", st, secs * self.speed, f"200 result=0 endpos={int(secs * 8000)}\n")

    def _c_say_number(self, args):
        if not args or not args[0].lstrip("-").isdigit():
            raise _Usage(GENERIC_USAGE)
        st = {"t0": self.clock.seconds(), "escape": args[1] if len(args) > 1 else ""}
        self._start("say", st, 0.5 * self.speed, "200 result=0\n")

    def _c_get_data(self, args):
        if not args:
            raise _Usage(GENERIC_USAGE)
        timeout = int(args[1]) if len(args) > 1 else 5000
        mx = int(args[2]) if len(args) > 2 else 1024
        st = {"t0": self.clock.seconds(), "digits": "", "max": mx}
        self._start("getdata", st, timeout / 1000.0 * self.speed, None)

    def _c_exec(self, args):
        if not args:
            raise _Usage(GENERIC_USAGE)
        app, data = args[0], (args[1] if len(args) > 1 else "")
        low = app.lower()
        if low == "startmusiconhold":
            self.moh = True
            self._reply("200 result=0\n")
        elif low == "stopmusiconhold":
            self.moh = False
            self._reply("200 result=0\n")
        elif low in ("noop", "playback", "set"):
            if low == "set" and "=" in data:
                k, v = data.split("=", 1)
                self.vars[k] = v
            self._reply("200 result=0\n")
        elif low == "dial":
            self._dial(data)
        else:
            self._reply("200 result=-2\n")  # unknown application (01)

    # ------------------------------------------------------------ Dial

    def _dial_vars_empty(self, ring: bool) -> None:
        for k in ("ANSWEREDTIME", "ANSWEREDTIME_MS", "DIALEDTIME", "DIALEDTIME_MS"):
            self.vars[k] = ""
        self.vars["RINGTIME"] = "0" if ring else ""

    def _dial(self, data: str) -> None:
        parts = data.split(",")
        endpoint = parts[0]
        timeout = float(parts[1]) if len(parts) > 1 and parts[1] else 30.0
        opts = ",".join(parts[2:])
        self.record.dials.append(endpoint)
        if self.dead:
            self._reply("200 result=-1\n")
            return
        agent = self.agents.get(endpoint, self.default_agent)
        if agent is None:
            self.vars["DIALSTATUS"] = "CHANUNAVAIL"
            self._dial_vars_empty(False)
            self._reply("200 result=0\n")
            return
        if agent.busy or agent.congestion:
            self.vars["DIALSTATUS"] = "BUSY" if agent.busy else "CONGESTION"
            self._dial_vars_empty(False)
            self._reply("200 result=0\n")
            return
        st = {"t0": self.clock.seconds(), "answered": False, "g": "g" in re.sub(r"\([^)]*\)", "", opts)}
        self._running = ("dial", st)
        if agent.answer_after is None or agent.answer_after > timeout:
            st["timer"] = self.clock.callLater(timeout, self._dial_noanswer)  # Dial timeouts in real seconds
        else:
            st["timer"] = self.clock.callLater(agent.answer_after, self._dial_answered, agent, opts)

    def _dial_noanswer(self) -> None:
        self.vars["DIALSTATUS"] = "NOANSWER"
        self._dial_vars_empty(True)
        self._complete("200 result=0\n")

    @defer.inlineCallbacks
    def _dial_answered(self, agent: Agent, opts: str):
        run = self._running
        if run is None or run[0] != "dial":
            return
        st = run[1]
        m = re.search(r"U\(([^)]*)\)", opts)
        if m and self.answered_hook is not None:
            parts = m.group(1).split("^")
            if len(parts) >= 3:
                yield self.answered_hook(parts[1], parts[2])
        if self._running is not run:
            return
        st["answered"] = True
        self.vars["DIALSTATUS"] = "ANSWER"
        if agent.talk is not None:
            st["timer"] = self.clock.callLater(agent.talk, self._agent_hung_up)
        else:
            st["timer"] = None

    def _agent_hung_up(self) -> None:
        run = self._running
        if run is None or run[0] != "dial":
            return
        self.vars.update({"ANSWEREDTIME": "1", "ANSWEREDTIME_MS": "1000", "DIALEDTIME": "1", "DIALEDTIME_MS": "1050",
                          "RINGTIME": ""})
        # 06b: without g Dial returns -1 though the caller is still up; with g it returns 0 (06c)
        self._complete("200 result=0\n" if run[1]["g"] else "200 result=-1\n")

    # ------------------------------------------------------------ plumbing

    def _start(self, kind, st, seconds, final_line) -> None:
        self._running = (kind, st)
        if final_line is None and kind == "getdata":
            def done():
                d = st["digits"]
                self._complete(f"200 result={d} (timeout)\n" if d else "200 result= (timeout)\n")
            st["timer"] = self.clock.callLater(seconds, done)
        else:
            st["timer"] = self.clock.callLater(seconds, self._complete, final_line)

    def _cancel_running(self) -> None:
        if self._running is None:
            return
        timer = self._running[1].get("timer")
        if timer is not None and timer.active():
            timer.cancel()
        self._running = None

    def _complete(self, line: str, *, poll: bool = True) -> None:
        self._cancel_running()
        self._reply(line)
        if self.on_idle is not None:
            self.on_idle()
        if poll:
            self._poll()

    def _reply(self, text: str) -> None:
        self.record.replies.append(text)
        if self.write is not None:
            self.write(text)

    def program_ended(self, exit_status: int | None = None) -> CallRecord:
        self._cancel_running()
        r = self.record
        r.variables = dict(self.vars)
        r.unread = self.unread
        r.exit_status = exit_status
        if self.dead:
            r.agistatus, r.dialplan_continued = "HANGUP", False
        elif (exit_status not in (None, 0)) or self.failed:
            r.agistatus, r.dialplan_continued = "FAILURE", True
        else:
            r.agistatus, r.dialplan_continued = "SUCCESS", True
        return r


class _Usage(Exception):
    def __init__(self, text):
        self.text = text


class _FastAgiClient(protocol.Protocol):
    def __init__(self, call: FastAgiCall):
        self.call = call

    def connectionMade(self):
        self.call._connected(self)

    def dataReceived(self, data):
        self.call.channel.data_received(data)

    def connectionLost(self, reason=None):
        self.call._lost()


class FastAgiCall:
    """Asterisk's FastAGI client for one call against a real server (08a/08b)."""

    def __init__(self, reactor, channel: FakeChannel, env_pairs, *, split: bool = False, garbage: bytes | None = None):
        self.reactor = reactor
        self.channel = channel
        self.env = env_pairs
        self.split = split
        self.garbage = garbage
        self.done = defer.Deferred()
        self.proto = None
        self.closed_by_server = False
        self._queue: list = []
        self._flushing = False

    def connect(self, host: str, port: int) -> defer.Deferred:
        cc = protocol.ClientCreator(self.reactor, _FastAgiClient, self)
        d = cc.connectTCP(host, port, timeout=2)  # MAX_AGI_CONNECT is 2000 ms (08d2)

        def failed(f):
            # 08d: nothing listening -> AGISTATUS=FAILURE, the dialplan continues
            r = self.channel.record
            r.agistatus, r.dialplan_continued = "FAILURE", True
            if not self.done.called:
                self.done.callback(r)
        d.addErrback(failed)
        return self.done

    def _write(self, text: str) -> None:
        if self.proto is None or self.proto.transport is None:
            return
        data = text.encode("utf-8", "surrogateescape")
        if not self.split:
            self.proto.transport.write(data)
            return
        # surprise 9: lines arrive split across segments; keep byte order with a queue
        self._queue.extend([data[:3], data[3:]] if len(data) > 3 else [data])
        if not self._flushing:
            self._flushing = True
            self.reactor.callLater(0, self._flush_one)

    def _flush_one(self):
        if not self._queue:
            self._flushing = False
            return
        piece = self._queue.pop(0)
        if self.proto is not None and self.proto.transport is not None and self.proto.transport.connected:
            self.proto.transport.write(piece)
        self.reactor.callLater(0.001, self._flush_one)

    def _connected(self, proto) -> None:
        self.proto = proto
        self.channel.session_started()
        self.channel.write = self._write
        self.channel.signal_hangup = self._hangup_line
        proto.transport.write(self.garbage if self.garbage is not None else env_bytes(self.env))

    def _hangup_line(self) -> None:
        self.channel.record.hangup_lines += 1
        self._write("HANGUP\n")  # after the reply, before the next one (08b, 08b2)

    def _lost(self) -> None:
        self.closed_by_server = True
        self.channel.write = None
        run = self.channel._running
        if run is not None and run[0] == "dial":
            # Dial does not watch the AGI socket (STREAM FILE does, 08c2): it runs to its end,
            # then AGI() notices the closed socket.  (An assumption: no transcript covers it.)
            self.channel.on_idle = self._finish
            return
        self._finish()

    def _finish(self) -> None:
        self.channel.on_idle = None
        if not self.done.called:
            self.done.callback(self.channel.program_ended())


class _ClassicProcess(protocol.ProcessProtocol):
    def __init__(self, call: ClassicAgiCall):
        self.call = call
        self.stderr = b""

    def connectionMade(self):
        self.call._started(self)

    def outReceived(self, data):
        self.call.channel.data_received(data)

    def errReceived(self, data):
        self.stderr += data

    def processEnded(self, reason):
        self.call._ended(reason.value.exitCode, self.stderr)


class ClassicAgiCall:
    """Asterisk's classic AGI for one call: fork the real script, speak over its pipes (01-07)."""

    def __init__(self, reactor, channel: FakeChannel, env_pairs, argv: list[str], *, env: dict | None = None):
        self.reactor = reactor
        self.channel = channel
        self.env_pairs = env_pairs
        self.argv = argv
        self.proc_env = env
        self.done = defer.Deferred()
        self.proc = None
        self.started_at = None

    def start(self) -> defer.Deferred:
        self.started_at = self.reactor.seconds()
        self.reactor.spawnProcess(_ClassicProcess(self), self.argv[0], self.argv,
                                  env=self.proc_env if self.proc_env is not None else dict(os.environ),
                                  childFDs={0: "w", 1: "r", 2: "r"})
        return self.done

    def _started(self, proc) -> None:
        self.proc = proc
        self.channel.session_started()
        self.channel.write = self._write
        self.channel.signal_hangup = self._sighup
        self.channel.close_pipes = self._close_pipes
        proc.transport.write(env_bytes(self.env_pairs))

    def _write(self, text: str) -> None:
        if self.proc is not None and self.proc.transport is not None:
            try:
                self.proc.transport.write(text.encode("utf-8", "surrogateescape"))
            except Exception:
                pass

    def _sighup(self) -> None:
        # write() then kill(): the reply is in the pipe before the signal (02 strace appendix)
        try:
            self.proc.transport.signalProcess(_signal.SIGHUP)
        except Exception:
            pass

    def _close_pipes(self) -> None:
        # AGIEXITONHANGUP=yes: both pipes closed; the script reads EOF, writes get EPIPE (04)
        try:
            self.proc.transport.closeStdin()
            self.proc.transport.closeChildFD(1)
        except Exception:
            pass

    def _ended(self, code, stderr) -> None:
        r = self.channel.program_ended(code)
        r.stderr = stderr
        self.channel.write = None
        if not self.done.called:
            self.done.callback(r)


def script_argv(module_path: str, *args) -> list[str]:
    return [sys.executable, module_path, *args]
