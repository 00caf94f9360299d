"""Seat session rules through the in-process loopback (real schema, session core,
server shell and engine; no sockets), with every timer on a task.Clock."""

from __future__ import annotations

from twisted.internet.task import Clock

from callcenter.engine import Engine
from callcenter.seats import schema as s
from callcenter.seats.backends import StaticAccounts
from seat_agent.client import SeatSession
from seat_agent.testing import LoopbackSeat

from .support import FAST_HASHER, PASSWORDS, accounts, seat_config


def world(**kw):
    clock = Clock()
    clock.advance(1_800_000_000)
    engine = Engine(seat_config(), clock)
    return clock, engine, LoopbackSeat(engine, kw.pop("accounts", None) or accounts(), clock=clock, **kw)


def seat(clock, agent_id="a1", password=None):
    sess = SeatSession(agent_id, PASSWORDS.get(agent_id, "x") if password is None else password, clock=clock)
    sess.heard = []
    sess.add_listener(lambda kind, msg: sess.heard.append((kind, msg)))
    return sess


def test_offer_carries_recent_contacts_from_the_records():
    looked_up = []

    def contacts(call_id):
        looked_up.append(call_id)
        return [{"call_id": "old-1", "arrival": "2026-11-27T10:00:00Z", "outcome": "abandoned"}]

    clock, engine, loop = world(contacts=contacts)
    a1 = seat(clock)
    loop.connect(a1)
    a1.ready()
    engine.call_arrived("c1", "hotline", caller_masked="138****5678")
    assert looked_up == ["c1"]
    assert a1.offer.contacts == [{"call_id": "old-1", "arrival": "2026-11-27T10:00:00Z", "outcome": "abandoned"}]


def test_offer_goes_out_without_contacts_when_the_records_fail():
    def contacts(call_id):
        raise OSError("database is down")

    clock, engine, loop = world(contacts=contacts)
    a1 = seat(clock)
    loop.connect(a1)
    a1.ready()
    engine.call_arrived("c1", "hotline")
    assert a1.offer is not None and a1.offer.contacts is None


def test_grace_expiry_on_the_clock():
    clock, engine, loop = world()
    a1 = seat(clock)
    link = loop.connect(a1)
    a1.ready()
    link.drop()
    clock.advance(29.9)
    assert engine.agent_info("a1")["state"] == "ready"
    clock.advance(0.2)
    assert engine.agent_info("a1") is None
    loop.connect(a1)  # the client comes back too late: its token is dead, it logs in afresh
    assert [m.code for k, m in a1.heard if k == "error"] == [s.BAD_TOKEN]
    assert a1.logged_in and a1.state == "not-ready"


def test_login_during_grace_takes_over_and_cancels_the_timer():
    clock, engine, loop = world()
    a1 = seat(clock)
    link = loop.connect(a1)
    a1.ready()
    engine.call_arrived("c1", "hotline")
    link.drop()
    other_pc = seat(clock, "a1")
    loop.connect(other_pc)
    assert [m.took_over for k, m in other_pc.heard if k == "login_ok"] == [True]
    assert other_pc.offer is not None and other_pc.offer.call_id == "c1"
    clock.advance(60)  # the grace timer of the dropped connection was cancelled
    assert engine.agent_info("a1")["state"] in ("offered", "ready")
    assert loop.server.core.session_of("a1")["attached"] is True


def test_engine_refusing_the_login_ends_the_session_cleanly():
    acc = StaticAccounts(FAST_HASHER)
    acc.add("ghost", "ghost-pw", "no-such-pool")
    clock, engine, loop = world(accounts=acc)
    g = seat(clock, "ghost", "ghost-pw")
    loop.connect(g)
    kinds = [k for k, _ in g.heard]
    assert kinds[-4:] == ["login_ok", "error", "session_ended", "disconnected"]
    assert g.ended == "login-refused" and not g.logged_in
    assert loop.server.core.session_of("ghost") is None


def test_hangup_needs_demo_call_control():
    clock, engine, loop = world(demo_call_control=False)
    a1 = seat(clock)
    loop.connect(a1)
    a1.hangup("c1")
    assert [m.code for k, m in a1.heard if k == "error"] == [s.NOT_ENABLED]


def test_end_wrapup_when_not_in_wrapup_is_an_illegal_state_error():
    clock, engine, loop = world()
    a1 = seat(clock)
    loop.connect(a1)
    a1.end_wrapup()
    errors = [m for k, m in a1.heard if k == "error"]
    assert [e.code for e in errors] == [s.ILLEGAL_STATE] and errors[0].ref is not None
    assert engine.agent_info("a1")["state"] == "not-ready"


def test_tokens_are_renewed_while_attached_and_rotated_at_every_resume():
    clock, engine, loop = world()
    core = loop.server.core
    a1 = seat(clock)
    link = loop.connect(a1)
    first, sid = a1.token, engine.agent_info("a1")["session"]
    assert core.token_signer.verify(first, clock.seconds()).session_id == sid  # the engine holds the session
    clock.advance(core.limits.token_ttl_s / 3)
    renewed = a1.token
    assert renewed != first and [k for k, _ in a1.heard].count("token") == 1
    assert core.token_signer.verify(renewed, clock.seconds()).session_id == sid  # same session, later expiry
    link.drop()
    clock.advance(5)
    # the seat missed the renewal message: the previous token still resumes here, once
    back = seat(clock)
    back.token = first
    loop.connect(back)
    assert back.logged_in and [k for k, _ in back.heard if k in ("resumed", "error")] == ["resumed"]
    assert back.token not in (first, renewed)
    new_sid = engine.agent_info("a1")["session"]
    assert new_sid != sid and core.token_signer.verify(back.token, clock.seconds()).session_id == new_sid
    assert first not in core.tokens and renewed not in core.tokens


def test_a_logged_out_then_relogged_agents_old_token_is_refused_after_a_restore():
    """The restart scenario of issue 16 on a snapshot: a restored engine knows the current session."""
    clock, engine, loop = world()
    a1 = seat(clock)
    loop.connect(a1)
    t_old = a1.token
    a1.logout()
    assert engine.agent_info("a1") is None
    again = seat(clock)
    loop.connect(again)
    t_new = again.token
    restored = Engine.restore(seat_config(), clock, engine.snapshot())
    # a new process: its own seat server on the restored engine, the same signing secret
    other = LoopbackSeat(restored, accounts(), clock=clock)
    other.server.core.token_signer = loop.server.core.token_signer
    assert other.server.agents_restored() == 1
    old_seat, new_seat = seat(clock, password="not-the-password"), seat(clock)  # (a thief knows no password)
    old_seat.token, new_seat.token = t_old, t_new
    other.connect(old_seat)
    assert sorted(m.code for k, m in old_seat.heard if k == "error") == [s.BAD_CREDENTIALS, s.BAD_TOKEN]
    assert not old_seat.logged_in
    other.connect(new_seat)
    assert [k for k, _ in new_seat.heard if k in ("resumed", "error")] == ["resumed"]
