"""The built wheel and sdist install into a clean venv and run."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str | Path, cwd: Path = ROOT) -> str:
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=240, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_wheel_and_sdist_install_and_run(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    run(sys.executable, "-m", "build", "--outdir", dist, ".")
    wheels = list(dist.glob("minillm-0.1.0-*.whl"))
    sdists = list(dist.glob("minillm-0.1.0.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    run(python, "-m", "pip", "install", "--quiet", wheels[0])
    assert run(env_dir / "bin" / "minillm", "--version").strip() == "minillm 0.1.0"
    # the package must not import anything only installed in the dev venv
    run(python, "-c", "import minillm.app, minillm.cli; minillm.app.create_app()", cwd=tmp_path)
