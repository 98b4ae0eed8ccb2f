"""What one run measures: settings, the cells of each scenario, and their results."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bench import payloads as p
from bench.load import LoadResult

THROUGHPUT, STREAM, CROSS = "throughput", "stream", "cross"


@dataclass(frozen=True, slots=True)
class Settings:
    targets: tuple[str, ...]
    sweep: tuple[int, ...] = (1, 8, 32, 128)
    stream_concurrency: tuple[int, ...] = (1, 32)
    cross_concurrency: int = 32
    duration_s: float = 2.0
    rounds: int = 2  # cells are interleaved across targets; the best round is kept
    warmup_s: float = 1.0
    slow_clients: int = 100
    slow_hold_s: float = 5.0
    long_clients: tuple[int, ...] = (1000,)  # concurrent clients on ~6 s paced streams
    long_duration_s: float = 20.0
    # clients start spread over one stream's length, then the window is measured: a
    # steady load; 0 starts them all at once, in step for good (a wave every stream)
    long_ramp_s: float = p.PACED_SECONDS
    long_only: bool = False  # skip every other cell and the memory test
    loadgen: str = "auto"  # auto | wrk | python
    pin: bool = True
    plots: bool = True
    quick: bool = False
    profile: tuple[str, ...] = ()  # targets to record with py-spy during the cells
    out: Path = Path(__file__).resolve().parent / "results"

    @classmethod
    def quick_run(cls, targets: tuple[str, ...], out: Path) -> Settings:
        return cls(
            targets=targets,
            sweep=(1, 8),
            stream_concurrency=(8,),
            cross_concurrency=8,
            duration_s=1.0,
            rounds=1,
            warmup_s=0.3,
            slow_clients=20,
            slow_hold_s=1.5,
            long_clients=(),
            quick=True,
            out=out,
        )


@dataclass(frozen=True, slots=True)
class Cell:
    scenario: str
    api: str  # the client-facing API: openai | anthropic
    model: str
    stream: bool
    concurrency: int

    @property
    def cross(self) -> bool:
        return (self.api == p.OPENAI.name) == ("claude" in self.model)

    @property
    def key(self) -> str:
        family = "claude" if "claude" in self.model else "gpt"
        kind = "stream" if self.stream else "json"
        return f"{self.api}>{family}/{kind}/c{self.concurrency}"

    @property
    def marker(self) -> bytes:
        api = p.APIS[self.api]
        return api.done_marker if self.stream else api.json_key


def cells_for(settings: Settings, translates: bool) -> list[Cell]:
    """Every cell one target runs; cross-format cells only for translating gateways."""
    if settings.long_only:
        return []
    gpt, claude = p.OPENAI_MODEL, p.CLAUDE_MODEL
    cells = [Cell(THROUGHPUT, "openai", gpt, False, c) for c in settings.sweep]
    cells += [Cell(STREAM, "openai", gpt, True, c) for c in settings.stream_concurrency]
    c = settings.cross_concurrency
    for stream in (False, True):
        baseline = settings.stream_concurrency if stream else settings.sweep
        combos = [("anthropic", claude)]
        if c not in baseline:
            combos.insert(0, ("openai", gpt))
        if translates:
            combos += [("openai", claude), ("anthropic", gpt)]
        cells += [Cell(CROSS, api, model, stream, c) for api, model in combos]
    return cells


@dataclass(frozen=True, slots=True)
class CellResult:
    target: str
    cell: Cell
    result: LoadResult


@dataclass(frozen=True, slots=True)
class Memory:
    idle_mb: float
    after_load_mb: float
    slow_readers_mb: float
    slow_clients: int
    slow_answered: int


@dataclass(frozen=True, slots=True)
class LongResult:
    """Many concurrent long (paced) streams: the load of a gateway in production."""

    target: str
    clients: int
    result: LoadResult
    cpu_s: float  # the gateway's CPU time (user + system) during the cell
    rss_mid_mb: float  # the gateway's RSS halfway through the window

    @property
    def cpu_ms_per_stream(self) -> float:
        return self.cpu_s * 1e3 / self.result.requests if self.result.requests else float("nan")


@dataclass(slots=True)
class RunData:
    settings: Settings
    meta: dict[str, object]
    results: list[CellResult] = field(default_factory=list)
    memory: dict[str, Memory] = field(default_factory=dict)
    long: list[LongResult] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # target -> why (not installed)
    failed: dict[str, str] = field(default_factory=dict)  # target -> why it did not answer
    warnings: list[str] = field(default_factory=list)

    def find(self, target: str, key: str) -> LoadResult | None:
        for r in self.results:
            if r.target == target and r.cell.key == key:
                return r.result
        return None

    def find_long(self, target: str, clients: int) -> LongResult | None:
        return next((r for r in self.long if r.target == target and r.clients == clients), None)

    @property
    def ran(self) -> list[str]:
        return [t for t in self.settings.targets if t not in self.skipped]
