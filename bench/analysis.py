"""Derived numbers: headline ratios, target checks and load-generator warnings."""

from __future__ import annotations

import math
from dataclasses import dataclass

from bench.load import LoadResult
from bench.plan import RunData
from bench.targets import WORKERS_TARGET

GATEWAYS = ("minillm", "minillm-hypercorn")
RSS_LIMIT_MB = 150.0


@dataclass(frozen=True, slots=True)
class Ratio:
    target: str
    what: str
    value: float  # nan when not measured
    goal: str  # e.g. ">= 0.90x"; "" when informative only
    passed: bool | None  # None: no goal or not measured


def _key(api: str, family: str, stream: bool, c: int) -> str:
    return f"{api}>{family}/{'stream' if stream else 'json'}/c{c}"


def _ok(r: LoadResult | None) -> LoadResult | None:
    return r if r is not None and r.ok else None


def _div(a: float | None, b: float | None) -> float:
    return a / b if a is not None and b and not math.isnan(b) else math.nan


def _check(value: float, low: float | None = None, high: float | None = None) -> bool | None:
    if math.isnan(value):
        return None
    return (low is None or value >= low) and (high is None or value <= high)


def added_latency(data: RunData, target: str, q: str) -> float:
    """Latency (``p50_ms``/``p99_ms``) at c=1 over the direct path, in ms."""
    key = _key("openai", "gpt", False, 1)
    mine, direct = _ok(data.find(target, key)), _ok(data.find("direct", key))
    if mine is None or direct is None:
        return math.nan
    return float(getattr(mine, q)) - float(getattr(direct, q))


def cross_ratios(data: RunData, target: str) -> list[tuple[str, bool, float]]:
    """(label, stream, cross req/s over same-format req/s) for each client API."""
    c = data.settings.cross_concurrency
    out = []
    for stream in (False, True):
        for api, same, other in (("openai", "gpt", "claude"), ("anthropic", "claude", "gpt")):
            cross = _ok(data.find(target, _key(api, other, stream, c)))
            base = _ok(data.find(target, _key(api, same, stream, c)))
            label = f"{api} API, {other} upstream vs {same}"
            out.append((label, stream, _div(cross and cross.rps, base and base.rps)))
    return out


LONG_GOAL_CLIENTS = 1000


def long_vs_direct(data: RunData, target: str, clients: int) -> tuple[float, float]:
    """(streams/s, p99) of ``target``'s long-stream cell over ``direct``'s."""
    mine, direct = data.find_long(target, clients), data.find_long("direct", clients)
    if mine is None or direct is None or not (mine.result.ok and direct.result.ok):
        return math.nan, math.nan
    return (
        _div(mine.result.rps, direct.result.rps),
        _div(mine.result.p99_ms, direct.result.p99_ms),
    )


def _long_rows(data: RunData, target: str) -> list[Ratio]:
    """The long-stream cells; the goals are for :data:`LONG_GOAL_CLIENTS` clients on one
    core, other client counts are reported without one."""
    rows = []
    for n in data.settings.long_clients:
        rps, p99 = long_vs_direct(data, target, n)
        mine = data.find_long(target, n)
        rss = mine.rss_mid_mb if mine is not None else math.nan
        goal = n == LONG_GOAL_CLIENTS
        rows += [
            Ratio(
                target,
                f"{n} long streams: streams/s / direct",
                rps,
                ">= 0.95x" if goal else "",
                _check(rps, 0.95) if goal else None,
            ),
            Ratio(
                target,
                f"{n} long streams: p99 / direct",
                p99,
                "<= 1.10x" if goal else "",
                _check(p99, high=1.1) if goal else None,
            ),
            Ratio(
                target,
                f"{n} long streams: RSS MB halfway",
                rss,
                f"<= {RSS_LIMIT_MB:.0f} MB" if goal else "",
                _check(rss, high=RSS_LIMIT_MB) if goal else None,
            ),
        ]
    return rows


def headline(data: RunData) -> list[Ratio]:
    c = data.settings.cross_concurrency
    thr, stream = _key("openai", "gpt", False, c), _key("openai", "gpt", True, c)
    rows: list[Ratio] = []

    def rps(target: str, key: str) -> float | None:
        r = _ok(data.find(target, key))
        return r.rps if r else None

    for g in (t for t in GATEWAYS if t in data.ran):
        rows.append(
            Ratio(
                g,
                f"non-stream req/s at c={c}, / floor",
                v := _div(rps(g, thr), rps("floor", thr)),
                ">= 0.90x",
                _check(v, low=0.9),
            )
        )
        rows.append(
            Ratio(
                g,
                f"non-stream req/s at c={c}, / direct",
                _div(rps(g, thr), rps("direct", thr)),
                "",
                None,
            )
        )
        if "litellm" in data.ran:
            rows.append(
                Ratio(
                    g,
                    f"non-stream req/s at c={c}, / litellm",
                    _div(rps(g, thr), rps("litellm", thr)),
                    "",
                    None,
                )
            )
        v = _div(added_latency(data, g, "p50_ms"), added_latency(data, "floor", "p50_ms"))
        rows.append(
            Ratio(g, "added p50 latency at c=1, / floor's", v, "<= 1.20x", _check(v, high=1.2))
        )
        v = _div(added_latency(data, g, "p99_ms"), added_latency(data, "floor", "p99_ms"))
        rows.append(Ratio(g, "added p99 latency at c=1, / floor's", v, "", None))
        v = _div(rps(g, stream), rps("floor", stream))
        rows.append(
            Ratio(g, f"streaming req/s at c={c}, / floor", v, ">= 0.90x", _check(v, low=0.9))
        )
        for label, is_stream, v in cross_ratios(data, g):
            what = f"cross-format ({'stream' if is_stream else 'non-stream'}): {label}"
            rows.append(Ratio(g, what, v, ">= 0.80x", _check(v, low=0.8)))
        mem = data.memory.get(g)
        v = mem.slow_readers_mb if mem else math.nan
        n = mem.slow_clients if mem else data.settings.slow_clients
        rows.append(
            Ratio(
                g,
                f"RSS MB with {n} slow-reading streams",
                v,
                f"< {RSS_LIMIT_MB:.0f} MB",
                _check(v, high=RSS_LIMIT_MB - 1e-9),
            )
        )
        rows += _long_rows(data, g)
    return rows + workers_ratios(data)


def workers_ratios(data: RunData) -> list[Ratio]:
    """``--workers 2`` over one worker on the same cells, and the cores it had."""
    if not {WORKERS_TARGET, "minillm"} <= set(data.ran):
        return []
    pinning = data.meta["pinning"]
    cores = len(pinning["workers2"]) if isinstance(pinning, dict) else math.nan
    c = data.settings.cross_concurrency
    rows = []
    for stream in (False, True):
        key = _key("openai", "gpt", stream, c)
        two, one = _ok(data.find(WORKERS_TARGET, key)), _ok(data.find("minillm", key))
        kind = "streaming" if stream else "non-stream"
        what = f"{kind} req/s at c={c}, 2 workers on {cores} cores / 1 worker on 1 core"
        rows.append(Ratio(WORKERS_TARGET, what, _div(two and two.rps, one and one.rps), "", None))
    return rows


def loadgen_warnings(data: RunData) -> list[str]:
    """Warn where a gateway reached more than a third of the direct path's rate."""
    out = []
    for r in data.results:
        if r.target == "direct" or not r.result.ok:
            continue
        native = "claude" if r.cell.api == "anthropic" else "gpt"
        key = _key(r.cell.api, native, r.cell.stream, r.cell.concurrency)
        direct = _ok(data.find("direct", key))
        if direct is not None and r.result.rps > direct.rps / 3:
            out.append(
                f"{r.target} {r.cell.key}: {r.result.rps:.0f} req/s is more than a third "
                f"of direct ({direct.rps:.0f} req/s): the load generator or the fake "
                "provider may be limiting this cell"
            )
    return out


def failures(data: RunData) -> list[str]:
    out = [f"{t}: {why}" for t, why in data.failed.items()]
    out += [
        f"{r.target} {r.cell.scenario} {r.cell.key}: {r.result.requests} requests, "
        f"{r.result.non2xx} non-2xx, {r.result.errors} errors, {r.result.invalid} invalid: "
        f"{r.result.first_error}"
        for r in data.results
        if not r.result.ok
    ]
    out += [
        f"{r.target} {r.clients} long streams: {r.result.requests} streams, "
        f"{r.result.non2xx} non-2xx, {r.result.errors} errors, {r.result.invalid} invalid: "
        f"{r.result.first_error}"
        for r in data.long
        if not r.result.ok
    ]
    for t, m in data.memory.items():
        if m.slow_answered < m.slow_clients:
            out.append(f"{t}: only {m.slow_answered}/{m.slow_clients} slow readers got a 2xx")
    return out
