"""``python -m bench``: run the benchmark and write the report."""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import math
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench import analysis as a
from bench.plan import RunData, Settings
from bench.report import write
from bench.runner import run_bench
from bench.targets import ALL_TARGETS, DEFAULT_TARGETS


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x)


def parse_args(argv: list[str] | None = None) -> Settings:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="a ~30 s smoke run (short cells)")
    ap.add_argument("--out", type=Path, help="results directory (default bench/results)")
    ap.add_argument(
        "--targets",
        default=",".join(DEFAULT_TARGETS),
        help=f"comma list from {', '.join(ALL_TARGETS)}; missing ones are skipped",
    )
    ap.add_argument("--duration", type=float, help="seconds per cell (default 2, quick 1)")
    ap.add_argument("--rounds", type=int, help="rounds per cell, best kept (default 2, quick 1)")
    ap.add_argument("--concurrency", type=_ints, help="non-stream sweep, e.g. 1,8,32,128")
    ap.add_argument(
        "--loadgen",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="non-stream load generator; auto = wrk when installed",
    )
    ap.add_argument("--slow-clients", type=int, help="slow-reading streams (default 100)")
    ap.add_argument(
        "--long-clients",
        type=_ints,
        help="concurrent clients on ~6 s paced streams, e.g. 1000,3000 (default 1000; "
        "quick: none; 0 skips)",
    )
    ap.add_argument("--long-duration", type=float, help="long-stream window, s (default 20)")
    ap.add_argument(
        "--long-ramp",
        type=float,
        help="seconds over which long-stream clients start (default: one stream, 6; "
        "0: all at once, in step)",
    )
    ap.add_argument("--long-only", action="store_true", help="run only the long-stream cells")
    ap.add_argument(
        "--profile",
        default="",
        help="comma list of targets to record with py-spy (flamegraph SVG per target)",
    )
    ap.add_argument("--no-pin", action="store_true", help="do not pin processes to cores")
    ap.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    ns = ap.parse_args(argv)
    targets = tuple(t for t in ns.targets.split(",") if t)
    if unknown := set(targets) - set(ALL_TARGETS):
        ap.error(f"unknown targets: {', '.join(sorted(unknown))}")
    base = Settings(targets=targets)
    if ns.quick:
        base = Settings.quick_run(targets, base.out)
    changes: dict[str, object] = {
        "loadgen": ns.loadgen,
        "pin": not ns.no_pin,
        "plots": not ns.no_plots,
    }
    if ns.out is not None:
        changes["out"] = ns.out
    if ns.duration is not None:
        changes["duration_s"] = ns.duration
    if ns.profile:
        changes["profile"] = tuple(x for x in ns.profile.split(",") if x)
    if ns.rounds is not None:
        changes["rounds"] = max(1, ns.rounds)
    if ns.concurrency:
        changes["sweep"] = ns.concurrency
    if ns.slow_clients is not None:
        changes["slow_clients"] = ns.slow_clients
    if ns.long_clients is not None:
        changes["long_clients"] = tuple(n for n in ns.long_clients if n > 0)
    if ns.long_duration is not None:
        changes["long_duration_s"] = ns.long_duration
    if ns.long_ramp is not None:
        changes["long_ramp_s"] = ns.long_ramp
    if ns.long_only:
        changes["long_only"] = True
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def _summary(data: RunData, console: Console) -> None:
    table = Table(title="Headline (ratios measured in this run)")
    for col in ("target", "ratio", "value", "goal", ""):
        table.add_column(col)
    for r in a.headline(data):
        value = "n/a" if math.isnan(r.value) else f"{r.value:.3g}"
        mark = {True: "[green]pass[/]", False: "[bold red]MISS[/]", None: ""}[r.passed]
        table.add_row(r.target, r.what, value, r.goal, mark)
    console.print(table)
    for w in [*data.warnings, *a.loadgen_warnings(data)]:
        console.print(f"[yellow]warning:[/] {w}")
    for f in a.failures(data):
        console.print(f"[bold red]FAILED:[/] {f}")


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(argv)
    console = Console()
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    data = run_bench(settings, console)
    run_dir = write(data, stamp)
    _summary(data, console)
    console.print(f"report: {run_dir / 'report.md'} (and {settings.out / 'latest.md'})")
    return 1 if a.failures(data) else 0
