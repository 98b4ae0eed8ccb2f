"""PNG plots of a run (matplotlib, headless): throughput, latency, RSS."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from bench.plan import STREAM, THROUGHPUT, RunData


def _throughput(data: RunData, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for target in data.ran:
        pts = sorted(
            (r.cell.concurrency, r.result.rps)
            for r in data.results
            if r.target == target and r.cell.scenario == THROUGHPUT and r.result.ok
        )
        if pts:
            ax.plot(*zip(*pts, strict=True), marker="o", label=target)
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="concurrent connections",
        ylabel="requests/s",
        title="Non-streaming throughput vs concurrency",
    )
    ax.set_xticks(list(data.settings.sweep), [str(c) for c in data.settings.sweep])
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _latency(data: RunData, path: Path) -> None:
    groups = [
        (f"json c={r.cell.concurrency}", r) for r in data.results if r.cell.scenario == THROUGHPUT
    ]
    groups += [
        (f"stream c={r.cell.concurrency}", r) for r in data.results if r.cell.scenario == STREAM
    ]
    labels = list(dict.fromkeys(label for label, _ in groups))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=False)
    width = 0.8 / max(1, len(data.ran))
    for ax, q in zip(axes, ("p50_ms", "p99_ms"), strict=True):
        for i, target in enumerate(data.ran):
            vals = {
                label: getattr(r.result, q)
                for label, r in groups
                if r.target == target and r.result.ok
            }
            xs = [j + i * width for j in range(len(labels))]
            ax.bar(xs, [vals.get(label, 0.0) for label in labels], width, label=target)
        ax.set_xticks(
            [j + width * (len(data.ran) - 1) / 2 for j in range(len(labels))],
            labels,
            rotation=30,
            ha="right",
        )
        ax.set(yscale="log", ylabel="ms", title=f"latency {q[:3]}")
        ax.grid(True, axis="y", alpha=0.3)
    axes[0].legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _rss(data: RunData, path: Path) -> None:
    targets = list(data.memory)
    phases = [
        ("idle", "idle_mb"),
        ("after load", "after_load_mb"),
        ("slow readers", "slow_readers_mb"),
    ]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    width = 0.8 / len(phases)
    for i, (label, attr) in enumerate(phases):
        xs = [j + i * width for j in range(len(targets))]
        ax.bar(xs, [getattr(data.memory[t], attr) for t in targets], width, label=label)
    ax.axhline(150, color="red", linestyle="--", linewidth=1, label="150 MB goal")
    ax.set_xticks([j + width for j in range(len(targets))], targets)
    ax.set(ylabel="RSS MB", title="Gateway RSS (process tree)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def draw(data: RunData, run_dir: Path) -> list[str]:
    """Draw every plot into ``run_dir``; return their file names."""
    names = []
    for name, fn in (("throughput.png", _throughput), ("latency.png", _latency), ("rss.png", _rss)):
        if name == "rss.png" and not data.memory:
            continue
        fn(data, run_dir / name)
        names.append(name)
    return names
