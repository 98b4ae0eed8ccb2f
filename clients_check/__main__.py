"""``make clients-check``: the real Claude Code and Codex CLIs through the gateway.

Installs the pinned CLI versions from npm into ``clients_check/.npm`` (once),
starts the scripted fake provider (:mod:`clients_check.fake`) and the gateway
on 127.0.0.1, then runs each CLI non-interactively, in a temporary HOME, on
four paths (each CLI to a Claude model and to a GPT model), twice per path:

* ``plain``: one question; the CLI must print the fake's answer;
* ``tool``: the fake asks for the CLI's own shell tool to run
  ``echo minillm-ok``; the CLI runs it and sends the output back through the
  gateway; the output must reach the fake and the fake's final text must be
  printed.

Prints a table path x check -> pass/FAIL (exit status 1 if any failed).
``python -m clients_check --keep`` keeps the temporary HOMEs and prints where;
``--only codex`` / ``--only claude`` runs one CLI.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import hypercorn.config
import hypercorn.trio
import orjson
import trio

from clients_check.fake import COMMAND, FINAL_PREFIX, MARKER, PLAIN_ANSWER, FakeProvider
from minillm.core.config import Config
from minillm.server.serve import bind_socket, serve

CLAUDE_CODE = ("@anthropic-ai/claude-code", "2.1.328")
CODEX = ("@openai/codex", "0.169.0")
CLAUDE_MODEL = "claude-sonnet-4-5"
GPT_MODEL = "gpt-5.1"
HERE = Path(__file__).resolve().parent
NPM_DIR = HERE / ".npm"
TIMEOUT_S = 180.0
PROMPTS = {
    "plain": "Reply with one word: are you there?",
    "tool": f"Run the shell command `{COMMAND}` and tell me what it printed.",
}


@dataclass(frozen=True, slots=True)
class Route:
    cli: str  # "claude" or "codex"
    model: str
    label: str


ROUTES = (
    Route("claude", CLAUDE_MODEL, "Claude Code -> claude model (passthrough)"),
    Route("claude", GPT_MODEL, "Claude Code -> gpt model (translated)"),
    Route("codex", GPT_MODEL, "Codex -> gpt model (Responses passthrough)"),
    Route("codex", CLAUDE_MODEL, "Codex -> claude model (Responses -> Anthropic)"),
)


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool
    why: str = ""


def install() -> Path:
    """The npm ``.bin`` folder holding the pinned CLIs, installing them if needed."""
    bin_dir = NPM_DIR / "node_modules" / ".bin"
    wanted = [f"{name}@{version}" for name, version in (CLAUDE_CODE, CODEX)]
    stamp = NPM_DIR / "installed.txt"
    if stamp.exists() and stamp.read_text().split() == wanted and bin_dir.is_dir():
        return bin_dir
    NPM_DIR.mkdir(exist_ok=True)
    (NPM_DIR / "package.json").write_text('{"private": true}\n')
    print(f"installing {' '.join(wanted)} from npm into {NPM_DIR} ...", flush=True)
    subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--save-exact", *wanted],
        cwd=NPM_DIR,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    stamp.write_text("\n".join(wanted) + "\n")
    return bin_dir


def _base_env(home: Path) -> dict[str, str]:
    keep = ("PATH", "LANG", "TERM", "TMPDIR")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), NO_COLOR="1")
    # no real network: anything but the gateway goes to a proxy that is not there
    dead = "http://127.0.0.1:9"
    env.update(HTTPS_PROXY=dead, HTTP_PROXY=dead, ALL_PROXY=dead, NO_PROXY="127.0.0.1,localhost")
    return env


def claude_command(
    bin_dir: Path, home: Path, gateway: str, model: str, prompt: str
) -> tuple[list[str], dict[str, str]]:
    env = _base_env(home) | {
        "ANTHROPIC_BASE_URL": gateway,
        "ANTHROPIC_API_KEY": "sk-ant-clients-check",
        "ANTHROPIC_MODEL": model,
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": model,
        "ANTHROPIC_DEFAULT_SONNET_MODEL": model,
        "ANTHROPIC_DEFAULT_OPUS_MODEL": model,
        "CLAUDE_CODE_SUBAGENT_MODEL": model,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
    }
    args = [str(bin_dir / "claude"), "-p", prompt, "--model", model, "--max-turns", "4"]
    args += ["--allowedTools", f"Bash({COMMAND})", "--output-format", "text"]
    return args, env


def codex_command(
    bin_dir: Path, home: Path, gateway: str, model: str, prompt: str
) -> tuple[list[str], dict[str, str]]:
    codex_home = home / ".codex"
    codex_home.mkdir(parents=True, exist_ok=True)
    (codex_home / "config.toml").write_text(
        f'model = "{model}"\n'
        'model_provider = "minillm"\n'
        'approval_policy = "never"\n'
        'sandbox_mode = "danger-full-access"\n'
        "check_for_update_on_startup = false\n"
        "[model_providers.minillm]\n"
        'name = "minillm"\n'
        f'base_url = "{gateway}/v1"\n'
        'env_key = "MINILLM_CLIENT_KEY"\n'
        'wire_api = "responses"\n'
        "request_max_retries = 0\n"
        "stream_max_retries = 0\n"
    )
    env = _base_env(home) | {
        "CODEX_HOME": str(codex_home),
        "MINILLM_CLIENT_KEY": "sk-clients-check",
    }
    args = [str(bin_dir / "codex"), "exec", "--skip-git-repo-check", "--color", "never"]
    args += ["--dangerously-bypass-approvals-and-sandbox", "-C", str(home), prompt]
    return args, env


COMMANDS: dict[str, Callable[..., tuple[list[str], dict[str, str]]]] = {
    "claude": claude_command,
    "codex": codex_command,
}


async def run_one(
    route: Route, check: str, *, bin_dir: Path, gateway: str, fake: FakeProvider, keep: bool
) -> Outcome:
    fake.reset()
    home = Path(tempfile.mkdtemp(prefix=f"minillm-{route.cli}-"))
    args, env = COMMANDS[route.cli](bin_dir, home, gateway, route.model, PROMPTS[check])
    log = home / "cli-output.txt"
    with trio.move_on_after(TIMEOUT_S) as scope:
        done = await trio.run_process(
            args,
            env=env,
            cwd=home,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            stdin=b"",
        )
    if scope.cancelled_caught:
        outcome = Outcome(False, f"no exit within {TIMEOUT_S:.0f}s")
    else:
        out, err = done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace")
        log.write_text(f"exit {done.returncode}\n--- stdout\n{out}\n--- stderr\n{err}\n")
        outcome = _judge(check, done.returncode, out, err, fake)
    if keep or not outcome.ok:
        seen = [{"path": r.path, "headers": r.headers, "body": r.body} for r in fake.requests]
        (home / "provider-requests.json").write_bytes(
            orjson.dumps(seen, option=orjson.OPT_INDENT_2)
        )
        outcome = Outcome(outcome.ok, f"{outcome.why} (see {home})".strip())
    else:
        shutil.rmtree(home, ignore_errors=True)
    return outcome


def _judge(check: str, code: int, out: str, err: str, fake: FakeProvider) -> Outcome:
    if not fake.requests:
        return Outcome(False, "no request reached the provider")
    if check == "tool":
        if not fake.tool_outputs:
            return Outcome(False, "no tool result reached the provider")
        if not any(MARKER in t for t in fake.tool_outputs):
            return Outcome(False, "the tool result lacks the command's output")
    expected = PLAIN_ANSWER if check == "plain" else f"{FINAL_PREFIX} {MARKER}"
    if code != 0 or expected not in out:
        last = (err.strip() or out.strip()).splitlines()[-1:] or [""]
        return Outcome(False, f"exit {code}: {last[0][:160]}")
    return Outcome(True)


async def main(bin_dir: Path, only: str | None, keep: bool) -> int:
    fake = FakeProvider()
    results: list[tuple[Route, str, Outcome]] = []
    async with trio.open_nursery() as nursery:
        hc = hypercorn.config.Config()
        hc.bind = ["127.0.0.1:0"]
        hc.accesslog = None
        hc.loglevel = "WARNING"
        binds = await nursery.start(partial(hypercorn.trio.serve, fake, hc))  # type: ignore[arg-type]
        env = {
            "OPENAI_API_KEY": "sk-fake-openai",
            "ANTHROPIC_API_KEY": "sk-ant-fake",
            "MINI_LLM_OPENAI_BASE_URL": f"{binds[0]}/v1",
            "MINI_LLM_ANTHROPIC_BASE_URL": binds[0],
            "MINI_LLM_USAGE_DB": "off",
            "MINI_LLM_LOG_LEVEL": "warning",
            "MINI_LLM_REQUEST_TIMEOUT": "60",
        }
        gateway = await nursery.start(
            partial(serve, Config.load(env), sock=bind_socket("127.0.0.1", 0), handle_signals=False)
        )
        for route in ROUTES:
            if only and route.cli != only:
                continue
            for check in PROMPTS:
                outcome = await run_one(
                    route, check, bin_dir=bin_dir, gateway=gateway, fake=fake, keep=keep
                )
                results.append((route, check, outcome))
                print(
                    f"{route.label:48} {check:6} {'pass' if outcome.ok else 'FAIL'} {outcome.why}",
                    flush=True,
                )
        nursery.cancel_scope.cancel()
    print(_table(results))
    return 0 if all(o.ok for _, _, o in results) else 1


def _table(results: list[tuple[Route, str, Outcome]]) -> str:
    versions = f"Claude Code {CLAUDE_CODE[1]}, Codex CLI {CODEX[1]}"
    lines = [f"\n{versions}\n", "| client -> model | plain | tool round trip |", "|---|---|---|"]
    for route in dict.fromkeys(p for p, _, _ in results):
        cells = {c: ("pass" if o.ok else "FAIL") for p, c, o in results if p == route}
        lines.append(f"| {route.label} | {cells.get('plain', '-')} | {cells.get('tool', '-')} |")
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        prog="python -m clients_check", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--only", choices=("claude", "codex"))
    parser.add_argument("--keep", action="store_true", help="keep the temporary HOMEs")
    opts = parser.parse_args()
    sys.exit(trio.run(main, install(), opts.only, opts.keep))
