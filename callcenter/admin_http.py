"""The admin HTTP root: ``/healthz``, ``/metrics``, and whatever subsystems mount.

``acd.http_root`` is a plain :class:`twisted.web.resource.Resource`; subsystems
``putChild`` into it (the admin API mounts ``b"api"``).  ``/metrics`` serves the
prometheus_client default registry, where callcenter/metrics.py defines every
metric.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from twisted.web.http import HTTPChannel, _GenericHTTPChannelProtocol
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

__all__ = ["AdminSite", "HealthResource", "make_http_root"]

# Polled by load balancers and Prometheus every few seconds: no access-log line.
_QUIET_PATHS = frozenset({b"/healthz", b"/metrics"})

# No admin or lender request needs more; the API answers 413 above its own, smaller limit.
MAX_BODY_BYTES = 1 << 20


class CappedRequest(Request):
    """A request whose body may not exceed :data:`MAX_BODY_BYTES`.

    twisted.web buffers a whole body before any resource sees it, so the cap
    must sit here: a larger declared length, or more chunked data than that,
    closes the connection before it is read (a hostile client costs nothing).
    """

    def gotLength(self, length):
        if length is not None and length > MAX_BODY_BYTES:
            self._refuse()
            return
        self._body_seen = 0
        super().gotLength(length)

    def handleContentChunk(self, data):
        self._body_seen = getattr(self, "_body_seen", 0) + len(data)
        if self._body_seen > MAX_BODY_BYTES:
            self._refuse()
            return
        if self.content is not None:
            super().handleContentChunk(data)

    def _refuse(self) -> None:
        self.content = None
        if self.channel is not None and self.channel.transport is not None:
            self.channel.transport.abortConnection()


# Deadlines of every request (slowloris: 5 connections sending a header byte now and then were
# all still open at 100 s, since twisted.web's timeOut is an *idle* timeout reset by every byte).
HEADER_DEADLINE_S = 10.0  # connection made (or previous response sent) -> all headers received
BODY_DEADLINE_S = 30.0  # all headers -> the whole body (at most MAX_BODY_BYTES)
IDLE_TIMEOUT_S = 60.0  # twisted.web's own idle timeout (Site default: 12 hours)


class DeadlineChannel(HTTPChannel):
    """An HTTPChannel that aborts a request whose headers or body come too slowly.

    twisted.web.http.HTTPChannel calls ``allHeadersReceived`` at the blank line
    after the headers, ``allContentReceived`` when the body is complete and
    ``requestDone`` after the response (then, if persistent, waits for the next
    request); the deadlines hang on those hooks.  Timers use ``self.callLater``,
    which HTTPFactory.buildProtocol sets to the site's reactor (a Clock in tests).
    """

    header_deadline_s = HEADER_DEADLINE_S
    body_deadline_s = BODY_DEADLINE_S
    _deadline = None

    def _arm(self, seconds: float, what: str) -> None:
        self._disarm()
        self._deadline = self.callLater(seconds, self._expired, what)

    def _disarm(self) -> None:
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None

    def _expired(self, what: str) -> None:
        self._deadline = None
        if self.transport is not None:
            self._log.info("admin HTTP: {what} not received in time from {peer}; closing", what=what,
                           peer=str(self.transport.getPeer()))
            self.transport.abortConnection()

    def connectionMade(self):
        super().connectionMade()
        self._arm(self.header_deadline_s, "request headers")

    def allHeadersReceived(self):
        self._arm(self.body_deadline_s, "request body")
        super().allHeadersReceived()

    def allContentReceived(self):
        self._disarm()  # the response may take its time (a config reload): no deadline on it
        super().allContentReceived()

    def requestDone(self, request):
        super().requestDone(request)
        if self.persistent and self.transport is not None and not getattr(self.transport, "disconnecting", False):
            self._arm(self.header_deadline_s, "request headers")

    def connectionLost(self, reason):
        self._disarm()
        super().connectionLost(reason)


class AdminSite(Site):
    """The admin HTTP site; access-logs every request except health checks and scrapes.

    Every connection is a :class:`DeadlineChannel`, so headers and body have deadlines.
    """

    noisy = False
    requestFactory = CappedRequest

    def __init__(self, resource, *args, **kwargs):
        kwargs.setdefault("timeout", IDLE_TIMEOUT_S)
        super().__init__(resource, *args, **kwargs)

    def protocol(self):
        # Site's default protocol factory (twisted.web.http._genericHTTPChannelProtocolFactory)
        # with our channel; the wrapper negotiates HTTP/2 when TLS offers it.
        return _GenericHTTPChannelProtocol(DeadlineChannel())

    def log(self, request) -> None:
        if request.path in _QUIET_PATHS and request.code in (200, 503):
            return
        super().log(request)


class HealthResource(Resource):
    """200 ``{"status": "ok"}`` once the ACD is ready, 503 before and while stopping."""

    isLeaf = True

    def __init__(self, status: Callable[[], str], details: Callable[[], dict] | None = None):
        super().__init__()
        self._status = status
        self._details = details  # extra fields, e.g. {"dev_mode": true, "warning": ...}

    def render_GET(self, request) -> bytes:
        status = self._status()
        request.setResponseCode(200 if status == "ok" else 503)
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-store")
        body = {"status": status, **(self._details() if self._details else {})}
        return json.dumps(body).encode() + b"\n"

    render_HEAD = render_GET


class _Index(Resource):
    """``/``: a short plain-text list of what this server offers (for humans with curl)."""

    def __init__(self):
        super().__init__()

    def render_GET(self, request) -> bytes:
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        names = sorted(k.decode("ascii", "replace") for k in self.children if k)
        return ("callcenter admin HTTP\n" + "".join(f"  /{n}\n" for n in names)).encode()


def make_http_root(status: Callable[[], str], details: Callable[[], dict] | None = None) -> Resource:
    from prometheus_client.twisted import MetricsResource

    root = _Index()
    root.putChild(b"healthz", HealthResource(status, details))
    root.putChild(b"metrics", MetricsResource())
    return root
