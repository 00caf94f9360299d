"""Redis RPO benchmark: how many acknowledged journal writes a SIGKILL of the embedded Redis loses.

A writer thread appends journal batches exactly as the state store does
(callcenter/state/store.py ``RedisJournal.apply_batch``: one fenced Lua script
per batch, ``{cc}:seq`` advanced by the batch size) as fast as it can and
remembers the highest ``seq`` Redis acknowledged.  After a seeded random
0.05-1.5 s the embedded ``redis-server`` is SIGKILLed, started again on the
same files, and the journal it reloads is compared with what was acknowledged:
``lost = acknowledged seq - recovered seq`` (in inputs; one input = one engine
input record, e.g. "call arrived").

Two configurations are measured, ``aof`` (what callcenter.redis_server writes:
``appendonly yes``, ``appendfsync everysec``) and, for comparison, ``rdb``
(the previous ``save 60 1``, no AOF).  A process kill leaves the page cache
intact, so this measures the process-crash RPO; what a power cut or kernel
crash can lose on top (writes not yet fsynced, up to ~2 s with everysec) is
stated in docs/failover.md, not measured here.

    .venv/bin/python benchmarks/redis_rpo.py [--rounds 10] [--batch 8] [--seed 1]

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis  # noqa: E402

from callcenter.redis_server import EmbeddedRedis  # noqa: E402
from callcenter.state.lease import StateKeys  # noqa: E402
from callcenter.state.store import RedisJournal  # noqa: E402


class RdbOnlyRedis(EmbeddedRedis):
    """The configuration before AOF: a snapshot after 60 s with one change, no append-only file."""

    def _write_conf(self, port: int) -> Path:
        conf = super()._write_conf(port)
        text = conf.read_text(encoding="utf-8").replace("appendonly yes\n", "appendonly no\n")
        conf.write_text(text, encoding="utf-8")
        return conf


def one_round(cls: type[EmbeddedRedis], directory: Path, rng: random.Random, batch: int) -> dict:
    server = cls(directory).start()
    keys = StateKeys("{cc}")
    client = redis.Redis.from_url(server.url, socket_timeout=2.0)
    client.set(keys.fence, "1")
    client.set(keys.seq, "0")
    journal = RedisJournal(client, keys)
    acked = [0]
    stop = threading.Event()
    record = json.dumps({"kind": "call-arrived", "call": "c" * 16, "queue": "hotline-12345", "at": 1.0})

    def write() -> None:
        seq = 0
        while not stop.is_set():
            try:
                journal.apply_batch(1, seq, seq + batch, None, [record] * batch)
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
                return
            seq += batch
            acked[0] = seq

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    time.sleep(rng.uniform(0.05, 1.5))  # a benchmark, not a test: the kill lands at a random moment
    server.process.send_signal(signal.SIGKILL)
    server.process.wait(5)
    stop.set()
    writer.join(5)
    client.close()
    acknowledged = acked[0]
    server.start()
    client = redis.Redis.from_url(server.url)
    recovered = int(client.get(keys.seq) or 0)
    batches = client.llen(keys.journal)
    client.close()
    server.stop()
    assert recovered <= acknowledged + batch, (recovered, acknowledged)  # at most the one batch in flight
    return {"acknowledged": acknowledged, "recovered": recovered, "lost": max(0, acknowledged - recovered),
            "journal_batches": batches}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--batch", type=int, default=8, help="inputs per journal batch")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    figures: dict = {"benchmark": "redis_rpo", "rounds": args.rounds, "batch": args.batch}
    for name, cls in (("aof", EmbeddedRedis), ("rdb", RdbOnlyRedis)):
        rng = random.Random(args.seed)
        results = []
        with tempfile.TemporaryDirectory(prefix=f"rpo-{name}-") as tmp:
            for i in range(args.rounds):
                results.append(one_round(cls, Path(tmp) / f"r{i}", rng, args.batch))
        lost = [r["lost"] for r in results]
        acked = [r["acknowledged"] for r in results]
        print(f"{name}: SIGKILL x{args.rounds}: acknowledged inputs per round {min(acked)}..{max(acked)}, "
              f"lost worst {max(lost)}, total {sum(lost)} of {sum(acked)}")
        figures[f"{name}_lost_worst"] = max(lost)
        figures[f"{name}_lost_total"] = sum(lost)
        figures[f"{name}_acknowledged_total"] = sum(acked)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
