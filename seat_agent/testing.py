"""A test double for integrators: a seat session wired to an in-process seat server.

Like treq.testing's StubTreq, it keeps the real logic and replaces only the
network: :class:`LoopbackSeat` runs the real :class:`SeatServer` (real schema,
real session state machine, your real engine) and delivers messages both ways
synchronously, with no sockets, threads or reactor.  Blocking work (password
checks, knowledge-base search) runs inline.

    engine = Engine(config, clock)
    loop = LoopbackSeat(engine, accounts, clock=clock)
    seat = SeatSession("a1", "pw", clock=clock)
    link = loop.connect(seat)        # hello, login, login_ok, state ...
    seat.ready()
    link.drop()                      # the network blips
    loop.connect(seat)               # the session resumes with its token
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.internet.address import IPv4Address

from callcenter.seats.server import SeatServer

from .client import SeatSession

__all__ = ["LoopbackSeat", "LoopbackLink"]


class _Transport:
    def __init__(self, host: str):
        self._peer = IPv4Address("TCP", host, 0)

    def getPeer(self):
        return self._peer


class LoopbackLink:
    """One in-memory connection between a SeatSession and the server."""

    STATE_OPEN, STATE_CLOSED = 1, 3

    def __init__(self, loop: LoopbackSeat, session: SeatSession, address: str):
        self.loop, self.session = loop, session
        self.transport = _Transport(address)
        self.state = self.STATE_OPEN
        self.conn: int | None = None
        self.close_code: int | None = None

    # the server side calls these (like an autobahn protocol)
    def sendMessage(self, data: bytes, isBinary: bool = False) -> None:
        if self.state == self.STATE_OPEN:
            self.session.message_received(data)

    def sendClose(self, code: int = 1000, reason: str = "") -> None:
        self.close_code = code
        self.drop()

    def dropConnection(self, abort: bool = True) -> None:
        self.drop()

    # the test calls these
    def send_raw(self, data: bytes | str) -> None:
        """Send bytes as they are (for hostile-message tests)."""
        if self.state == self.STATE_OPEN:
            self.loop.server.received(self.conn, data.encode() if isinstance(data, str) else data)

    def drop(self) -> None:
        """The connection goes away (a network blip, or a close)."""
        if self.state != self.STATE_OPEN:
            return
        self.state = self.STATE_CLOSED
        self.loop.server.connection_lost(self.conn)
        self.session.connection_lost("(loopback dropped)")


class LoopbackSeat:
    """An in-process seat server; ``connect(session)`` opens a loopback link."""

    def __init__(self, engine: Any, accounts: Any, *, clock: Any, kb: Any = None, contacts: Any = None,
                 save_wrapup: Any = None, demo_call_control: bool = True, limits: Any = None):
        self.server = SeatServer(
            engine, reactor=None, clock=clock, accounts=accounts, kb=kb, contacts=contacts,
            save_wrapup=save_wrapup, limits=limits, demo_call_control=demo_call_control,
            run_blocking=lambda fn, *args: defer.maybeDeferred(fn, *args),
        )

    def connect(self, session: SeatSession, address: str = "127.0.0.1") -> LoopbackLink:
        link = LoopbackLink(self, session, address)
        link.conn = self.server.connection_opened(link)
        session.connection_made(lambda data: link.send_raw(data), link.drop)
        return link
