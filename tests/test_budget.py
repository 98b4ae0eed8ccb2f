"""Budget windows, key settings, the local spend store, and the usage report's budget column."""

from __future__ import annotations

import argparse
import io
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from minillm.cli.usage_report import run_usage
from minillm.core.auth import GatewayKey
from minillm.core.budget import Budgets, MemorySpend, window
from minillm.core.config import Config, ConfigError
from minillm.core.errors import BudgetExceeded, render_error
from minillm.runtime.usage_db import UsageRecord, open_store


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("period", "at", "start", "end"),
    [
        ("1d", "2026-12-02T06:00", "2026-12-02T00:00", "2026-12-03T00:00"),
        ("7d", "2026-12-02T06:00", "2026-11-30T00:00", "2026-12-07T00:00"),  # from Monday
        ("month", "2026-12-31T23:59", "2026-12-01T00:00", "2027-01-01T00:00"),
        ("month", "2026-02-10T00:00", "2026-02-01T00:00", "2026-03-01T00:00"),
    ],
)
def test_windows(period: str, at: str, start: str, end: str) -> None:
    w = window(period, ts(at))
    assert (w.start, w.end) == (ts(start), ts(end))
    assert window(period, w.end).start == w.end  # the next window starts where this ends
    assert window(period, w.end - 0.001).id == w.id


def test_thirty_day_windows_follow_each_other() -> None:
    w = window("30d", ts("2026-12-02T06:00"))
    assert w.end - w.start == 30 * 86400 and w.start <= ts("2026-12-02T06:00") < w.end


async def test_budget_is_spent_then_renews_with_the_window() -> None:
    now = [ts("2026-12-02T06:00")]
    key = GatewayKey("team", b"", budget_usd=1.0, budget_period="1d")
    budgets = Budgets(MemorySpend(), clock=lambda: now[0])
    await budgets.admit(key)
    await budgets.charge(key, 0.6)
    await budgets.admit(key)  # under the budget: admitted, and may end over it
    await budgets.charge(key, 0.6)
    with pytest.raises(BudgetExceeded) as over:
        await budgets.admit(key)
    assert over.value.headers["retry-after"] == str(18 * 3600)
    now[0] = ts("2026-12-03T00:00")
    await budgets.admit(key)  # a new day


def test_budget_error_in_each_api_shape() -> None:
    error = BudgetExceeded(50, "month", 10.2)
    openai = orjson.loads(render_error("openai", error))["error"]
    assert (openai["type"], openai["code"]) == ("insufficient_quota", "insufficient_quota")
    anthropic = orjson.loads(render_error("anthropic", error))["error"]
    assert anthropic["type"] == "rate_limit_error"
    assert (
        anthropic["message"]
        == openai["message"]
        == ("This key has spent its budget of $50 for this period (month); it renews in 11s")
    )


def test_budget_settings(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    head = "[[auth.keys]]\nname = 'a'\nkey = 'sk-gw-a-123456'\n"
    path.write_text(head + "budget_usd = 50\n")
    (key,) = Config.load({}, config_file=path).auth_keys
    assert (key.budget_usd, key.budget_period) == (50.0, "month")
    for bad, message in [
        ("budget_usd = 0", "budget_usd: expected a positive number"),
        ("budget_usd = 'ten'", "budget_usd: expected a positive number"),
        ("budget_usd = 5\nbudget_period = '2d'", "budget_period: expected one of 1d, 7d, 30d"),
        ("budget = 5", "unknown key 'budget' (did you mean 'budget_usd'?)"),
    ]:
        path.write_text(head + bad + "\n")
        with pytest.raises(ConfigError) as error:
            Config.load({}, config_file=path)
        assert message in str(error.value)


def test_redis_settings() -> None:
    assert Config.load({}).redis_url is None
    for url in ("redis://h:6379/0", "rediss://h", "unix:///run/redis.sock"):
        assert Config.load({"MINI_LLM_REDIS_URL": url}).redis_url == url
    with pytest.raises(ConfigError, match="MINI_LLM_REDIS_URL: expected a redis://"):
        Config.load({"MINI_LLM_REDIS_URL": "http://h"})
    assert Config.load({"MINI_LLM_REDIS_PREFIX": "team:"}).redis_prefix == "team:"
    limited = {"MINI_LLM_AUTH_KEYS": "a:sk-gw-a-123456", "MINI_LLM_WORKERS": "2"}
    path_env = {**limited, "MINI_LLM_REDIS_URL": "redis://127.0.0.1:1"}
    assert Config.load(path_env).workers == 2


def test_workers_with_a_budget_and_no_redis_refuse(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[[auth.keys]]\nname = 'a'\nkey = 'sk-gw-a-123456'\nbudget_usd = 5\n")
    with pytest.raises(ConfigError, match="MINI_LLM_WORKERS: rpm/tpm limits and budgets"):
        Config.load({"MINI_LLM_WORKERS": "2"}, config_file=path)
    env = {"MINI_LLM_WORKERS": "2", "MINI_LLM_REDIS_URL": "redis://127.0.0.1:1"}
    assert Config.load(env, config_file=path).workers == 2


def test_usage_by_key_shows_spend_against_the_budget(tmp_path: Path) -> None:
    db = tmp_path / "u.db"
    store = open_store(db)
    now = datetime.now(UTC).timestamp()
    base = dict(
        request_id="r", client_format="openai", endpoint="chat_completions", provider="openai",
        model_asked="m", model_served="m", input_tokens=10, output_tokens=5,
        cache_read_tokens=None, cache_write_tokens=None, status=200, latency_ms=1.0, ttfb_ms=1.0,
    )  # fmt: skip
    store.write(
        [
            UsageRecord(ts=now - 1, key="team", cost=1.25, **base),  # type: ignore[arg-type]
            UsageRecord(ts=now - 2, key="team", cost=0.5, **base),  # type: ignore[arg-type]
            UsageRecord(ts=now - 40 * 86400, key="team", cost=9.0, **base),  # type: ignore[arg-type]
        ]
    )
    store.close()
    config = tmp_path / "c.toml"
    config.write_text(
        "[[auth.keys]]\nname = 'team'\nkey = 'sk-gw-team-1234'\nbudget_usd = 50\n"
        "[[auth.keys]]\nname = 'idle'\nkey = 'sk-gw-idle-1234'\nbudget_usd = 5\n"
        "budget_period = '7d'\n"
    )
    args = argparse.Namespace(db=str(db), config=str(config), since=86400.0, by="key", json=True)
    out = io.StringIO()
    assert run_usage(args, out) == 0
    rows = {r["group"]: r for r in orjson.loads(out.getvalue())}
    assert (rows["team"]["budget_spent"], rows["team"]["budget_usd"]) == (1.75, 50.0)
    assert (rows["idle"]["requests"], rows["idle"]["budget_spent"]) == (0, 0.0)
    args.json, out = False, io.StringIO()
    assert run_usage(args, out) == 0
    assert "$1.75 of $50/month" in out.getvalue() and "$0.00 of $5/7d" in out.getvalue()
