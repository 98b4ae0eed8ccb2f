"""Run every target through every cell, with a progress bar, into a ``RunData``.

All targets are started together (pinned to the gateway core; idle ones cost nothing)
and measured cell by cell, round by round, so that machine noise hits them alike.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from contextlib import ExitStack
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bench import payloads as p
from bench import targets as t
from bench.load import LoadResult, long_streams, probe, run_load, slow_readers
from bench.meta import machine_meta
from bench.plan import Cell, CellResult, LongResult, Memory, RunData, Settings, cells_for
from bench.profile import profiling
from bench.wrk import run_wrk, wrk_path


def _request(cell: Cell, port: int) -> bytes:
    return p.http_request(p.APIS[cell.api], cell.model, cell.stream, f"{t.HOST}:{port}")


def _measure(cell: Cell, port: int, settings: Settings, use_wrk: bool) -> LoadResult:
    if use_wrk and not cell.stream:
        body = p.request_body(p.APIS[cell.api], cell.model, False)
        url = f"http://{t.HOST}:{port}{p.APIS[cell.api].path}"
        return run_wrk(url, body, cell.concurrency, settings.duration_s)
    return asyncio.run(
        run_load(
            t.HOST,
            port,
            _request(cell, port),
            marker=cell.marker,
            concurrency=cell.concurrency,
            duration_s=settings.duration_s,
        )
    )


def _probe_all(cells: list[Cell], port: int) -> str | None:
    seen: set[tuple[str, str, bool]] = set()
    for cell in cells:
        if (cell.api, cell.model, cell.stream) in seen:
            continue
        seen.add((cell.api, cell.model, cell.stream))
        if why := asyncio.run(probe(t.HOST, port, _request(cell, port), cell.marker)):
            return f"{cell.key}: {why}"
    return None


def _line(target: str, cell: Cell, r: LoadResult) -> str:
    status = "[green]ok[/]" if r.ok else f"[bold red]FAIL[/] {r.first_error}"
    ttfb = f" ttfb p50 {r.ttfb_p50_ms:.2f} ms" if cell.stream and r.ttfb_p50_ms else ""
    return (
        f"{target:<18} {cell.scenario:<10} {cell.key:<28} {r.rps:9.0f} req/s  "
        f"p50 {r.p50_ms:7.2f} ms  p99 {r.p99_ms:7.2f} ms{ttfb}  ({r.tool}) {status}"
    )


def _long_line(r: LongResult) -> str:
    status = "[green]ok[/]" if r.result.ok else f"[bold red]FAIL[/] {r.result.first_error}"
    return (
        f"{r.target:<18} long       {r.clients} clients {r.result.rps:9.1f} streams/s  "
        f"p50 {r.result.p50_ms / 1e3:6.2f} s  p99 {r.result.p99_ms / 1e3:6.2f} s  "
        f"cpu {r.cpu_ms_per_stream:6.2f} ms/stream  rss {r.rss_mid_mb:6.1f} MB {status}"
    )


def _memory(run: t.Running, settings: Settings, idle: float) -> Memory:
    after = run.rss_mb()
    model = p.OPENAI_MODEL + p.LONG_SUFFIX
    req = p.http_request(p.OPENAI, model, True, f"{t.HOST}:{run.port}")
    slow = asyncio.run(
        slow_readers(
            t.HOST,
            run.port,
            req,
            n=settings.slow_clients,
            hold_s=settings.slow_hold_s,
            rss_mb=run.rss_mb,
        )
    )
    return Memory(
        idle_mb=idle,
        after_load_mb=after,
        slow_readers_mb=slow.peak_rss_mb,
        slow_clients=slow.clients,
        slow_answered=slow.answered,
    )


def _best(results: list[LoadResult]) -> LoadResult:
    """Best of the rounds (noise only ever slows a cell down); any failure wins."""
    failed = [r for r in results if not r.ok]
    return failed[0] if failed else max(results, key=lambda r: r.rps)


class _Session:
    def __init__(self, data: RunData, use_wrk: bool, bar: Progress) -> None:
        self.data, self.settings, self.use_wrk, self.bar = data, data.settings, use_wrk, bar
        self.plan = {n: set(cells_for(self.settings, t.TARGETS[n].translates)) for n in data.ran}
        self.order = [
            c
            for c in cells_for(self.settings, True)
            if any(c in cells for cells in self.plan.values())
        ]
        steps = self.settings.rounds * sum(map(len, self.plan.values()))
        steps += len(self.settings.long_clients) * len(self.plan)
        self.task = bar.add_task("starting targets", total=steps + len(self.plan))
        self.running: dict[str, t.Running] = {}
        self.idle: dict[str, float] = {}

    def fail(self, name: str, why: str) -> None:
        self.data.failed[name] = why
        self.running.pop(name, None)
        self.bar.console.print(f"[bold red]FAILED[/] {name}: {why}")

    def start(self, stack: ExitStack, provider: int, workdir: Path, pin: t.Pinning) -> None:
        for name in self.plan:
            target = t.TARGETS[name]
            try:
                run = stack.enter_context(
                    t.running(target, provider, workdir, pin.gateway_cores(target.workers))
                )
            except RuntimeError as exc:
                self.fail(name, f"did not start: {exc}")
                continue
            if why := _probe_all([c for c in self.order if c in self.plan[name]], run.port):
                self.fail(name, f"did not answer: {why}\n{t.log_tail(workdir, name)}")
                continue
            self.running[name] = run
            warm = Cell("warmup", "openai", p.OPENAI_MODEL, False, 8)
            asyncio.run(
                run_load(
                    t.HOST,
                    run.port,
                    _request(warm, run.port),
                    marker=warm.marker,
                    concurrency=8,
                    duration_s=self.settings.warmup_s,
                )
            )
            self.idle[name] = run.rss_mb()

    def measure_all(self, workdir: Path) -> None:
        rounds: dict[tuple[str, Cell], list[LoadResult]] = {}
        for rnd in range(self.settings.rounds):
            for cell in self.order:
                for name, run in list(self.running.items()):
                    if cell not in self.plan[name]:
                        continue
                    self.bar.update(self.task, description=f"r{rnd + 1} {name}: {cell.key}")
                    result = _measure(cell, run.port, self.settings, self.use_wrk)
                    rounds.setdefault((name, cell), []).append(result)
                    self.bar.console.print(_line(name, cell, result))
                    self.bar.advance(self.task)
                    if run.proc is not None and run.proc.poll() is not None:
                        self.fail(name, f"exited during the run:\n{t.log_tail(workdir, name)}")
        self.data.results += [CellResult(n, c, _best(rs)) for (n, c), rs in rounds.items()]

    def long_streams(self) -> None:
        for clients in self.settings.long_clients:
            for name, run in list(self.running.items()):
                self.bar.update(self.task, description=f"{name}: {clients} long streams")
                r = _long(run, clients, self.settings)
                self.data.long.append(r)
                self.bar.console.print(_long_line(r))
                self.bar.advance(self.task)

    def memory(self) -> None:
        if self.settings.long_only:
            return
        for name, run in self.running.items():
            if run.proc is not None:
                what = f"{name}: {self.settings.slow_clients} slow readers"
                self.bar.update(self.task, description=what)
                self.data.memory[name] = _memory(run, self.settings, self.idle[name])


def _long(run: t.Running, clients: int, settings: Settings) -> LongResult:
    model = p.OPENAI_MODEL + p.PACED_SUFFIX
    req = p.http_request(p.OPENAI, model, True, f"{t.HOST}:{run.port}")
    cpu = run.cpu_s()
    result, rss = asyncio.run(
        long_streams(
            t.HOST,
            run.port,
            req,
            marker=p.OPENAI.done_marker,
            clients=clients,
            duration_s=settings.long_duration_s,
            ramp_s=settings.long_ramp_s,
            rss_mb=run.rss_mb,
        )
    )
    return LongResult(run.name, clients, result, run.cpu_s() - cpu, rss)


def run_bench(settings: Settings, console: Console) -> RunData:
    pin = t.Pinning.detect(settings.pin)
    use_wrk = settings.loadgen == "wrk" or (settings.loadgen == "auto" and wrk_path() is not None)
    if settings.loadgen == "wrk" and not wrk_path():
        raise SystemExit("--loadgen wrk: wrk is not installed (apt-get install wrk)")
    data = RunData(settings, machine_meta(settings, pin, use_wrk))
    if pin.load:
        os.sched_setaffinity(0, pin.load)
    else:
        data.warnings.append("not pinned to cores (--no-pin, fewer than 2 CPUs or no taskset)")
    data.skipped.update((n, why) for n in settings.targets if (why := t.unavailable(n)))
    columns = (
        TextColumn("{task.description:<48}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with (
        tempfile.TemporaryDirectory(prefix="bench-") as tmp,
        Progress(*columns, console=console, refresh_per_second=2) as bar,
        t.fake_provider(workdir := Path(tmp), pin.load) as provider,
        ExitStack() as stack,
    ):
        session = _Session(data, use_wrk, bar)
        if "litellm" in session.plan:
            models = [p.OPENAI_MODEL, p.CLAUDE_MODEL, p.OPENAI_MODEL + p.LONG_SUFFIX]
            t.write_litellm_config(workdir, provider, models)
        session.start(stack, provider, workdir, pin)
        with profiling(session.running, settings.profile, settings.out / "profiles"):
            session.measure_all(workdir)
        session.memory()
        with profiling(session.running, settings.profile, settings.out / "profiles", "-long"):
            session.long_streams()
        bar.update(session.task, completed=bar.tasks[0].total, description="stopping targets")
    return data
