"""The Textual seat UI driven with the run_test pilot.

The app talks to a real engine and the real seat server logic through
seat_agent.testing.LoopbackSeat (no sockets; the network path is covered by
test_protocol.py), with the engine on a task.Clock.
"""

from __future__ import annotations

import asyncio

from textual.widgets import Input, Select, Static
from twisted.internet.task import Clock

from callcenter.engine import Engine
from seat_agent.client import SeatSession
from seat_agent.testing import LoopbackSeat
from seat_agent.tui import OfferScreen, PasswordScreen, SeatApp

from .support import PASSWORDS, accounts, knowledge_base, seat_config


def _world(tmp_path):
    clock = Clock()
    clock.advance(1_800_000_000)
    engine = Engine(seat_config(), clock)
    wrapups: list[dict] = []
    loop = LoopbackSeat(engine, accounts(), clock=clock, kb=knowledge_base(tmp_path / "kb.sqlite3"),
                        save_wrapup=lambda rec: wrapups.append(rec) or True, demo_call_control=False)
    return clock, engine, loop, wrapups


def text(app, selector: str) -> str:
    return str(app.query_one(selector, Static).render())


def test_login_ready_offer_accept_wrapup(tmp_path):
    clock, engine, loop, wrapups = _world(tmp_path)
    seat = SeatSession("a1", PASSWORDS["a1"], clock=clock)
    links = []
    app = SeatApp(seat, start=lambda: links.append(loop.connect(seat)))

    async def scenario():
        async with app.run_test(size=(120, 36)) as pilot:
            await pilot.pause()
            assert "a1" in text(app, "#status") and "NOT-READY" in text(app, "#status")
            assert "logged in" in text(app, "#conn")

            await pilot.press("f2")
            await pilot.pause()
            assert "READY" in text(app, "#status") and engine.agent_info("a1")["state"] == "ready"

            engine.call_arrived("c1", "hotline", caller_masked="138****5678", category="medical")
            clock.advance(3)
            await pilot.pause()
            assert isinstance(app.screen, OfferScreen)
            box = str(app.screen.query_one("#offer-box", Static).render())
            assert "138****5678" in box and "medical" in box
            app.refresh_status()
            assert "00:03" in text(app, "#status")  # the state timer runs on the injected clock

            await pilot.press("a")
            await pilot.pause()
            assert not isinstance(app.screen, OfferScreen)
            engine.offer_answered("c1", "a1")  # call control: the agent's phone answered
            await pilot.pause()
            assert "On call" in text(app, "#call")

            clock.advance(60)
            engine.call_completed("c1", by="caller")
            await pilot.pause()
            assert "WRAP-UP" in text(app, "#status")
            assert app.query_one("#wrapup").has_class("shown")

            app.query_one("#disposition", Select).value = "information-given"
            await pilot.click("#notes")
            await pilot.press(*"asked about clinics")
            app.query_one("#ticket-fields", Input).value = "district=A; topic=fever"
            await pilot.press("ctrl+s")
            await pilot.pause()
            assert wrapups and wrapups[0]["call_id"] == "c1"
            assert wrapups[0]["disposition"] == "information-given"
            assert wrapups[0]["notes"] == "asked about clinics"
            assert wrapups[0]["ticket"] == {"district": "A", "topic": "fever"}
            assert engine.agent_info("a1")["state"] == "ready"
            assert "READY" in text(app, "#status")

    asyncio.run(scenario())


def test_reject_kb_search_and_unreachable_server(tmp_path):
    clock, engine, loop, _ = _world(tmp_path)
    seat = SeatSession("a1", PASSWORDS["a1"], clock=clock)
    links = []
    app = SeatApp(seat, start=lambda: links.append(loop.connect(seat)))

    async def scenario():
        async with app.run_test(size=(120, 36)) as pilot:
            await pilot.pause()
            await pilot.press("ctrl+k")
            await pilot.press(*"fever", "enter")
            await pilot.pause()
            assert "Fever clinic opening hours" in str(app.query_one("#kb-list").get_option_at_index(0).prompt)

            await pilot.press("f2")
            engine.call_arrived("c1", "hotline")
            await pilot.pause()
            assert isinstance(app.screen, OfferScreen)
            await pilot.press("x")
            await pilot.pause()
            assert not isinstance(app.screen, OfferScreen)
            assert engine.call_info("c1")["state"] != "ringing" or engine.call_info("c1")["agent_id"] != "a1"

            links[0].drop()  # the server goes away
            seat.unreachable("connection refused")
            await pilot.pause()
            assert "cannot reach the server" in text(app, "#conn")
            assert "OFFLINE" in text(app, "#status")
            await pilot.press("f2")  # a command now says why it cannot work
            await pilot.pause()
            assert "not connected" in text(app, "#notice")

            links.append(loop.connect(seat))  # back: the session resumes
            await pilot.pause()
            assert "session resumed" in text(app, "#conn")

    asyncio.run(scenario())


def test_tui_over_real_wss_under_the_asyncio_reactor(tmp_path):
    """As `seat-agent tui` runs: Twisted's asyncio reactor on Textual's loop, a real
    SeatClient over TLS to a real seat server (a child process: the asyncio
    reactor cannot be installed in this one, which already has a reactor)."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).with_name("tui_over_wss.py")
    out = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
                         cwd=str(script.parents[2]))
    assert out.returncode == 0, out.stderr[-3000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert "a1" in seen["status"] and "NOT-READY" in seen["status"]
    assert "138****5678" in seen["offer"] and "a accept" in seen["offer"]
    assert seen["call"].startswith("On call c1\nCaller:    138****5678")  # the caller's context stays on screen


async def settle(pilot, condition, turns: int = 100) -> bool:
    """Let the app's message loop turn until ``condition()`` holds (bounded; no wall-clock wait)."""
    for _ in range(turns):
        if condition():
            return True
        await pilot.pause()
    return condition()


def test_a_shift_context_countdown_draft_kb_panel_and_password_retry(tmp_path):
    """What the agent sees through a call: the ring countdown, the caller's context kept
    through the call and its wrap-up, a fresh form for each call, typed work saved as a
    draft when wrap-up runs out, the knowledge base searched as one types, an open article
    marked as changed, and a wrong password asked again."""
    from callcenter.kb.store import KbStore
    from callcenter.records.db import make_engine
    from callcenter.seats import schema as s

    clock, engine, loop, wrapups = _world(tmp_path)
    kb_engine = make_engine(loop.server.kb.database_url)
    kb = KbStore(kb_engine)
    seat = SeatSession("a1", "wrong-password", clock=clock)
    links = []
    app = SeatApp(seat, start=lambda: links.append(loop.connect(seat)))
    app.kb_debounce_s = 0  # search as soon as typing pauses: no real-time wait in the test

    async def scenario():
        async with app.run_test(size=(140, 40)) as pilot:
            await pilot.pause()
            assert isinstance(app.screen, PasswordScreen)  # not left offline: asked again
            await pilot.press(*PASSWORDS["a1"], "enter")
            await pilot.pause()
            assert seat.logged_in and "NOT-READY" in text(app, "#status")

            await pilot.press("f2")
            engine.call_arrived("c1", "hotline", caller_masked="138****5678", category="medical")
            await pilot.pause()
            assert isinstance(app.screen, OfferScreen)
            ring = seat.offer.ring_timeout_s
            clock.advance(4)
            app.screen.tick()
            box = str(app.screen.query_one("#offer-box", Static).render())
            assert f"ringing: {int(ring - 4)} s left" in box
            await pilot.press("a")
            engine.offer_answered("c1", "a1")
            await pilot.pause()
            call = text(app, "#call")
            assert "On call c1" in call and "138****5678" in call and "medical" in call

            # knowledge base: search as you type, open, and hear of a change
            await pilot.press("ctrl+k", *"fever")
            kb_list = app.query_one("#kb-list")
            await settle(pilot, lambda: kb_list.option_count >= 1)
            assert kb_list.option_count >= 1 and "Fever clinic" in str(kb_list.get_option_at_index(0).prompt)
            art_id = int(kb_list.get_option_at_index(0).id)
            app.kb_open(art_id)
            assert await settle(pilot, lambda: app.kb_article is not None)
            assert "Fever clinics open 24 hours" in text(app, "#kb-text") and "v1" in text(app, "#kb-text")
            new = kb.edit(art_id, {"body": "Fever clinics open 8:00-20:00. Bring your ID card."}, "editor",
                          "hours cut", trusted=True)
            loop.server.kb_changed(s.KbUpdated(article_id=art_id, title=new["title"], version=new["version"],
                                               status="published", change="edited", changed=["body"], why="hours cut"))
            assert await settle(pilot, lambda: "What changed" in text(app, "#kb-text"))
            assert "Changed since you opened it" in text(app, "#kb-notice") and "hours cut" in text(app, "#kb-notice")
            shown = text(app, "#kb-text")
            assert "-Fever clinics open 24 hours" in shown and "+Fever clinics open 8:00-20:00" in shown

            # wrap-up runs out with typed work: kept on screen and saved as a draft
            clock.advance(60)
            engine.call_completed("c1", by="caller")
            await pilot.pause()
            assert "138****5678" in text(app, "#call")  # the context stays for the wrap-up
            await pilot.click("#notes")
            await pilot.press(*"caller asked about hours")
            clock.advance(seat_config().pools[0].wrapup_s + 1)  # the pool's wrap-up time runs out
            assert await settle(pilot, lambda: app.draft_call == "c1" and wrapups)
            assert engine.agent_info("a1")["state"] != "wrap-up"
            assert wrapups and wrapups[-1]["disposition"] == "draft"
            assert wrapups[-1]["notes"] == "caller asked about hours"
            assert app.query_one("#notes", Input).value == "caller asked about hours"  # nothing lost
            assert "Draft" in text(app, "#call") and app.query_one("#wrapup").has_class("shown")
            app.query_one("#disposition", Select).value = "information-given"
            await pilot.press("ctrl+s")
            await pilot.pause()
            assert wrapups[-1]["disposition"] == "information-given" and wrapups[-1]["call_id"] == "c1"
            assert app.query_one("#notes", Input).value == "" and app.draft_call is None

            # the next call starts with an empty form
            if engine.agent_info("a1")["state"] != "ready":
                await pilot.press("f2")
            engine.call_arrived("c2", "hotline", caller_masked="139****0000", category="other")
            await pilot.pause()
            await pilot.press("a")
            engine.offer_answered("c2", "a1")
            await pilot.pause()
            assert "139****0000" in text(app, "#call") and "138****5678" not in text(app, "#call")
            assert all(app.query_one(w, Input).value == "" for w in ("#notes", "#ticket-title", "#ticket-fields"))

    try:
        asyncio.run(scenario())
    finally:
        kb_engine.dispose()
