"""Usage records in SQLite and PostgreSQL: token counts per kind of request, no loss, no
blocking, several writer processes; the report."""

from __future__ import annotations

import argparse
import io
import signal
import sqlite3
import sys
from functools import partial
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import orjson
import psycopg
import pytest
import trio

from gateway_fixtures import gateway_env
from minillm.cli.usage_report import parse_since, run_usage
from minillm.runtime.usage import UsageRecord, UsageWriter, summarize
from minillm.runtime.usage_db import UsageStoreError, open_store
from processes import clean_env, serving
from upstream import FakeUpstream, Reply, SlowStream

MSG = [{"role": "user", "content": "hi"}]
PRICES = "[models.gpt-4o-mini]\ninput_per_mtok = 0.15\noutput_per_mtok = 0.60\n"


async def rows(db: Path, n: int, timeout: float = 5) -> list[dict[str, Any]]:
    """The rows, once there are ``n`` (the writer commits asynchronously)."""
    with trio.fail_after(timeout):
        while True:
            if db.exists():
                con = sqlite3.connect(db)
                con.row_factory = sqlite3.Row
                found = [dict(r) for r in con.execute("SELECT * FROM requests ORDER BY ts")]
                con.close()
                if len(found) >= n:
                    assert len(found) == n
                    return found
            await trio.sleep(0.02)


@pytest.fixture
async def gw(upstream: FakeUpstream, start_gateway, tmp_path: Path) -> str:  # type: ignore[no-untyped-def]
    (tmp_path / "c.toml").write_text(PRICES)
    env = gateway_env(
        upstream.url,
        MINI_LLM_USAGE_DB=str(tmp_path / "usage.db"),
        MINI_LLM_CONFIG=str(tmp_path / "c.toml"),
        MINI_LLM_AUTH_KEYS="team-a:sk-gw-usage-1",
    )
    return await start_gateway(env)


async def test_plain_stream_and_cross_format_rows(
    gw: str, upstream: FakeUpstream, tmp_path: Path
) -> None:
    oai = openai.AsyncOpenAI(base_url=f"{gw}/v1", api_key="sk-gw-usage-1", max_retries=0)
    ant = anthropic.AsyncAnthropic(base_url=gw, api_key="sk-gw-usage-1", max_retries=0)
    upstream.push(*(Reply(usage=(100 + i, 10 + i)) for i in range(5)))
    await oai.chat.completions.create(model="gpt-4o-mini", messages=MSG)  # type: ignore[arg-type]
    stream = await oai.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True)  # type: ignore[arg-type]
    chunks = [c async for c in stream]
    assert all(c.choices for c in chunks)  # the usage chunk we asked for is not forwarded
    await oai.chat.completions.create(model="claude-3-5-haiku", messages=MSG)  # type: ignore[arg-type]
    cross = await oai.chat.completions.create(
        model="claude-3-5-haiku",
        messages=MSG,
        stream=True,  # type: ignore[arg-type]
    )
    _ = [c async for c in cross]
    streamed = await ant.messages.create(
        model="gpt-4o-mini",
        max_tokens=8,
        messages=MSG,
        stream=True,  # type: ignore[arg-type]
    )
    _ = [e async for e in streamed]
    assert upstream.requests[1].json["stream_options"] == {"include_usage": True}

    got = await rows(tmp_path / "usage.db", 5)
    assert [(r["input_tokens"], r["output_tokens"]) for r in got] == [
        (100 + i, 10 + i) for i in range(5)
    ]
    assert [r["client_format"] for r in got] == ["openai"] * 4 + ["anthropic"]
    assert [r["provider"] for r in got] == ["openai", "openai", "anthropic", "anthropic", "openai"]
    assert {r["key"] for r in got} == {"team-a"} and {r["status"] for r in got} == {200}
    assert all(r["latency_ms"] >= r["ttfb_ms"] > 0 for r in got)
    assert len({r["request_id"] for r in got}) == 5
    assert got[0]["cost"] == pytest.approx((100 * 0.15 + 10 * 0.60) / 1e6)
    assert got[2]["cost"] is None  # claude is not priced
    assert got[2]["model_asked"] == got[2]["model_served"] == "claude-3-5-haiku"


async def test_rejections_are_recorded_too(gw: str, tmp_path: Path) -> None:
    async with httpx.AsyncClient() as client:
        r = await client.post(f"{gw}/v1/messages", json={"model": "m"})
    assert r.status_code == 401
    (row,) = await rows(tmp_path / "usage.db", 1)
    assert row["status"] == 401 and row["key"] is None and row["client_format"] == "anthropic"


async def test_500_concurrent_requests_give_500_rows(
    upstream: FakeUpstream, start_gateway, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "usage.db"
    gw = await start_gateway(gateway_env(upstream.url, MINI_LLM_USAGE_DB=str(db)))
    body = {"model": "gpt-4o-mini", "messages": MSG}
    limits = httpx.Limits(max_connections=10)  # 500 tasks in flight, 10 at a time on the wire
    async with httpx.AsyncClient(limits=limits, timeout=30) as client, trio.open_nursery() as n:
        for i in range(500):
            n.start_soon(
                partial(client.post, f"{gw}/v1/chat/completions", json={**body, "user": str(i)})
            )
    got = await rows(db, 500, timeout=10)
    assert {r["status"] for r in got} == {200}
    assert sum(r["input_tokens"] for r in got) == 500 * 10


async def test_graceful_shutdown_loses_no_row(upstream: FakeUpstream, tmp_path: Path) -> None:
    db = tmp_path / "usage.db"
    upstream.push(SlowStream(chunks=10, interval=0.05))
    env = gateway_env(upstream.url, MINI_LLM_USAGE_DB=str(db), MINI_LLM_SHUTDOWN_GRACE="5")
    body = {"model": "gpt-4o-mini", "messages": MSG}
    async with serving(env) as served:
        async with httpx.AsyncClient(timeout=10) as client:
            async with trio.open_nursery() as n:
                for _ in range(50):
                    url = f"{served.url}/v1/chat/completions"
                    n.start_soon(partial(client.post, url, json=body))
            async with client.stream(
                "POST", f"{served.url}/v1/chat/completions", json={**body, "stream": True}
            ) as r:
                signalled = False
                async for _ in r.aiter_bytes():
                    if not signalled:  # once: a second signal stops at once
                        served.process.send_signal(signal.SIGTERM)  # in flight: drained
                        signalled = True
        with trio.fail_after(10):
            assert await served.process.wait() == 0
    assert len(await rows(db, 51, timeout=0.5)) == 51


async def test_full_channel_drops_and_counts_never_blocks(tmp_path: Path) -> None:
    drops: list[int] = []
    writer = UsageWriter(tmp_path / "u.db", capacity=2, on_drop=drops.append)
    await writer.open()
    for i in range(5):  # the writer task is not running: the channel fills up
        writer.submit(record(i))
    assert writer.dropped == 3 and len(drops) == 3
    await writer.aclose()  # flushes the two queued records
    assert len(await rows(tmp_path / "u.db", 2, timeout=0.5)) == 2
    writer.submit(record(9))  # after close: dropped, no exception
    assert writer.dropped == 4


def record(i: int, **fields: Any) -> UsageRecord:
    base: dict[str, Any] = dict(
        ts=1000.0 + i, request_id=f"r{i}", key="k", client_format="openai",
        endpoint="chat_completions", provider="openai", model_asked="m", model_served="m",
        input_tokens=10, output_tokens=5, cache_read_tokens=None, cache_write_tokens=None,
        status=200, latency_ms=float(i), ttfb_ms=1.0, cost=None,
    )  # fmt: skip
    return UsageRecord(**{**base, **fields})


def test_summary_and_json_report(usage_target: str) -> None:
    store = open_store(usage_target)
    recs = [record(i, latency_ms=float(i + 1)) for i in range(100)]
    recs += [record(100, key="b", status=502, input_tokens=None, output_tokens=None, cost=None)]
    recs += [record(101, key="b", cost=0.5), record(102, key="b", cost=0.25, ts=1.0)]
    store.write(recs)
    got = summarize(store, since=1000, by="key", now=1200.0)
    assert got == [
        {"group": "k", "requests": 100, "errors": 0, "input_tokens": 1000,
         "output_tokens": 500, "cost": None, "p50_ms": 50.0, "p95_ms": 95.0},
        {"group": "b", "requests": 2, "errors": 1, "input_tokens": 10, "output_tokens": 5,
         "cost": 0.5, "p50_ms": 100.0, "p95_ms": 101.0},
    ]  # fmt: skip
    store.close()
    out = io.StringIO()
    since = parse_since("100000d")
    args = argparse.Namespace(db=usage_target, config=None, since=since, by="model", json=True)
    assert run_usage(args, out) == 0
    (row,) = orjson.loads(out.getvalue())
    assert set(row) == {"group", "requests", "errors", "input_tokens", "output_tokens", "cost",
                        "p50_ms", "p95_ms"}  # fmt: skip
    assert row["requests"] == 103 and row["cost"] == 0.75
    args.json, out = False, io.StringIO()
    assert run_usage(args, out) == 0
    assert out.getvalue().splitlines()[1].split()[:3] == ["m", "103", "1"]
    assert parse_since("24h") == 86400 and parse_since("30m") == 1800


async def test_rows_of_two_gateway_processes_are_all_in_the_report(usage_target: str) -> None:
    env = {
        "MINI_LLM_USAGE_DB": usage_target,
        "MINI_LLM_MOCK_DELAY": "0",
        "MINI_LLM_AUTH_KEYS": "team-a:sk-gw-usage-a1,team-b:sk-gw-usage-b2",
    }
    body = {"model": "gpt-4o-mini", "messages": MSG}
    async with serving(env) as one, serving(env) as two:
        for served, key, n in ((one, "sk-gw-usage-a1", 7), (two, "sk-gw-usage-b2", 5)):
            async with httpx.AsyncClient(headers={"authorization": f"Bearer {key}"}) as client:
                for _ in range(n):
                    r = await client.post(f"{served.url}/v1/chat/completions", json=body)
                    assert r.status_code == 200
        for served in (one, two):  # the writers flush at shutdown
            served.process.send_signal(signal.SIGTERM)
            with trio.fail_after(10):
                assert await served.process.wait() == 0
    report = await trio.run_process(
        [sys.executable, "-m", "minillm", "usage", "--db", usage_target, "--json"],
        env=clean_env({}),
        capture_stdout=True,
    )
    got = {row["group"]: row["requests"] for row in orjson.loads(report.stdout)}
    assert got == {"team-a": 7, "team-b": 5}


def test_postgres_store_reconnects_after_losing_its_connection(postgres_url: str) -> None:
    store = open_store(postgres_url)
    store.write([record(1)])
    with psycopg.connect(postgres_url, autocommit=True) as admin:  # e.g. a server restart
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    with pytest.raises(UsageStoreError):
        store.write([record(2)])  # that batch is lost (the writer logs and counts it)
    store.write([record(3)])
    (row,) = summarize(store, since=1e6, by="key", now=2000.0)
    assert row["requests"] == 2
    store.close()
