"""Run a real ACD (callcenter.app.Acd with every present subsystem) that has handled calls.

    python tests/metrics/acd_with_calls.py CONFIG.yaml

The service is the one ``callcenter serve`` runs: embedded Redis, the admin
HTTP port with /metrics served by prometheus-client's Twisted resource (in the
reactor's thread pool), and every subsystem of callcenter.app.SUBSYSTEM_MODULES
that exists.  Only the engine's clock differs: a task.Clock, so that the
scenario (tests/metrics/scenario.py) can let a caller wait 600 s in no time.
Calls go in through the engine's own inputs on the reactor thread, as the
FastAGI and seat shells feed them.

Prints ``READY <admin url>`` once the calls are handled, then serves until
SIGTERM/SIGINT.
"""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))


def overdue_order(acd) -> None:
    """An urgent work order two hours past its deadline, as restored from SQL after a restart."""
    from callcenter.orders.book import Order

    now = acd.reactor.seconds()
    acd.orders.restored([Order("WO-METRICS-1", now - 3 * 3600, "epidemic", "district-1", "street-1", "", "supplies",
                               "", "urgent", True, "agent-1", ["c1"], state="accepted",
                               owner="street:district-1:street-1", started_at=now - 3 * 3600,
                               deadline=now - 3600)])


def main(config_path: str) -> int:
    from scenario import Driven, drive_calls
    from twisted.internet import reactor, task

    from callcenter.app import Acd
    from callcenter.config import load_config
    from callcenter.engine import Engine

    config = load_config(config_path, env={})
    clock = task.Clock()
    clock.advance(1_700_000_000)
    acd = Acd(config, reactor, config_path=config_path, engine=Engine(config, clock))
    acd.lock()
    acd.start_redis()
    exit_code = [0]

    def fail(failure):
        exit_code[0] = 1
        print(f"FAILED {failure.getTraceback()}", flush=True)
        reactor.stop()

    def started(_):
        engine = acd.engine
        if not isinstance(getattr(engine, "clock", None), task.Clock):
            raise RuntimeError("acd.engine was replaced by one without a task.Clock; cannot drive the scenario")
        drive_calls(Driven(engine, engine.clock))
        overdue_order(acd)
        names = ", ".join(name for name, _ in acd.subsystems)
        print(f"SUBSYSTEMS {names}", flush=True)
        print(f"READY {acd.admin_url}", flush=True)

    reactor.callWhenRunning(lambda: acd.start().addCallback(started).addErrback(fail))
    reactor.addSystemEventTrigger("before", "shutdown", acd.stop)
    try:
        reactor.run()
    finally:
        acd.close()
    return exit_code[0]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
