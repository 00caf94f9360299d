"""The embedded Redis is durable (AOF, fsync every second), restarted when it dies, and reported
when it freezes: with a task.Clock and a real redis-server, then through `callcenter serve`."""

from __future__ import annotations

import json
import os
import re
import signal
import sys

import pytest
import redis
from twisted.internet import task

from callcenter.redis_server import EmbeddedRedis, find_redis_server
from callcenter.redis_supervisor import DOWN, OK, UNRESPONSIVE, Backoff, RedisSupervisor
from callcenter.state.runner import InlineRunner

from .procs import alive, wait_until
from .test_serve import Server, _get, serve_config  # noqa: F401  (fixture)


@pytest.fixture
def server(tmp_path):
    s = EmbeddedRedis(tmp_path / "redis").start()
    yield s
    if s.process is not None and s.process.poll() is None:
        os.kill(s.process.pid, signal.SIGCONT)
    s.stop()


def _kill(s: EmbeddedRedis) -> None:
    s.process.send_signal(signal.SIGKILL)
    s.process.wait(5)


def test_embedded_redis_appends_every_write_and_fsyncs_every_second(server):
    client = redis.Redis.from_url(server.url)
    try:
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("appendfsync") == {"appendfsync": "everysec"}
        # An acknowledged write is in the AOF before the reply: a SIGKILL loses nothing of it.
        client.rpush("journal", *range(100))
    finally:
        client.close()
    _kill(server)
    server.start()
    client = redis.Redis.from_url(server.url)
    try:
        assert client.llen("journal") == 100
    finally:
        client.close()


def test_backoff_starts_at_once_then_doubles_up_to_its_cap():
    b = Backoff(first=1.0, factor=2.0, cap=8.0)
    assert [b.next_delay() for _ in range(6)] == [0.0, 1.0, 2.0, 4.0, 8.0, 8.0]
    b.reset()
    assert b.next_delay() == 0.0


def test_a_killed_redis_is_restarted_on_its_port_with_its_data(server):
    clock = task.Clock()
    sup = RedisSupervisor(clock, server, InlineRunner(), interval=1.0, ping_timeout=0.5)
    sup.start()
    try:
        clock.advance(1)
        assert sup.status == OK
        client = redis.Redis.from_url(server.url)
        client.set("k", "v")
        old_pid, port = server.pid, server.port
        _kill(server)
        assert sup.status == DOWN

        def back() -> bool:
            clock.advance(1)
            return sup.status == OK

        wait_until(back, 10, "the supervisor to restart redis-server")
        assert sup.restarts == 1
        assert server.pid != old_pid and server.port == port
        assert client.get("k") == b"v"  # redis-py reconnects by itself; the AOF kept the data
        client.close()
    finally:
        sup.stop()


def test_a_redis_that_keeps_dying_is_retried_with_growing_delays(server):
    clock = task.Clock()
    sup = RedisSupervisor(clock, server, InlineRunner(), backoff=Backoff(first=1.0, factor=2.0, cap=16.0))
    sup.start()
    try:
        server.executable = "/bin/false"  # every restart exits at once
        _kill(server)
        spawned_at = []
        for t in range(1, 40):
            before = sup.restarts
            clock.advance(1)
            if sup.restarts > before:
                spawned_at.append(t)
                server.process.wait(5)  # let /bin/false exit before the next look
        # at once, then 1, 2, 4, 8, 16 s after each failure is seen (one tick later)
        assert spawned_at == [1, 3, 6, 11, 20, 37]
        assert sup.status == DOWN

        server.executable = find_redis_server()

        def back() -> bool:
            clock.advance(1)
            return sup.status == OK

        wait_until(back, 60, "redis-server to be restarted once it can start again")
    finally:
        sup.stop()


def test_a_frozen_redis_is_reported_and_recovers_when_it_thaws(server):
    clock = task.Clock()
    sup = RedisSupervisor(clock, server, InlineRunner(), interval=1.0, ping_timeout=0.5, frozen_after=2)
    sup.start()
    try:
        clock.advance(1)
        assert sup.status == OK
        os.kill(server.pid, signal.SIGSTOP)
        clock.advance(1)
        assert sup.status == OK  # one missed PING is not yet a verdict
        clock.advance(1)
        assert sup.status == UNRESPONSIVE
        assert sup.restarts == 0  # frozen is not dead: no second server on the same files
        os.kill(server.pid, signal.SIGCONT)

        def thawed() -> bool:
            clock.advance(1)
            return sup.status == OK

        wait_until(thawed, 10, "the thawed Redis to answer PING again")
        assert sup.restarts == 0
    finally:
        sup.stop()


def test_a_ping_still_in_flight_counts_as_unanswered(server):
    from twisted.internet import defer

    class Stuck:
        def start(self):
            pass

        def stop(self):
            pass

        def __call__(self, fn, *args):
            return defer.Deferred()  # the ping thread never comes back

    clock = task.Clock()
    sup = RedisSupervisor(clock, server, Stuck(), frozen_after=2)
    sup.start()
    try:
        clock.advance(1)  # ping sent
        clock.advance(1)
        assert sup.status == OK
        clock.advance(1)
        assert sup.status == UNRESPONSIVE
    finally:
        sup.stop()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc and the Redis pid file (Linux)")
def test_serve_restarts_a_killed_redis_and_reports_a_frozen_one(serve_config, tmp_path):  # noqa: F811
    config, ports = serve_config
    admin = f"http://127.0.0.1:{ports['admin_port']}"
    pid_file = tmp_path / "state" / "redis" / "redis.pid"
    srv = Server(config, tmp_path / "serve.log")
    stopped_pid = None
    try:
        wait_until(lambda: _get(admin + "/healthz")[0] == 200 or srv.process.poll() is not None, 30, "/healthz 200")
        assert srv.process.poll() is None, srv.output()
        first = int(pid_file.read_text())

        os.kill(first, signal.SIGKILL)
        wait_until(lambda: _get(admin + "/healthz")[0] == 503, 10, "/healthz 503 after the Redis kill")

        def restarted() -> bool:
            try:
                pid = int(pid_file.read_text())
            except (OSError, ValueError):
                return False
            return pid != first and alive(pid) and _get(admin + "/healthz")[0] == 200

        wait_until(restarted, 20, "a new redis-server and /healthz 200 again")

        def state_synced() -> bool:
            text = _get(admin + "/metrics")[1]
            up = re.search(r"^callcenter_redis_up (\S+)$", text, re.M)
            return bool(up) and float(up.group(1)) == 1.0

        wait_until(state_synced, 20, "the state subsystem to reach the restarted Redis (callcenter_redis_up 1)")

        stopped_pid = int(pid_file.read_text())
        os.kill(stopped_pid, signal.SIGSTOP)
        wait_until(lambda: _get(admin + "/healthz")[0] == 503, 10, "/healthz 503 for a frozen Redis")
        status, body = _get(admin + "/healthz")
        assert (status, json.loads(body)["status"]) == (503, "redis-unresponsive")
        os.kill(stopped_pid, signal.SIGCONT)
        stopped_pid = None
        wait_until(lambda: _get(admin + "/healthz")[0] == 200, 10, "/healthz 200 once Redis thaws")
        assert int(pid_file.read_text()) != first
        srv.process.send_signal(signal.SIGTERM)
        assert srv.wait(timeout=10) == 0, srv.output()
        assert "restarted redis-server" in srv.output()
    finally:
        if stopped_pid is not None:
            os.kill(stopped_pid, signal.SIGCONT)
        srv.kill()
