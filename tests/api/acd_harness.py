"""Test harness: a running ACD -- the real Acd runtime object, engine, records
(SQLite under the state dir), the work-order desk and admin API on the real admin Site -- in a
process of its own, without Redis, FastAGI or seats.

Run as ``python tests/api/acd_harness.py CONFIG.yaml`` (cwd: the state dir);
prints ``LISTENING <port> <database url>`` once the admin port listens on
127.0.0.1 (a free port).  Besides the admin HTTP paths it serves one test-only
resource standing in for call control and seats, which are not HTTP:

* ``POST /_test/engine`` ``{"input": "call_arrived", "args": [...], "kwargs": {...}}``
  -- drives an engine input as the AGI and seat shells would.
"""

from __future__ import annotations

import json
import sys

from twisted.internet import defer, reactor
from twisted.logger import globalLogBeginner, textFileLogObserver
from twisted.web.resource import Resource

from callcenter.admin_http import AdminSite
from callcenter.api.service import make_subsystem as make_api
from callcenter.app import Acd
from callcenter.config import load_config
from callcenter.engine import EngineError
from callcenter.orders.service import make_subsystem as make_orders
from callcenter.records.service import make_subsystem as make_records

INPUTS = {
    "call_arrived",
    "choice_made",
    "callback_requested",
    "caller_hung_up",
    "agent_logged_in",
    "agent_ready",
    "agent_not_ready",
    "agent_logged_out",
    "offer_accepted",
    "offer_answered",
    "offer_failed",
    "call_completed",
    "wrapup_ended",
    "home_load_reported",
}


class EngineControl(Resource):
    isLeaf = True

    def __init__(self, engine):
        super().__init__()
        self.engine = engine

    def render_POST(self, request):
        d = json.load(request.content)
        request.setHeader(b"content-type", b"application/json")
        if d["input"] not in INPUTS:
            request.setResponseCode(400)
            return json.dumps({"error": f"not an engine input: {d['input']}"}).encode()
        try:
            events = getattr(self.engine, d["input"])(*d.get("args", []), **d.get("kwargs", {}))
        except EngineError as exc:
            request.setResponseCode(409)
            return json.dumps({"error": type(exc).__name__, "message": str(exc)}).encode()
        return json.dumps({"events": [e.to_dict() for e in events]}).encode()


@defer.inlineCallbacks
def start(config_path: str):
    config = load_config(config_path)
    acd = Acd(config, reactor, config_path=config_path)
    port = reactor.listenTCP(0, AdminSite(acd.http_root), interface="127.0.0.1")
    acd._http_port = port  # so acd.admin_url names the real port
    subsystems = []
    for make in (make_records, make_orders, make_api):
        subsystems.append(make(acd))
        yield subsystems[-1].start()
    test = Resource()
    test.putChild(b"engine", EngineControl(acd.engine))
    acd.http_root.putChild(b"_test", test)

    @defer.inlineCallbacks
    def stop():
        for s in reversed(subsystems):
            yield s.stop()

    reactor.addSystemEventTrigger("before", "shutdown", stop)
    print(f"LISTENING {port.getHost().port} {acd.database_url}", flush=True)


def main(config_path: str) -> None:
    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stderr)], redirectStandardIO=False)

    def failed(f):
        f.printTraceback(file=sys.stderr)
        reactor.stop()

    reactor.callWhenRunning(lambda: start(config_path).addErrback(failed))
    reactor.run()


if __name__ == "__main__":
    main(sys.argv[1])
