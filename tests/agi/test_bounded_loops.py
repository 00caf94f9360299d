"""Every AGI protocol loop is bounded (issue 16 item 7).

A peer that answers ``200 result=-1`` to everything, or sends one extra reply so
that replies are out of step with commands, used to spin a call at ~1,400
commands a second for as long as the peer stayed.  Now the call ends after a few
tries with a record (``CallEnded`` fallback, reason ``agi-error``, so one CDR
and one terminal queue_log line), a log line, ``CC_RESULT=fallback`` written
and the connection closed.  These peers are deliberately not Asterisk: a raw
socket client, over the real FastAGI server.
"""

from __future__ import annotations

from twisted.internet import defer, protocol, reactor
from twisted.logger import globalLogPublisher
from twisted.trial import unittest

from callcenter.testing.agi_peer import env_bytes, environment

from .harness import AcdWorld, cancel_leftover_timers, fastagi_call, new_uid, until


class _Hostile(protocol.Protocol):
    """Answers every command line with ``answer(line)``; counts what it was sent."""

    def __init__(self, env: bytes, answer):
        self.env, self.answer = env, answer
        self.lines: list[str] = []
        self.buf = b""
        self.closed = defer.Deferred()

    def connectionMade(self):
        self.transport.write(self.env)

    def dataReceived(self, data):
        self.buf += data
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            self.lines.append(line.decode())
            self.transport.write(self.answer(line.decode()).encode())

    def connectionLost(self, reason=None):
        self.closed.callback(self.lines)


class BoundedLoopTest(unittest.TestCase):
    timeout = 30

    def setUp(self):
        self.world = AcdWorld().start()
        self.logged: list[str] = []
        self._obs = lambda ev: self.logged.append(str(ev.get("log_format", "")).format(**{
            k: v for k, v in ev.items() if isinstance(k, str)}) if "log_format" in ev else None)
        globalLogPublisher.addObserver(self._obs)

    @defer.inlineCallbacks
    def tearDown(self):
        globalLogPublisher.removeObserver(self._obs)
        yield self.world.stop()
        cancel_leftover_timers()

    @defer.inlineCallbacks
    def hostile_call(self, answer):
        uid = new_uid()
        request = "hotline?queue=hotline-12345"
        env = env_bytes(environment(request=f"agi://127.0.0.1:{self.world.port}/{request}", uniqueid=uid,
                                    network_script=request))
        proto = _Hostile(env, answer)
        yield protocol.ClientCreator(reactor, lambda: proto).connectTCP("127.0.0.1", self.world.port)
        lines = yield proto.closed  # the ACD closes the connection: the loop has ended
        return uid, lines

    def assert_dropped(self, uid):
        self.assertEqual(self.world.outcome(uid), "fallback")
        self.assertEqual(self.world.ended[uid][0].reason, "agi-error")
        self.assertIsNone(self.world.engine.call_info(uid))
        self.assertTrue(any("giving up on the AGI link" in m for m in self.logged), self.logged[-5:])

    @defer.inlineCallbacks
    def test_minus_one_to_every_command_ends_the_call_after_a_few_tries(self):
        uid, lines = yield self.hostile_call(lambda line: "200 result=-1\n")
        self.assertLess(len(lines), 30, lines)
        self.assertEqual(lines[-1], "SET VARIABLE CC_RESULT fallback")
        self.assert_dropped(uid)

    @defer.inlineCallbacks
    def test_a_peer_answering_everything_at_once_hits_the_command_rate_bound(self):
        # "200 result=0" is a plausible reply to every command (a wait that timed out at once),
        # so only the shell's rate bound can stop this one
        uid, lines = yield self.hostile_call(lambda line: "200 result=0\n")
        self.assertLessEqual(len(lines), 105, lines[-5:])
        self.assertEqual(lines[-1], "SET VARIABLE CC_RESULT fallback")
        self.assert_dropped(uid)

    @defer.inlineCallbacks
    def test_an_extra_out_of_order_reply_ends_the_call_after_a_few_tries(self):
        ch, done, uid = fastagi_call(self.world)
        ch.when("WAIT FOR DIGIT", lambda c: c.write("200 result=0\n"), delay=0.01)  # one reply too many
        rec = yield done
        yield until(lambda: uid in self.world.ended, what="the call's record")
        self.assertLess(len(rec.commands), 20, rec.commands)
        self.assertEqual(rec.variables["CC_RESULT"], "fallback")  # the dialplan's fallback takes the caller
        self.assertTrue(rec.dialplan_continued)
        self.assert_dropped(uid)
