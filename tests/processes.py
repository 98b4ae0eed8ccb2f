"""Run the gateway as users do: a subprocess, stopped by a signal."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import trio


@dataclass
class Served:
    process: trio.Process
    url: str
    stderr: bytearray


def clean_env(extra: Mapping[str, str]) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("OPENAI", "ANTHROPIC", "MINI_LLM"))
    }
    env.update(extra)
    return env


@asynccontextmanager
async def serving(
    env: Mapping[str, str], args: Sequence[str] = ("serve", "--port", "0"), timeout: float = 20
) -> AsyncIterator[Served]:
    """Start ``python -m minillm ARGS``; yield once it printed its URL; kill at exit."""
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "minillm", *args],
        env=clean_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    stderr = bytearray()
    try:
        async with trio.open_nursery() as nursery:

            async def drain_stderr() -> None:
                assert process.stderr is not None
                async for chunk in process.stderr:
                    stderr.extend(chunk)

            nursery.start_soon(drain_stderr)
            assert process.stdout is not None
            line = b""
            with trio.fail_after(timeout):
                while b"\n" not in line:
                    chunk = await process.stdout.receive_some()
                    if not chunk:
                        raise AssertionError(f"gateway exited early: {stderr.decode()}")
                    line += chunk
            url = line.decode().split("listening on ")[1].split()[0]
            yield Served(process, url, stderr)
            nursery.cancel_scope.cancel()
    finally:
        if process.returncode is None:
            process.kill()
        with trio.CancelScope(shield=True):
            await process.wait()
