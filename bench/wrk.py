"""Run wrk (when installed) for non-streaming cells and parse its report."""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from bench.load import LoadResult

_LUA = """\
local f = assert(io.open("{body}", "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sk-bench"
wrk.headers["x-api-key"] = "sk-bench"
wrk.headers["anthropic-version"] = "2023-06-01"
"""
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def wrk_path() -> str | None:
    return shutil.which("wrk")


def wrk_version() -> str | None:
    if (path := wrk_path()) is None:
        return None
    out = subprocess.run([path, "--version"], capture_output=True, text=True, check=False)
    return (out.stdout + out.stderr).split("Copyright")[0].strip() or None


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    return float(m[1]) * _UNITS[m[2]] if m else math.nan


def parse(output: str) -> LoadResult:
    pct = {int(m[1]): _ms(m[2]) for m in re.finditer(r"^\s+(\d+)%\s+(\S+)\s*$", output, re.M)}
    total = re.search(r"(\d+) requests in ([\d.]+)(\w+)", output)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    sock = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    errors = sum(int(g) for g in sock.groups()) if sock else 0
    requests = int(total[1]) if total else 0
    bad = int(non2xx[1]) if non2xx else 0
    first_error = ""
    if bad or errors or not requests:
        first_error = " | ".join(
            ln.strip()
            for ln in output.splitlines()
            if "error" in ln.lower() or "non-2xx" in ln.lower()
        )
        first_error = first_error or output[-300:]
    return LoadResult(
        requests=requests,
        elapsed_s=_ms(total[2] + total[3]) / 1e3 if total else 0.0,
        rps=float(rps[1]) if rps else 0.0,
        p50_ms=pct.get(50, math.nan),
        p90_ms=pct.get(90, math.nan),
        p99_ms=pct.get(99, math.nan),
        ttfb_p50_ms=None,
        ttfb_p99_ms=None,
        non2xx=bad,
        errors=errors,
        invalid=0,
        first_error=first_error,
        tool="wrk",
    )


def run_wrk(url: str, body: bytes, concurrency: int, duration_s: float) -> LoadResult:
    """Closed-loop wrk run: one thread (it shares its core with the fake provider)."""
    path = wrk_path()
    assert path is not None
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        body_file = Path(tmp, "body.json")
        body_file.write_bytes(body)
        script = Path(tmp, "post.lua")
        script.write_text(_LUA.format(body=body_file))
        cmd = [
            path,
            "-t1",
            f"-c{concurrency}",
            f"-d{max(1, round(duration_s))}s",
            "--timeout",
            "30s",
            "--latency",
            "-s",
            str(script),
            url,
        ]
        out = subprocess.run(
            cmd, capture_output=True, text=True, check=False, timeout=duration_s + 60
        )
    return parse(out.stdout + out.stderr)
