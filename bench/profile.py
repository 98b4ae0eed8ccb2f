"""``--profile``: record targets with py-spy during the cells, and summarize the stacks."""

from __future__ import annotations

import shutil
import signal
import subprocess
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench import targets as t

_IDLE = ("_thread_cache.py:211",)  # trio's idle worker threads: waiting, not working


def summarize(folded: str, top: int = 25) -> str:
    """Top functions of py-spy's collapsed stacks: by inclusive time, by the deepest
    minillm frame (its own time plus the library code it called), and by own time."""
    own: Counter[str] = Counter()
    ours: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in folded.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or any(i in stack for i in _IDLE):
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        own[frames[-1]] += n
        inclusive.update(dict.fromkeys({_function(f) for f in frames[1:]}, n))
        if mine := [f for f in frames if "minillm/" in f]:
            ours[mine[-1]] += n
    lines = [f"{total} busy samples", "", "inclusive (the function and all it called):"]
    lines += [f"  {n / total:6.1%}  {f}" for f, n in inclusive.most_common(top)]
    lines += ["", "deepest minillm frame (incl. library callees):"]
    lines += [f"  {n / total:6.1%}  {f}" for f, n in ours.most_common(top)]
    lines += ["", "own time:"]
    lines += [f"  {n / total:6.1%}  {f}" for f, n in own.most_common(top)]
    return "\n".join(lines) + "\n"


def _function(frame: str) -> str:
    """``name (file.py:LINE)`` without the line: one entry per function."""
    head, sep, _ = frame.rpartition(":")
    return f"{head})" if sep and frame.endswith(")") else frame


@contextmanager
def profiling(
    running: dict[str, t.Running], names: tuple[str, ...], out: Path, suffix: str = ""
) -> Iterator[None]:
    """Record ``names`` with py-spy (all their processes) while the body runs,
    into ``<out>/<name><suffix>.folded``."""
    spy = t.BIN / "py-spy" if (t.BIN / "py-spy").exists() else shutil.which("py-spy")
    procs: list[subprocess.Popen[bytes]] = []
    if names and spy is None:
        print("--profile: py-spy is not installed (pip install py-spy); not profiling")
    for name in names if spy else ():
        if (run := running.get(name)) is None or run.proc is None:
            continue
        out.mkdir(parents=True, exist_ok=True)
        argv = [
            str(spy),
            "record",
            "--subprocesses",
            "-p",
            str(run.proc.pid),
            "-f",
            "raw",
            "-o",
            str(out / f"{name}{suffix}.folded"),
        ]
        procs.append(
            subprocess.Popen(
                argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
            )
        )
    try:
        yield
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        for proc in procs:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for name in names:
            if (folded := out / f"{name}{suffix}.folded").exists():
                (out / f"{name}{suffix}-top.txt").write_text(summarize(folded.read_text()))
