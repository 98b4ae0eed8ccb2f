"""Write a run as JSON and Markdown (plus plots) under the results directory."""

from __future__ import annotations

import dataclasses
import math
import shutil
from pathlib import Path

import orjson

from bench import analysis as a
from bench.load import LoadResult
from bench.payloads import PACED_SECONDS, STREAM_CHUNKS
from bench.plan import STREAM, THROUGHPUT, RunData


def _f(v: float | None, digits: int = 2) -> str:
    return "n/a" if v is None or math.isnan(v) else f"{v:.{digits}f}"


def _g(v: float) -> str:
    return "n/a" if math.isnan(v) else f"{v:.3g}"


def _rps(r: LoadResult | None) -> str:
    if r is None:
        return "n/a"
    return f"{r.rps:.0f}" if r.ok else f"**FAIL** ({r.non2xx} non-2xx, {r.errors} errors)"


def to_json(data: RunData) -> dict[str, object]:
    return {
        "meta": data.meta,
        "targets": data.ran,
        "skipped": data.skipped,
        "failed": data.failed,
        "warnings": data.warnings,
        "failures": a.failures(data),
        "headline": [dataclasses.asdict(r) for r in a.headline(data)],
        "cells": [
            {
                "target": r.target,
                "scenario": r.cell.scenario,
                "key": r.cell.key,
                "api": r.cell.api,
                "model": r.cell.model,
                "stream": r.cell.stream,
                "concurrency": r.cell.concurrency,
                "cross_format": r.cell.cross,
                "ok": r.result.ok,
                **dataclasses.asdict(r.result),
            }
            for r in data.results
        ],
        "memory": {t: dataclasses.asdict(m) for t, m in data.memory.items()},
        "long_streams": [
            {**dataclasses.asdict(r), "cpu_ms_per_stream": r.cpu_ms_per_stream} for r in data.long
        ],
    }


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
        *("| " + " | ".join(r) + " |" for r in rows),
        "",
    ]


def _meta_lines(data: RunData) -> list[str]:
    m = data.meta
    machine = m["machine"]
    assert isinstance(machine, dict)
    versions = ", ".join(f"{k} {v}" for k, v in dict(m["versions"]).items())  # type: ignore[call-overload]
    return [
        f"- Date: {m['date']}; Python {m['python']}; {versions}",
        f"- Machine: {machine['cpu']}, {machine['cores']} cores, {machine['memory_gib']} GiB, "
        f"{machine['platform']}",
        f"- Load generator: {m['loadgen']}; wrk: {m['wrk'] or 'not used'}; pinning: {m['pinning']}",
        f"- Settings: {m['settings']}",
        *(f"- Skipped `{t}`: {why}" for t, why in data.skipped.items()),
        "",
    ]


def _long_section(data: RunData) -> list[str]:
    s = data.settings
    out = [
        f"## 6. Long streams (~{PACED_SECONDS:.0f} s each, ~1000 B/s of SSE; "
        f"{s.long_duration_s:.0f} s window after a {s.long_ramp_s:g} s ramp, closed loop)",
        "",
        "Clients start spread over the ramp, so that the gateway sees a steady load of "
        "concurrent streams; streams/s counts the streams completed in the window, and "
        "latency the streams started in it."
        if s.long_ramp_s
        else "All clients start at once and stay in step: a wave of simultaneous "
        "requests every stream.",
        "",
    ]
    rows = []
    for r in data.long:
        rps, p99 = a.long_vs_direct(data, r.target, r.clients)
        direct = r.target == "direct"
        rows.append(
            [
                r.target,
                str(r.clients),
                str(r.result.requests),
                _rps(r.result) if not r.result.ok else f"{r.result.rps:.1f}",
                _f(rps),
                _f(r.result.p50_ms / 1e3),
                _f(r.result.p99_ms / 1e3),
                _f(p99),
                "n/a" if direct else _f(r.cpu_s, 1),
                "n/a" if direct else _f(r.cpu_ms_per_stream),
                "n/a" if direct else _f(r.rss_mid_mb, 1),
            ]
        )
    head = ["target", "clients", "streams", "streams/s", "/ direct", "p50 s", "p99 s"]
    head += ["p99 / direct", "CPU s", "CPU ms/stream", "RSS halfway MB"]
    return out + _table(head, rows)


def markdown(data: RunData, plots: list[str]) -> str:
    s = data.settings
    kind = "long streams only" if s.long_only else "quick" if s.quick else "full"
    out = [f"# minillm benchmark ({kind} run)", "", *_meta_lines(data)]
    out += ["## Headline", ""]
    out += _table(
        ["target", "ratio", "value", "goal", ""],
        [
            [
                r.target,
                r.what,
                _g(r.value) + ("" if "MB" in r.what or math.isnan(r.value) else "x"),
                r.goal,
                {True: "pass", False: "**MISS**", None: ""}[r.passed],
            ]
            for r in a.headline(data)
        ],
    )
    if fails := a.failures(data):
        out += ["## FAILURES", "", *(f"- {f}" for f in fails), ""]
    out += ["## 1. Non-streaming chat, same format (OpenAI API, gpt model)", ""]
    rows = []
    for r in (r for r in data.results if r.cell.scenario == THROUGHPUT):
        d = data.find("direct", r.cell.key)
        rows.append(
            [
                r.target,
                str(r.cell.concurrency),
                _rps(r.result),
                _f(r.result.p50_ms),
                _f(r.result.p99_ms),
                _f(r.result.rps / d.rps if d and d.ok else None),
                r.result.tool,
            ]
        )
    out += _table(["target", "c", "req/s", "p50 ms", "p99 ms", "/ direct", "tool"], rows)
    out += ["## 2. Added latency over direct at c=1", ""]
    out += _table(
        ["target", "p50 ms", "p99 ms", "added p50 ms", "added p99 ms"],
        [
            [
                t,
                _f(r.p50_ms, 3),
                _f(r.p99_ms, 3),
                _f(a.added_latency(data, t, "p50_ms"), 3),
                _f(a.added_latency(data, t, "p99_ms"), 3),
            ]
            for t in data.ran
            if (r := data.find(t, "openai>gpt/json/c1")) is not None
        ],
    )
    out += [f"## 3. Streaming chat ({STREAM_CHUNKS} chunks, OpenAI API, gpt model)", ""]
    out += _table(
        ["target", "c", "req/s", "TTFB p50 ms", "TTFB p99 ms", "total p50 ms", "total p99 ms"],
        [
            [
                r.target,
                str(r.cell.concurrency),
                _rps(r.result),
                _f(r.result.ttfb_p50_ms),
                _f(r.result.ttfb_p99_ms),
                _f(r.result.p50_ms),
                _f(r.result.p99_ms),
            ]
            for r in data.results
            if r.cell.scenario == STREAM
        ],
    )
    out += [f"## 4. Cross-format at c={s.cross_concurrency}", ""]
    c = s.cross_concurrency
    rows = []
    for t in data.ran:
        for api, fam in (
            ("openai", "gpt"),
            ("openai", "claude"),
            ("anthropic", "claude"),
            ("anthropic", "gpt"),
        ):
            js, st = (data.find(t, f"{api}>{fam}/{k}/c{c}") for k in ("json", "stream"))
            if js or st:
                cross = (api == "openai") == (fam == "claude")
                rows.append(
                    [
                        t,
                        f"{api} API > {fam}",
                        "cross" if cross else "same",
                        _rps(js),
                        _f(js.p50_ms) if js else "n/a",
                        _rps(st),
                        _f(st.ttfb_p50_ms) if st else "n/a",
                    ]
                )
    out += _table(
        [
            "target",
            "request",
            "format",
            "json req/s",
            "json p50 ms",
            "stream req/s",
            "stream TTFB p50 ms",
        ],
        rows,
    )
    out += ["## 5. Gateway memory (RSS of the process tree)", ""]
    out += _table(
        ["target", "idle MB", "after load MB", "slow readers peak MB", "slow readers answered"],
        [
            [
                t,
                _f(m.idle_mb, 1),
                _f(m.after_load_mb, 1),
                _f(m.slow_readers_mb, 1),
                f"{m.slow_answered}/{m.slow_clients}",
            ]
            for t, m in data.memory.items()
        ],
    )
    if data.long:
        out += _long_section(data)
    if warns := [*data.warnings, *a.loadgen_warnings(data)]:
        out += ["## Warnings", "", *(f"- {w}" for w in warns), ""]
    out += [
        "## How to read this",
        "",
        "- `direct` is the load generator talking to the fake provider: the ceiling. "
        "`floor` is a ~40-line Quart-Trio + httpx proxy (bench/floor.py): the bare cost "
        "of our stack. Ratios are within this run, on this machine.",
        "- Every answer is checked (2xx and a complete body); a failed cell is never "
        "reported as fast.",
        "",
    ]
    if plots:
        out += ["## Plots", "", *(f"![{Path(p).stem}]({p})" for p in plots), ""]
    return "\n".join(out)


def write(data: RunData, stamp: str) -> Path:
    """Write ``<out>/<stamp>/report.{md,json}`` + plots and ``<out>/latest.md``."""
    run_dir = data.settings.out / stamp
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "report.json").write_bytes(
        orjson.dumps(to_json(data), option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
    )
    plots: list[str] = []
    if data.settings.plots:
        from bench.plots import draw

        plots = draw(data, run_dir)
    (run_dir / "report.md").write_text(markdown(data, plots))
    latest = markdown(data, [f"{stamp}/{p}" for p in plots])
    (data.settings.out / "latest.md").write_text(latest)
    shutil.copyfile(run_dir / "report.json", data.settings.out / "latest.json")
    return run_dir
