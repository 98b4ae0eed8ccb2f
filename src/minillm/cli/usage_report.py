"""``minillm usage``: who spent what, from the usage database.

``minillm usage [--since 24h] [--by key|model|provider] [--json]`` prints one
row per group: requests, errors, tokens in/out, cost (where priced) and
p50/p95 latency.  ``--json`` prints a JSON array of objects with the keys
``group``, ``requests``, ``errors``, ``input_tokens``, ``output_tokens``,
``cost`` (null where unpriced), ``p50_ms`` and ``p95_ms``.

``--by key`` adds, for the keys of the config with a ``budget_usd``, the
spend in the budget's current period against it (column ``budget``;
``budget_usd``, ``budget_period`` and ``budget_spent`` in JSON).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any, TextIO

import orjson

from minillm.core._settings import is_postgres_url
from minillm.core.auth import GatewayKey
from minillm.core.config import Config
from minillm.runtime.usage import GroupBy, budget_spend, summarize
from minillm.runtime.usage_db import UsageStoreError, open_store

__all__ = ["add_usage_command", "parse_since", "render_table", "run_usage"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_COLUMNS = ("group", "requests", "errors", "input_tokens", "output_tokens", "cost")
_HEADERS = ("", "requests", "errors", "tokens in", "tokens out", "cost", "p50 ms", "p95 ms")


def parse_since(text: str) -> float:
    """``90s``, ``30m``, ``24h``, ``7d``, ``2w`` or plain seconds -> seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"expected a duration like 24h or 30m, got {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def add_usage_command(subparsers: Any) -> None:
    """Register ``usage`` on the ``minillm`` command's subparsers."""
    usage = subparsers.add_parser("usage", help="summarise recorded usage (requests, tokens, cost)")
    usage.add_argument(
        "--since", type=parse_since, default=parse_since("24h"), help="window, e.g. 24h, 7d"
    )
    usage.add_argument("--by", choices=["key", "model", "provider"], default="key")
    usage.add_argument("--json", action="store_true", help="print a JSON array of rows")
    usage.add_argument("--db", metavar="FILE|URL", help="usage database (env MINI_LLM_USAGE_DB)")
    usage.add_argument("--config", metavar="FILE", help="TOML config file (env MINI_LLM_CONFIG)")
    usage.set_defaults(run=run_usage)


def run_usage(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """The ``usage`` command; 0 on success, 1 when the usage database cannot be read."""
    out = out or sys.stdout
    config = Config.load(config_file=args.config)
    target = args.db or config.usage_db
    if target is None:
        off = "MINI_LLM_USAGE_DB or the config file's usage_db is 'off'"
        print(f"minillm: usage recording is off ({off}): no usage to report", file=sys.stderr)
        return 1
    if not (is_postgres_url(target) or Path(target).is_file()):
        print(f"minillm: no usage database at {target}", file=sys.stderr)
        return 1
    by: GroupBy = args.by
    try:
        store = open_store(target)
        try:
            rows = summarize(store, since=args.since, by=by)
            if by == "key":
                _add_budgets(rows, config.auth_keys, budget_spend(store, config.auth_keys))
        finally:
            store.close()
    except UsageStoreError as exc:
        print(f"minillm: cannot read usage: {exc}", file=sys.stderr)
        return 1
    if args.json:
        out.write(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        out.write(render_table(rows, by))
    return 0


def _add_budgets(
    rows: list[dict[str, object]], keys: tuple[GatewayKey, ...], spent: dict[str, float]
) -> None:
    """Each budgeted key's row gets its budget and spend (a row of its own if it has
    no request in the report's window)."""
    by_name = {str(r["group"]): r for r in rows}
    for key in keys:
        if key.budget_usd is None:
            continue
        row = by_name.get(key.name)
        if row is None:
            row = {"group": key.name, "requests": 0, "errors": 0, "input_tokens": 0,
                   "output_tokens": 0, "cost": None, "p50_ms": None, "p95_ms": None}  # fmt: skip
            rows.append(row)
        row.update(
            budget_usd=key.budget_usd,
            budget_period=key.budget_period,
            budget_spent=spent.get(key.name, 0.0),
        )


def _budget_cell(row: dict[str, object]) -> str:
    if row.get("budget_usd") is None:
        return "-"
    return f"${row['budget_spent']:.2f} of ${row['budget_usd']:g}/{row['budget_period']}"


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}" if value < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def render_table(rows: list[dict[str, object]], by: str) -> str:
    """A plain aligned text table (first column: the group)."""
    body = [[_cell(r[k]) for k in (*_COLUMNS, "p50_ms", "p95_ms")] for r in rows]
    for line in body:  # latencies read better without 4 decimals
        line[6:] = [c.split(".")[0] if c != "-" else c for c in line[6:]]
    header = [by, *_HEADERS[1:]]
    if any("budget_usd" in r for r in rows):
        header.append("budget")
        for line, row in zip(body, rows, strict=True):
            line.append(_budget_cell(row))
    widths = [max(len(c) for c in col) for col in zip(header, *body, strict=True)]
    lines = [header, *body] if body else [header]
    text = "\n".join(
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(line, widths, strict=True))
        )
        for line in lines
    )
    return text + ("\n" if body else "\n(no requests in this window)\n")
