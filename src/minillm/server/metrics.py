"""Prometheus metrics, one registry per app (never the global default one).

Served by ``GET /metrics`` in the Prometheus text format.  Each worker
process has its own registry.  With ``PROMETHEUS_MULTIPROC_DIR`` set (an
empty directory, before the workers start) prometheus-client keeps the
values in files there and ``/metrics`` adds up every worker's:
``minillm serve --workers N`` sets it up by itself; for ``hypercorn
--workers N`` see ``docs/team.md``.
"""

from __future__ import annotations

import os
from typing import TypeVar

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

from minillm.core.errors import (
    BadRequest,
    BudgetExceeded,
    ClientTimeout,
    Forbidden,
    GatewayError,
    MethodNotAllowed,
    Overloaded,
    PayloadTooLarge,
    RateLimited,
    Unauthorized,
)

__all__ = ["CONTENT_TYPE", "Metrics", "rejection_reason"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)

_REASONS: tuple[tuple[type[GatewayError], str], ...] = (
    (Unauthorized, "auth"),
    (Forbidden, "auth"),
    (RateLimited, "rate_limit"),
    (BudgetExceeded, "budget"),
    (Overloaded, "admission"),
    (PayloadTooLarge, "body_size"),
    (BadRequest, "validation"),
    (MethodNotAllowed, "validation"),
    (ClientTimeout, "validation"),
)


def rejection_reason(exc: GatewayError) -> str | None:
    """The ``minillm_rejections_total`` reason for an error the gateway raised itself."""
    for cls, reason in _REASONS:
        if isinstance(exc, cls):
            return reason
    return None


_Labelled = TypeVar("_Labelled", Counter, Histogram)

MAX_MODELS = 200  # distinct ``model`` label values; the rest are counted as "other"


class Metrics:
    """The metric objects of one app and their registry."""

    def __init__(self) -> None:
        self._models: set[str] = set()
        self._children: dict[tuple[object, tuple[str, ...]], object] = {}
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        self.requests = Counter(
            "minillm_requests",
            "Finished API requests",
            ["endpoint", "provider", "model", "status"],
            registry=reg,
        )
        self.duration = Histogram(
            "minillm_request_duration_seconds",
            "Request duration, until the last byte of the response",
            ["endpoint", "provider"],
            buckets=_BUCKETS,
            registry=reg,
        )
        self.ttfb = Histogram(
            "minillm_time_to_first_byte_seconds",
            "Time until the first byte of the response body",
            ["endpoint", "provider"],
            buckets=_BUCKETS,
            registry=reg,
        )
        self.attempts = Counter(
            "minillm_upstream_attempts",
            "Upstream calls, by outcome (ok, http_<status>, timeout, error)",
            ["provider", "outcome"],
            registry=reg,
        )
        self.tokens = Counter(
            "minillm_tokens",
            "Tokens reported by providers",
            ["provider", "model", "direction"],
            registry=reg,
        )
        self.in_flight = Gauge(
            "minillm_in_flight_requests",
            "API requests being served",
            registry=reg,
            multiprocess_mode="livesum",
        )
        self.rejections = Counter(
            "minillm_rejections",
            "Requests refused by the gateway itself",
            ["reason"],
            registry=reg,
        )
        self.usage_dropped = Counter(
            "minillm_usage_records_dropped",
            "Usage records dropped: the writer queue was full or the database failed",
            registry=reg,
        )
        self.shared_state_errors = Counter(
            "minillm_shared_state_errors",
            "Calls to the shared state (Redis) that failed or timed out: served with local state",
            registry=reg,
        )

    def model_label(self, model: str) -> str:
        """``model`` as a label value, or ``other`` once :data:`MAX_MODELS` are in use.

        Model names come from clients: without a bound, a client inventing
        names would grow the registry (and every scrape) without limit.
        """
        if model in self._models:
            return model
        if len(self._models) >= MAX_MODELS:
            return "other"
        self._models.add(model)
        return model

    def child(self, metric: _Labelled, *values: str) -> _Labelled:
        """``metric.labels(*values)``, looked up once per label values: ``labels`` takes a
        lock and rebuilds its key on every call, several times per request."""
        key = (metric, values)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*values)
        return found  # type: ignore[return-value]  # the child of ``metric``, by its key

    def attempt(self, provider: str, outcome: str) -> None:
        """Count one upstream attempt (the gateway calls this per try)."""
        self.child(self.attempts, provider, outcome).inc()

    def render(self) -> bytes:
        """The text exposition: this registry, or every worker's in multiprocess mode."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)
