"""The forms of ``MINI_LLM_REDIS_URL``: one server, a Sentinel-watched primary, a Cluster.

- ``redis://``, ``rediss://``, ``unix://``: one server, as coredis reads it.
- ``redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/service[/db]``:
  the primary the Sentinels know as ``service``, found again after a failover
  (Sentinels listen on 26379 by default; the credentials are the primary's).
- ``redis+cluster://`` and ``rediss+cluster://``: a Cluster, from any of its nodes
  (the rest as for ``redis://``; a Cluster has only database 0).

Parsing never echoes the URL, which may hold a password.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

__all__ = ["Cluster", "RedisTarget", "Sentinel", "Single", "parse_redis_url"]

SINGLE_SCHEMES = ("redis://", "rediss://", "unix://")
SENTINEL_PORT = 26379


@dataclass(frozen=True, slots=True)
class Single:
    url: str


@dataclass(frozen=True, slots=True)
class Sentinel:
    nodes: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = None


@dataclass(frozen=True, slots=True)
class Cluster:
    url: str
    """The ``redis://`` (or ``rediss://``) URL of one node."""


RedisTarget = Single | Sentinel | Cluster


def parse_redis_url(url: str) -> RedisTarget:
    """The target of ``url``; ValueError (without the URL) when it is not one of the forms."""
    if url.startswith(SINGLE_SCHEMES):
        return Single(url)
    scheme, _, rest = url.partition("://")
    if scheme in ("redis+cluster", "rediss+cluster"):
        return _cluster(scheme.removesuffix("+cluster"), rest)
    if scheme == "redis+sentinel":
        return _sentinel(rest)
    raise ValueError(
        "expected a redis://, rediss://, unix://, redis+sentinel:// or redis+cluster:// URL"
    )


def _cluster(scheme: str, rest: str) -> Cluster:
    parts = urlsplit(f"{scheme}://{rest}")
    try:
        parts.port  # noqa: B018 (raises on a bad port)
    except ValueError:
        raise ValueError("redis+cluster://: invalid port") from None
    if not parts.hostname:
        raise ValueError("redis+cluster:// needs a node: redis+cluster://host:6379")
    if parts.path.strip("/") not in ("", "0"):
        raise ValueError("redis+cluster://: a Cluster has only database 0")
    return Cluster(f"{scheme}://{rest}")


def _sentinel(rest: str) -> Sentinel:
    parts = urlsplit(f"sentinel://{rest}")
    if parts.query or parts.fragment:
        raise ValueError("redis+sentinel://: options (?...) are not supported")
    credentials, _, hosts = parts.netloc.rpartition("@")
    username, _, password = credentials.partition(":")
    nodes = tuple(_node(item) for item in hosts.split(","))
    service, _, db = parts.path.removeprefix("/").partition("/")
    if not service:
        raise ValueError(
            "redis+sentinel:// needs a service name: redis+sentinel://host:26379/mymaster"
        )
    if db and not db.isdigit():
        raise ValueError("redis+sentinel://: the database after the service name is a number")
    return Sentinel(
        nodes, unquote(service), int(db or 0), unquote(username) or None, unquote(password) or None
    )


def _node(item: str) -> tuple[str, int]:
    """``host``, ``host:port`` or ``[::1]:port``."""
    host, colon, port = item.rpartition(":")
    if not colon or (host.startswith("[") and not host.endswith("]")):
        host, port = item, str(SENTINEL_PORT)
    host = host.removeprefix("[").removesuffix("]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("redis+sentinel://: expected host:port[,host:port...] before the service")
    return host, int(port)
