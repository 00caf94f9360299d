"""The twisted.web shell of the admin API: bytes in, handlers.handle(), bytes out.

Mounted as ``acd.http_root.putChild(b"api", ApiResource(...))`` so it answers
everything under ``/api`` (one leaf resource; handlers.py does the routing).
The one slow step, reading and validating the config file on reload, runs in
the reactor's thread pool; the swap itself happens back on the reactor thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import succeed
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from callcenter.config import Config, ConfigError, ConfigIssue, load_config

from . import handlers
from .handlers import ApiContext, ApiRequest, ApiResponse, ReloadRequested

__all__ = ["ApiResource"]

log = Logger()


class ApiResource(Resource):
    """Everything under ``/api``.

    ``loader`` reads and validates a config file (blocking; run in a thread);
    ``config_replaced`` is called with the new config after a successful reload
    (the shell stores it as ``acd.config``).
    """

    isLeaf = True

    def __init__(
        self,
        ctx: ApiContext,
        reactor: Any,
        *,
        config_replaced: Callable[[Config], None],
        loader: Callable[[str], Config] = load_config,
    ):
        super().__init__()
        self._ctx = ctx
        self._reactor = reactor
        self._config_replaced = config_replaced
        self._loader = loader

    def render(self, request: Request) -> bytes | int:
        try:
            api_request = self._api_request(request)
            if isinstance(api_request, ApiResponse):
                return self._write(request, api_request)
            outcome = handlers.handle(self._ctx, api_request)
            if isinstance(outcome, ReloadRequested):
                self._reload(request, outcome)
                return NOT_DONE_YET
            return self._write(request, outcome)
        except Exception:
            log.failure("admin API: unexpected error for {method} {path}", method=request.method, path=request.path)
            return self._write(request, handlers.error(500, "internal", "internal error (logged on the ACD)"))

    # -- request/response ------------------------------------------------------

    def _api_request(self, request: Request) -> ApiRequest | ApiResponse:
        length = request.getHeader(b"content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                return handlers.error(400, "bad_request", "invalid Content-Length")
            if declared > handlers.MAX_BODY_BYTES:
                return handlers.error(413, "too_large", f"the body is larger than {handlers.MAX_BODY_BYTES} bytes")
        body = b""
        if request.content is not None:
            request.content.seek(0)
            body = request.content.read(handlers.MAX_BODY_BYTES + 1)
        auth_header = request.getHeader(b"authorization")
        return ApiRequest(
            method=request.method.decode("ascii", "replace").upper(),
            path=tuple(_segment(s) for s in request.postpath),
            authorization=auth_header.decode("latin-1") if auth_header is not None else None,
            body=body,
        )

    def _write(self, request: Request, response: ApiResponse) -> bytes:
        data = response.json_bytes()
        request.setResponseCode(response.status)
        request.setHeader(b"content-type", handlers.JSON_TYPE.encode("ascii"))
        request.setHeader(b"cache-control", b"no-store")
        for name, value in response.headers:
            request.setHeader(name.encode("ascii"), value.encode("latin-1"))
        if request.method == b"HEAD":  # same headers as GET, no body
            request.setHeader(b"content-length", str(len(data)).encode("ascii"))
            return b""
        return data

    # -- reload ------------------------------------------------------------------

    def _reload(self, request: Request, outcome: ReloadRequested) -> None:
        finished: list[bool] = []
        request.notifyFinish().addBoth(lambda _: finished.append(True))
        path = self._ctx.config_path
        if not path:
            loaded_d = succeed(
                ConfigError([ConfigIssue("", "the ACD was not started from a config file; nothing to reload")])
            )
        else:
            loaded_d = deferToThreadPool(
                self._reactor, self._reactor.getThreadPool(), _load_or_error, self._loader, path
            )

        def loaded(result: Config | ConfigError) -> None:
            response, new_config = handlers.config_loaded(self._ctx, outcome.principal, result)
            if new_config is not None:
                self._config_replaced(new_config)
                log.info("admin API: config reloaded from {path} by {who}", path=path, who=outcome.principal.name)
            if not finished:
                request.write(self._write(request, response))
                request.finish()

        def failed(failure: Failure) -> None:
            log.failure("admin API: config reload failed", failure)
            if not finished:
                request.write(
                    self._write(request, handlers.error(500, "internal", "internal error (logged on the ACD)"))
                )
                request.finish()

        loaded_d.addCallback(loaded).addErrback(failed)


def _load_or_error(loader: Callable[[str], Config], path: str) -> Config | ConfigError:
    try:
        return loader(path)
    except ConfigError as exc:
        return exc


def _segment(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")
