"""Who, where and with what a run was made: machine, versions, settings."""

from __future__ import annotations

import datetime as dt
import os
import platform
from importlib import metadata
from pathlib import Path

import psutil

from bench.plan import Settings
from bench.targets import Pinning
from bench.wrk import wrk_version

_PACKAGES = ("minillm", "hypercorn", "quart", "quart-trio", "httpx", "trio", "orjson", "litellm")


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_meta(settings: Settings, pin: Pinning, use_wrk: bool) -> dict[str, object]:
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "cpu": _cpu_model(),
            "cores": os.cpu_count(),
            "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        },
        "python": platform.python_version(),
        "versions": {n: v for n in _PACKAGES if (v := _version(n))},
        "wrk": wrk_version() if use_wrk else None,
        "loadgen": {"json": "wrk" if use_wrk else "python", "stream": "python"},
        "pinning": {
            "gateway": sorted(pin.gateway) if pin.gateway else None,
            "workers2": sorted(pin.gateway_cores(2) or os.sched_getaffinity(0)),
            "load_and_provider": sorted(pin.load) if pin.load else None,
        },
        "settings": {
            "sweep": list(settings.sweep),
            "stream_concurrency": list(settings.stream_concurrency),
            "cross_concurrency": settings.cross_concurrency,
            "duration_s": settings.duration_s,
            "rounds": settings.rounds,
            "slow_clients": settings.slow_clients,
            "slow_hold_s": settings.slow_hold_s,
            "long_clients": list(settings.long_clients),
            "long_duration_s": settings.long_duration_s,
            "long_ramp_s": settings.long_ramp_s,
            "quick": settings.quick,
        },
    }
