"""``seat-agent tui``: the Textual terminal UI of one agent.

Always visible: the agent, their state and how long they have been in it,
and the connection in plain words ("cannot reach the server; retrying").  An
offer pops up with the caller's context (masked number, category, wait,
choices, recent contacts); ``a`` accepts, ``x`` rejects.  After a call the
wrap-up form (disposition, notes, ticket fields) is shown; the right-hand
panel searches the knowledge base.

Keys: F2 ready, F3 not ready, F4 end wrap-up, Ctrl+S save the wrap-up (and
end it), Ctrl+K search, F10 log out and quit.

The app takes any :class:`~seat_agent.client.SeatSession`: a real
:class:`~seat_agent.client.SeatClient` under the asyncio reactor (see
:func:`run_tui`), or a loopback session in tests.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Input, Label, Select, Static

from .client import SeatSession

__all__ = ["SeatApp", "OfferScreen", "run_tui", "DISPOSITIONS"]

DISPOSITIONS = ("resolved", "information-given", "ticket-opened", "referred", "complaint", "other")


def _clock_text(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600:d}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60:02d}:{s % 60:02d}"


def offer_text(offer) -> str:
    lines = [
        f"[b]Incoming call[/b]  {offer.call_id}",
        f"Caller:    {offer.caller or 'unknown'}",
        f"Queue:     {offer.queue}   category {offer.category}   priority {offer.priority}",
        f"Waited:    {_clock_text(offer.waited_s)}" + ("   (callback)" if offer.callback else ""),
        f"Choices:   {', '.join(offer.choices) if offer.choices else 'none'}",
    ]
    if offer.contacts is None:
        lines.append("Contacts:  (records unavailable)")
    elif not offer.contacts:
        lines.append("Contacts:  no calls in the last 7 days")
    else:
        lines.append(f"Contacts:  {len(offer.contacts)} in the last 7 days")
        for c in offer.contacts[:5]:
            lines.append(f"  {str(c.get('arrival', ''))[:16]}  {c.get('category', '')}  {c.get('outcome', '')}")
    lines.append("")
    lines.append("[b]a[/b] accept    [b]x[/b] reject")
    return "\n".join(lines)


class SeatChanged(Message):
    """Something happened on the seat (posted by the session listener)."""

    def __init__(self, kind: str, msg: Any):
        super().__init__()
        self.kind, self.msg = kind, msg


class OfferScreen(ModalScreen):
    """The offer pop-up; closes itself when the offer ends."""

    BINDINGS = [Binding("a", "accept", "Accept"), Binding("x", "reject", "Reject")]
    DEFAULT_CSS = """
    OfferScreen { align: center middle; }
    #offer-box { width: 70; height: auto; border: thick $warning; background: $panel; padding: 1 2; }
    """

    def __init__(self, seat: SeatSession):
        super().__init__()
        self.seat = seat
        self.call_id = seat.offer.call_id if seat.offer else None

    def compose(self) -> ComposeResult:
        yield Static(offer_text(self.seat.offer), id="offer-box")

    def action_accept(self) -> None:
        self.app.command(self.seat.accept, self.call_id)
        self.dismiss("accepted")

    def action_reject(self) -> None:
        self.app.command(self.seat.reject, self.call_id)
        self.dismiss("rejected")


class SeatApp(App):
    TITLE = "seat-agent"
    CSS = """
    #status { height: 1; background: $primary; color: $text; padding: 0 1; }
    #conn { height: auto; padding: 0 1; }
    #conn.bad { background: $error; color: $text; }
    #body { height: 1fr; }
    #left { width: 2fr; padding: 0 1; }
    #right { width: 1fr; border-left: solid $primary; padding: 0 1; }
    #call { height: auto; min-height: 3; margin-bottom: 1; }
    #wrapup { height: auto; display: none; border: round $accent; padding: 0 1; }
    #wrapup.shown { display: block; }
    #kb-results { height: 1fr; }
    """
    BINDINGS = [
        Binding("f2", "ready", "Ready", priority=True),
        Binding("f3", "not_ready", "Not ready", priority=True),
        Binding("f4", "end_wrapup", "End wrap-up", priority=True),
        Binding("ctrl+s", "save_wrapup", "Save wrap-up", priority=True),
        Binding("ctrl+k", "search", "Search KB", priority=True),
        Binding("f10", "logout", "Log out & quit", priority=True),
    ]

    def __init__(self, seat: SeatSession, *, start: Callable[[], Any] | None = None,
                 stop: Callable[[], Any] | None = None):
        super().__init__()
        self.seat = seat
        self._start, self._stop = start, stop
        self.notice = ""  # last error or result in plain words
        seat.add_listener(lambda kind, msg: self.post_message(SeatChanged(kind, msg)))

    # -- layout ----------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Static(id="status")
        yield Static(id="conn")
        with Horizontal(id="body"):
            with Vertical(id="left"):
                yield Static("No call.", id="call")
                with Vertical(id="wrapup"):
                    yield Label("Wrap-up")
                    yield Select([(d, d) for d in DISPOSITIONS], prompt="disposition", id="disposition")
                    yield Input(placeholder="notes", id="notes")
                    yield Input(placeholder="ticket title", id="ticket-title")
                    yield Input(placeholder="ticket fields: district=A; address=...", id="ticket-fields")
                    yield Button("Save and end wrap-up (Ctrl+S)", id="save", variant="primary")
                yield Static("", id="notice")
            with Vertical(id="right"):
                yield Label("Knowledge base")
                yield Input(placeholder="search (Ctrl+K), Enter", id="kb-query")
                with VerticalScroll(id="kb-results"):
                    yield Static("", id="kb-text")
        yield Footer()

    def on_mount(self) -> None:
        self.refresh_view()
        self.set_interval(1.0, self.refresh_status)
        if self._start is not None:
            self._start()

    async def on_unmount(self) -> None:
        if self._stop is not None:
            self._stop()

    # -- view --------------------------------------------------------------------
    def status_line(self) -> str:
        seat = self.seat
        state = seat.state.upper() if seat.logged_in else "OFFLINE"
        reason = f" ({seat.reason})" if seat.reason and seat.state == "not-ready" else ""
        return f"{seat.agent_id}  {seat.pool or '-'}  |  {state}{reason}  {_clock_text(seat.timer_s)}"

    def refresh_status(self) -> None:
        self.query_one("#status", Static).update(self.status_line())
        conn = self.query_one("#conn", Static)
        conn.update(self.seat.status)
        conn.set_class(not self.seat.logged_in, "bad")

    def refresh_view(self) -> None:
        seat = self.seat
        self.refresh_status()
        if seat.call_id and seat.call_phase == "on-call":
            call = f"[b]On call[/b] {seat.call_id}"
        elif seat.call_id and seat.call_phase == "wrap-up":
            call = f"[b]Wrap-up[/b] of {seat.call_id}: fill in the form, then Ctrl+S (or F4 to skip)"
        elif seat.offer is not None:
            call = f"Ringing: {seat.offer.call_id} (a: accept, x: reject)"
        else:
            call = "No call." + ("  F2: ready" if seat.state == "not-ready" else "")
        self.query_one("#call", Static).update(call)
        self.query_one("#wrapup").set_class(seat.state == "wrap-up", "shown")
        self.query_one("#notice", Static).update(self.notice)
        self._sync_offer_screen()

    def _sync_offer_screen(self) -> None:
        showing = isinstance(self.screen, OfferScreen)
        offer = self.seat.offer
        if offer is not None and self.seat.state == "offered" and not showing:
            self.push_screen(OfferScreen(self.seat))
        elif showing and (offer is None or offer.call_id != self.screen.call_id):
            self.screen.dismiss("ended")

    def on_seat_changed(self, event: SeatChanged) -> None:
        if event.kind == "error":
            self.notice = f"[red]{event.msg.code}[/red]: {event.msg.message}"
        elif event.kind == "offer_ended" and event.msg.result not in ("answered",):
            self.notice = f"offer of {event.msg.call_id} ended: {event.msg.result}"
        elif event.kind == "wrapup_saved":
            self.notice = f"wrap-up of {event.msg.call_id} saved"
        self.refresh_view()

    # -- commands ------------------------------------------------------------------
    def command(self, fn: Callable, *args) -> Any:
        """Run a seat command; say so in plain words if the server is not there."""
        try:
            return fn(*args)
        except (ConnectionError, ValueError) as exc:
            self.notice = f"[red]{exc}[/red]"
            self.refresh_view()
            return None

    def action_ready(self) -> None:
        self.command(self.seat.ready)

    def action_not_ready(self) -> None:
        self.command(self.seat.not_ready, "break")

    def action_end_wrapup(self) -> None:
        self.command(self.seat.end_wrapup)

    def action_search(self) -> None:
        self.query_one("#kb-query", Input).focus()

    def action_logout(self) -> None:
        if self.seat.logged_in:
            self.command(self.seat.logout)
        self.exit()

    @on(Button.Pressed, "#save")
    def _save_pressed(self) -> None:
        self.action_save_wrapup()

    def action_save_wrapup(self) -> None:
        if self.seat.state != "wrap-up":
            self.notice = "nothing to wrap up"
            self.refresh_view()
            return
        disposition = self.query_one("#disposition", Select).value
        if disposition in (None, Select.BLANK) or not isinstance(disposition, str):
            self.notice = "[red]choose a disposition first[/red]"
            self.refresh_view()
            return
        ticket: dict[str, str] = {}
        title = self.query_one("#ticket-title", Input).value.strip()
        if title:
            ticket["title"] = title
        for part in self.query_one("#ticket-fields", Input).value.split(";"):
            if "=" in part:
                k, v = part.split("=", 1)
                if k.strip():
                    ticket[k.strip()[:64]] = v.strip()
        notes = self.query_one("#notes", Input).value
        d = self.command(self.seat.wrapup, disposition, notes, ticket)
        if d is None:
            return

        def saved(_):
            for wid in ("#notes", "#ticket-title", "#ticket-fields"):
                self.query_one(wid, Input).value = ""
            self.command(self.seat.end_wrapup)

        def failed(f):
            self.notice = f"[red]wrap-up not saved: {f.getErrorMessage()}[/red]"
            self.refresh_view()

        d.addCallbacks(saved, failed)

    @on(Input.Submitted, "#kb-query")
    def _search(self, event: Input.Submitted) -> None:
        query = event.value.strip()
        if not query:
            return
        d = self.command(self.seat.kb_search, query)
        if d is None:
            return
        text = self.query_one("#kb-text", Static)

        def found(res):
            if not res.articles:
                text.update(f"nothing found for {query!r}")
                return
            text.update("\n\n".join(f"[b]{a.title}[/b]\n{a.snippet}" for a in res.articles))

        d.addCallbacks(found, lambda f: text.update(f"[red]search failed: {f.getErrorMessage()}[/red]"))


def run_tui(url: str, agent_id: str, password: str, *, cafile: str | None = None) -> int:
    """Run the TUI with a real SeatClient: Twisted's asyncio reactor on Textual's loop."""
    import asyncio

    async def main() -> None:
        from twisted.internet import asyncioreactor

        asyncioreactor.install(asyncio.get_running_loop())
        from twisted.internet import reactor

        reactor.startRunning(installSignalHandlers=False)  # the loop is already running
        from .client import SeatClient

        client = SeatClient(url, agent_id, password, reactor=reactor, cafile=cafile)
        app = SeatApp(client, start=client.start, stop=client.stop)
        await app.run_async()
        if reactor.threadpool is not None:  # (name resolution may have used it) let the process end
            reactor.threadpool.stop()

    asyncio.run(main())
    return 0
