"""Redis clients from URLs, including Redis Sentinel for production.

``redis://`` / ``rediss://`` / ``unix://`` URLs go to ``redis.Redis.from_url``.
A Sentinel URL names the Sentinels and the monitored master::

    redis+sentinel://[:password@]host:port[,host:port...]/mastername[/db][?option=value...]

for example ``redis+sentinel://10.0.0.1:26379,10.0.0.2:26379,10.0.0.3:26379/callcenter``.
Options: ``sentinel_password`` (when the Sentinels themselves require AUTH),
``socket_timeout``, ``socket_connect_timeout`` (seconds), ``ssl`` (``true`` for
TLS to the master).  The client is ``Sentinel(...).master_for(mastername)``:
redis-py asks the Sentinels for the current master on every (re)connect, and a
connection to a server that is no longer the master fails with
READONLY/ConnectionError, so after a Sentinel failover our next call (or its
retry) goes to the new master.  See docs/failover.md for the recommended
Sentinel settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

import redis
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

__all__ = ["SentinelUrl", "parse_sentinel_url", "redis_from_url", "is_sentinel_url", "describe_url"]

SCHEME = "redis+sentinel"
_FLOAT_OPTIONS = ("socket_timeout", "socket_connect_timeout")


@dataclass(frozen=True)
class SentinelUrl:
    sentinels: list[tuple[str, int]]
    service: str
    db: int = 0
    password: str | None = None
    sentinel_password: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


def is_sentinel_url(url: str) -> bool:
    return url.lower().startswith(SCHEME + "://")


def parse_sentinel_url(url: str) -> SentinelUrl:
    """Parse ``redis+sentinel://...``; ValueError with a clear message when malformed."""
    if not is_sentinel_url(url):
        raise ValueError(f"not a {SCHEME}:// URL")
    rest = url[len(SCHEME) + 3 :]
    rest, _, query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    password = None
    if "@" in netloc:
        cred, _, netloc = netloc.rpartition("@")
        _, _, pw = cred.partition(":")
        password = unquote(pw) or None
    sentinels = []
    for part in netloc.split(","):
        part = part.strip()
        if not part:
            continue
        if part.startswith("["):  # [ipv6]:port
            host, _, port_s = part[1:].partition("]:")
        else:
            host, sep, port_s = part.rpartition(":")
            if not sep:
                host, port_s = part, "26379"
        try:
            port = int(port_s or 26379)
        except ValueError:
            raise ValueError(f"bad port in sentinel address {part!r}") from None
        sentinels.append((host, port))
    if not sentinels:
        raise ValueError("a sentinel URL needs at least one host:port")
    segments = [s for s in path.split("/") if s]
    if not segments:
        raise ValueError("a sentinel URL needs the master name as its path: redis+sentinel://h:26379/mymaster")
    service = unquote(segments[0])
    db = 0
    if len(segments) > 1:
        try:
            db = int(segments[1])
        except ValueError:
            raise ValueError(f"bad database number {segments[1]!r}") from None
    options: dict[str, Any] = {}
    sentinel_password = None
    for key, value in parse_qsl(query):
        if key == "sentinel_password":
            sentinel_password = value
        elif key in _FLOAT_OPTIONS:
            options[key] = float(value)
        elif key == "ssl":
            options["ssl"] = value.lower() in ("1", "true", "yes")
        elif key == "db":
            db = int(value)
        else:
            raise ValueError(f"unknown sentinel URL option {key!r}")
    return SentinelUrl(sentinels, service, db, password, sentinel_password, options)


def redis_from_url(
    url: str, *, socket_timeout: float = 2.0, socket_connect_timeout: float = 1.0, retries: int = 1, **kwargs: Any
) -> redis.Redis:
    """A blocking redis-py client for ``url`` (plain or Sentinel).

    redis-py's default retries a failing call ten times with backoff; our
    callers run on their own thread and have their own retry policy, so a
    call here fails fast (``retries`` quick retries cover a pooled connection
    that died with a Redis restart or a Sentinel failover).
    """
    retry = Retry(NoBackoff(), retries) if retries <= 1 else Retry(ExponentialBackoff(cap=0.5, base=0.05), retries)
    common = dict(socket_timeout=socket_timeout, socket_connect_timeout=socket_connect_timeout, retry=retry)
    common.update(kwargs)
    if not is_sentinel_url(url):
        return redis.Redis.from_url(url, **common)
    parsed = parse_sentinel_url(url)
    common.update(parsed.options)
    sentinel_kwargs = {
        "socket_timeout": common["socket_timeout"],
        "socket_connect_timeout": common["socket_connect_timeout"],
    }
    if parsed.sentinel_password:
        sentinel_kwargs["password"] = parsed.sentinel_password
    sentinel = Sentinel(parsed.sentinels, sentinel_kwargs=sentinel_kwargs)
    return sentinel.master_for(parsed.service, db=parsed.db, password=parsed.password, **common)


def describe_url(url: str) -> str:
    """The URL with any password replaced by ***, for logs."""
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    cred, _, host = rest.rpartition("@")
    user, _, _ = cred.partition(":")
    return f"{scheme}://{user}:***@{host}"
