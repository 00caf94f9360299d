"""``seat-agent tui``: the Textual terminal UI of one agent.

Always visible: the agent, their state and how long they have been in it,
and the connection in plain words ("cannot reach the server; retrying").  An
offer pops up with the caller's context (masked number, category, wait,
choices, recent contacts) and a ring countdown; ``a`` accepts, ``x`` rejects.
The caller's context stays on screen for the call and its wrap-up.  Each call
starts with an empty wrap-up form; if wrap-up ends (the pool's ``wrapup_s``)
with typed work, the work stays on screen and is saved at once as a ``draft``
wrap-up of that call, to be finished with Ctrl+S.  The right-hand panel searches
the knowledge base as one types, opens an article (Enter) and says when the
open article changed since it was opened, with the difference.  A wrong
password asks for it again.

Keys: F2 ready, F3 not ready, F4 end wrap-up, Ctrl+S save the wrap-up (and
end it), Ctrl+K search, F10 log out and quit.

The app takes any :class:`~seat_agent.client.SeatSession`: a real
:class:`~seat_agent.client.SeatClient` under the asyncio reactor (see
:func:`run_tui`), or a loopback session in tests.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.markup import escape
from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Input, Label, OptionList, Select, Static
from textual.widgets.option_list import Option

from .client import SeatSession

__all__ = ["SeatApp", "OfferScreen", "run_tui", "DISPOSITIONS"]

DISPOSITIONS = ("resolved", "information-given", "ticket-opened", "referred", "complaint", "other")


def _clock_text(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600:d}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60:02d}:{s % 60:02d}"


def ring_left_s(offer, seen_at: float | None, now: float) -> float:
    """Seconds of ringing left, counted from when this seat received the offer (the ACD's clock
    may differ from ours), never below zero."""
    if seen_at is None:
        return float(offer.ring_timeout_s)
    return max(0.0, float(offer.ring_timeout_s) - (now - seen_at))


def context_text(offer) -> str:
    """The caller's context, kept on screen for the whole call and its wrap-up."""
    lines = [f"Caller:    {offer.caller or 'unknown'}   category {offer.category}   queue {offer.queue}"]
    if offer.contacts:
        lines.append(f"History:   {len(offer.contacts)} calls in the last 7 days")
        for c in offer.contacts[:3]:
            lines.append(f"  {str(c.get('arrival', ''))[:16]}  {c.get('category', '')}  {c.get('outcome', '')}")
    elif offer.contacts is not None:
        lines.append("History:   no calls in the last 7 days")
    return "\n".join(lines)


def offer_text(offer, ring_left: float | None = None) -> str:
    lines = [
        f"[b]Incoming call[/b]  {offer.call_id}"
        + (f"   [b]ringing: {int(ring_left + 0.999)} s left[/b]" if ring_left is not None else ""),
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
        yield Static(self._text(), id="offer-box")

    def _text(self) -> str:
        offer = self.seat.offer
        if offer is None:
            return "the offer ended"
        return offer_text(offer, ring_left_s(offer, getattr(self.seat, "offer_seen_at", None), self.seat.clock.seconds()))

    def on_mount(self) -> None:
        self.set_interval(0.5, self.tick)

    def tick(self) -> None:
        """The ring countdown (also called by tests after advancing their clock)."""
        self.query_one("#offer-box", Static).update(self._text())

    def action_accept(self) -> None:
        self.app.command(self.seat.accept, self.call_id)
        self.dismiss("accepted")

    def action_reject(self) -> None:
        self.app.command(self.seat.reject, self.call_id)
        self.dismiss("rejected")


class PasswordScreen(ModalScreen):
    """A wrong password: ask again instead of leaving the seat offline."""

    DEFAULT_CSS = """
    PasswordScreen { align: center middle; }
    #pw-box { width: 60; height: auto; border: thick $error; background: $panel; padding: 1 2; }
    """

    def compose(self) -> ComposeResult:
        with Vertical(id="pw-box"):
            yield Label("Unknown agent or wrong password. Type the password again (Enter), Esc to quit.")
            yield Input(password=True, id="pw")

    def on_mount(self) -> None:
        self.query_one("#pw", Input).focus()

    @on(Input.Submitted, "#pw")
    def _submitted(self, event: Input.Submitted) -> None:
        if event.value:
            self.dismiss(event.value)

    def key_escape(self) -> None:
        self.dismiss(None)


WRAPUP_INPUTS = ("#notes", "#ticket-title", "#ticket-fields")


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
    #kb-list { height: 10; }
    #kb-results { height: 1fr; }
    #kb-notice { height: auto; color: $warning; }
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
        self.context = None  # the offer of the call on screen: the caller's context stays for the call
        self._last_offer = None
        self.wrapup_call: str | None = None  # the call the wrap-up form is for
        self.draft_call: str | None = None  # typed work saved as a draft when wrap-up ran out, not yet saved by the agent
        self.kb_debounce_s = 0.3  # search as you type, once typing pauses this long
        self._kb_seq = 0
        self._kb_timer = None
        self.kb_article = None  # the article open in the KB panel
        self.kb_notice = ""
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
                yield Input(placeholder="search as you type (Ctrl+K)", id="kb-query")
                yield Static("", id="kb-notice")
                yield OptionList(id="kb-list")
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
        ctx = ("\n" + escape(context_text(self.context))) if self.context is not None else ""
        if seat.call_id and seat.call_phase == "on-call":
            call = f"[b]On call[/b] {seat.call_id}{ctx}"
        elif seat.call_id and seat.call_phase == "wrap-up":
            call = f"[b]Wrap-up[/b] of {seat.call_id}: fill in the form, then Ctrl+S (or F4 to skip){ctx}"
        elif self.draft_call:
            call = (f"[b]Draft[/b] of {self.draft_call} saved when wrap-up ran out: finish it and Ctrl+S to save it"
                    f"{ctx}")
        elif seat.offer is not None:
            call = f"Ringing: {seat.offer.call_id} (a: accept, x: reject)"
        else:
            call = "No call." + ("  F2: ready" if seat.state == "not-ready" else "")
        self.query_one("#call", Static).update(call)
        self.query_one("#wrapup").set_class(seat.state == "wrap-up" or bool(self.draft_call), "shown")
        self.query_one("#notice", Static).update(self.notice)
        self.query_one("#kb-notice", Static).update(self.kb_notice)
        self._sync_offer_screen()

    def _sync_offer_screen(self) -> None:
        showing = isinstance(self.screen, OfferScreen)
        offer = self.seat.offer
        if offer is not None and self.seat.state == "offered" and not showing:
            self.push_screen(OfferScreen(self.seat))
        elif showing and (offer is None or offer.call_id != self.screen.call_id):
            self.screen.dismiss("ended")

    def _typed(self) -> bool:
        disposition = self.query_one("#disposition", Select).value
        return any(self.query_one(w, Input).value.strip() for w in WRAPUP_INPUTS) or isinstance(disposition, str)

    def _clear_wrapup(self) -> None:
        for wid in WRAPUP_INPUTS:
            self.query_one(wid, Input).value = ""
        self.query_one("#disposition", Select).clear()

    def _wrapup_values(self) -> tuple[Any, str, dict[str, str]]:
        ticket: dict[str, str] = {}
        title = self.query_one("#ticket-title", Input).value.strip()
        if title:
            ticket["title"] = title
        for part in self.query_one("#ticket-fields", Input).value.split(";"):
            if "=" in part:
                k, v = part.split("=", 1)
                if k.strip():
                    ticket[k.strip()[:64]] = v.strip()
        return self.query_one("#disposition", Select).value, self.query_one("#notes", Input).value, ticket

    def _state_changed(self, msg) -> None:
        if msg.old == "wrap-up" and msg.state != "wrap-up" and self.wrapup_call and self._typed():
            # wrap-up ran out (or was ended) with typed work: keep it, and save it as a draft now
            self.draft_call = self.wrapup_call
            self.wrapup_call = None
            disposition, notes, ticket = self._wrapup_values()
            d = self.command(self.seat.wrapup, disposition if isinstance(disposition, str) else "draft",
                             notes, {**ticket, "draft": "saved when wrap-up ended"}, self.draft_call)
            self.notice = (f"[yellow]wrap-up of {self.draft_call} ended: what you typed is kept and was saved as a"
                           " draft; Ctrl+S saves the final version[/yellow]")
            if d is not None:
                d.addErrback(lambda f: setattr(self, "notice", f"[red]draft not saved: {f.getErrorMessage()}[/red]"))

    def on_seat_changed(self, event: SeatChanged) -> None:
        if event.kind in ("login_ok", "resumed") and "bad-credentials" in self.notice:
            self.notice = ""
        if event.kind == "offer":
            self._last_offer = event.msg
        elif event.kind == "call_answered":
            if self._last_offer is not None and self._last_offer.call_id == event.msg.call_id:
                self.context = self._last_offer
            if not self.draft_call:  # a new call starts with an empty form (a kept draft stays)
                self._clear_wrapup()
            self.wrapup_call = event.msg.call_id
        elif event.kind == "state":
            self._state_changed(event.msg)
        elif event.kind == "kb_updated":
            self._kb_updated(event.msg)
        elif event.kind == "error" and event.msg.code == "bad-credentials":
            self._ask_password()
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

    def _ask_password(self) -> None:
        if isinstance(self.screen, PasswordScreen):
            return

        def entered(password: str | None) -> None:
            if password is None:
                self.exit()
            else:
                self.command(self.seat.retry_login, password)
                self.refresh_view()

        self.push_screen(PasswordScreen(), entered)

    def action_save_wrapup(self) -> None:
        in_wrapup = self.seat.state == "wrap-up"
        if not in_wrapup and not self.draft_call:
            self.notice = "nothing to wrap up"
            self.refresh_view()
            return
        disposition = self.query_one("#disposition", Select).value
        if disposition in (None, Select.BLANK) or not isinstance(disposition, str):
            self.notice = "[red]choose a disposition first[/red]"
            self.refresh_view()
            return
        _, notes, ticket = self._wrapup_values()
        call_id = self.seat.last_call_id if in_wrapup else self.draft_call
        d = self.command(self.seat.wrapup, disposition, notes, ticket, call_id)
        if d is None:
            return

        def saved(_):
            self._clear_wrapup()
            self.draft_call = None
            self.wrapup_call = None
            self.notice = f"wrap-up of {call_id} saved"
            if self.seat.state == "wrap-up":
                self.command(self.seat.end_wrapup)
            self.refresh_view()

        def failed(f):
            self.notice = f"[red]wrap-up not saved (what you typed is kept): {f.getErrorMessage()}[/red]"
            self.refresh_view()

        d.addCallbacks(saved, failed)

    # -- knowledge base ----------------------------------------------------------------
    @on(Input.Changed, "#kb-query")
    def _query_changed(self, event: Input.Changed) -> None:
        if self._kb_timer is not None:
            self._kb_timer.stop()
        query = event.value.strip()
        self._kb_timer = None
        if query and self.kb_debounce_s <= 0:
            self.kb_search(query)
        elif query:
            self._kb_timer = self.set_timer(self.kb_debounce_s, lambda: self.kb_search(query))

    @on(Input.Submitted, "#kb-query")
    def _search(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self.kb_search(event.value.strip())

    def kb_search(self, query: str) -> None:
        self._kb_seq += 1
        seq = self._kb_seq
        d = self.command(self.seat.kb_search, query)
        if d is None:
            return
        results = self.query_one("#kb-list", OptionList)

        def found(res):
            if seq != self._kb_seq:  # a newer search is on its way: this one is stale
                return
            results.clear_options()
            if not res.articles:
                self.kb_notice = f"nothing found for {query!r}"
            else:
                self.kb_notice = f"{len(res.articles)} articles; Enter opens one"
                results.add_options([Option(f"{escape(a.title)}\n  {escape(a.snippet.replace('**', ''))}", id=str(a.id))
                                     for a in res.articles])
            self.refresh_view()

        def failed(f):
            self.kb_notice = f"[red]search failed: {escape(f.getErrorMessage())}[/red]"
            self.refresh_view()

        d.addCallbacks(found, failed)

    @on(OptionList.OptionSelected, "#kb-list")
    def _open_selected(self, event: OptionList.OptionSelected) -> None:
        self.kb_open(int(event.option.id))

    def kb_open(self, article_id: int) -> None:
        if self.kb_article is not None and self.kb_article.id != article_id:
            self.seat.kb_close(self.kb_article.id)
        d = self.command(self.seat.kb_get, article_id)
        if d is None:
            return

        def got(msg):
            self.kb_article = msg.article
            self.kb_notice = ""
            self._show_article(msg.article)
            self.refresh_view()

        def failed(f):
            self.kb_notice = f"[red]{escape(f.getErrorMessage())}[/red]"
            self.refresh_view()

        d.addCallbacks(got, failed)

    def _show_article(self, a, diff: list[str] | None = None) -> None:
        meta = f"{a.org}  {a.region}  v{a.version}  effective {(a.effective_from or '')[:10] or '-'}"
        if a.status != "published":
            meta += f"  ({a.status.upper()})"
        parts = [f"[b]{escape(a.title)}[/b]", escape(meta)]
        if diff:
            parts.append("[b]What changed:[/b]")
            parts += [f"[green]{escape(line)}[/green]" if line.startswith("+") else
                      f"[red]{escape(line)}[/red]" if line.startswith("-") else escape(line) for line in diff]
        parts += ["", escape(a.body)]
        self.query_one("#kb-text", Static).update("\n".join(parts))

    def _kb_updated(self, msg) -> None:
        open_ = self.kb_article
        if open_ is not None and open_.id == msg.article_id and msg.version > open_.version:
            self.kb_notice = (f"[b]Changed since you opened it[/b]: {escape(msg.title)} v{open_.version} -> "
                              f"v{msg.version} ({msg.change}{': ' + escape(msg.why) if msg.why else ''})")
            d = self.command(self.seat.kb_difference, msg.article_id)
            if d is not None:
                def shown(result):
                    _, new, lines = result
                    self.kb_article = new
                    self._show_article(new, lines)
                    self.refresh_view()

                d.addCallback(shown)
        else:
            self.kb_notice = f"Knowledge base: {escape(msg.title)} {msg.change} (v{msg.version})"


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
