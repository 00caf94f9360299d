"""The embedded Redis: real server, answers, stops, and never outlives its parent."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import pytest
import redis

from callcenter.redis_server import EmbeddedRedis, RedisStartError

from .procs import alive, redis_listening_on, wait_until


def test_starts_answers_and_stops_leaving_no_process(tmp_path):
    server = EmbeddedRedis(tmp_path / "redis").start()
    pid, port = server.pid, server.port
    client = redis.Redis.from_url(server.url)
    client.set("k", "v")
    assert client.get("k") == b"v"
    assert client.info("server")["process_id"] == pid
    assert (tmp_path / "redis" / "redis.conf").exists()
    client.close()

    server.stop()

    assert not alive(pid)
    assert redis_listening_on(port) == []
    assert not server.alive()


def test_session_fixture_is_a_real_redis(redis_server):
    client = redis.Redis.from_url(redis_server.url)
    assert client.ping() is True
    assert redis_server.host == "127.0.0.1"
    client.close()


def test_a_taken_port_is_a_clear_error(redis_server, tmp_path):
    with pytest.raises(RedisStartError) as exc:
        EmbeddedRedis(tmp_path / "other", port=redis_server.port).start(timeout=5)
    assert "taken" in str(exc.value) or "exited at start" in str(exc.value)


def test_redis_dies_with_its_parent_even_on_sigkill(tmp_path):
    script = textwrap.dedent(f"""
        import sys, time
        from callcenter.redis_server import EmbeddedRedis
        r = EmbeddedRedis({str(tmp_path / "redis")!r}).start()
        print(r.pid, r.port, flush=True)
        sys.stdin.read()   # wait to be killed
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        pid, port = map(int, parent.stdout.readline().split())
        assert alive(pid)
        parent.send_signal(signal.SIGKILL)
        parent.wait(5)
        wait_until(lambda: not alive(pid), 5, "redis-server to die with its SIGKILLed parent")
        assert redis_listening_on(port) == []
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
