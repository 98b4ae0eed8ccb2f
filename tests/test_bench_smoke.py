"""The benchmark harness still works: a ``--quick`` run answers on every target.

Asserts the report's structure and that every cell got complete 2xx answers;
never a timing. Deselect with ``-m "not bench"``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.bench

REPO = Path(__file__).resolve().parent.parent
TARGETS = ("direct", "floor", "minillm")
SCENARIOS = {"throughput", "stream", "cross"}


def test_quick_run_answers_on_every_target(tmp_path: Path) -> None:
    out = tmp_path / "results"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--quick",
            "--out",
            str(out),
            "--targets",
            ",".join(TARGETS),
            "--long-clients",
            "20",
            "--long-duration",
            "1",
            "--duration",
            "0.5",
            "--slow-clients",
            "20",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    report = json.loads((out / "latest.json").read_text())
    assert {"meta", "targets", "skipped", "failed", "headline", "cells", "memory"} <= set(report)
    assert report["targets"] == list(TARGETS)
    assert report["failed"] == {}
    assert report["failures"] == []
    assert {"machine", "versions", "date", "loadgen", "pinning"} <= set(report["meta"])

    for target in TARGETS:
        cells = [c for c in report["cells"] if c["target"] == target]
        assert {c["scenario"] for c in cells} == SCENARIOS, target
        for cell in cells:
            assert cell["ok"] and cell["requests"] > 0, cell
            assert cell["non2xx"] == cell["errors"] == cell["invalid"] == 0, cell
            if cell["stream"]:
                assert cell["ttfb_p50_ms"] is not None, cell
    translated = [c for c in report["cells"] if c["target"] == "minillm" and c["cross_format"]]
    assert {(c["api"], c["stream"]) for c in translated} == {
        ("openai", False),
        ("openai", True),
        ("anthropic", False),
        ("anthropic", True),
    }

    for gateway in ("floor", "minillm"):
        mem = report["memory"][gateway]
        assert mem["slow_answered"] == mem["slow_clients"] > 0
        assert mem["idle_mb"] > 0 and mem["slow_readers_mb"] > 0
    long = {r["target"]: r for r in report["long_streams"]}
    assert set(long) == set(TARGETS)
    for target, r in long.items():
        assert r["clients"] == 20 and r["result"]["requests"] >= 20, r
        assert r["result"]["errors"] == r["result"]["invalid"] == 0, r
        if target != "direct":
            assert r["cpu_s"] > 0 and r["rss_mid_mb"] > 0, r
    headline = {(h["target"], h["what"]) for h in report["headline"]}
    assert any(t == "minillm" and "/ floor" in w for t, w in headline)

    run_dirs = [d for d in out.iterdir() if d.is_dir()]
    assert len(run_dirs) == 1
    md = (run_dirs[0] / "report.md").read_text()
    for section in ("## Headline", "## 1.", "## 2.", "## 3.", "## 4.", "## 5.", "## 6."):
        assert section in md
    assert {p.name for p in run_dirs[0].glob("*.png")} == {
        "throughput.png",
        "latency.png",
        "rss.png",
    }
    assert (out / "latest.md").exists()
