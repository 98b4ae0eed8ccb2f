"""The package layout is the architecture: imports only go downward, and there are no cycles.

core (sans-I/O) <- runtime (Trio) <- server (Quart-Trio) <- cli, sdk and the top-level entries.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import minillm

ROOT = Path(minillm.__file__).parent
LAYERS = {"_version": 0, "core": 1, "runtime": 2, "server": 3}  # anything else: 4 (entries)
IO = ("trio", "httpx", "quart", "quart_trio", "hypercorn")
HTTPX_OWNER = "minillm.runtime.providers"  # the one transport below the server that uses httpx


def _name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(imported module, under ``if TYPE_CHECKING``) for every import in the file."""
    tree = ast.parse(path.read_text())
    typing_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            typing_only.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    found: list[tuple[str, bool]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in typing_only) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, id(node) in typing_only))
    return found


MODULES = {_name(p): _imports(p) for p in sorted(ROOT.rglob("*.py"))}


def _layer(module: str) -> int:
    return LAYERS.get(module.split(".")[1] if "." in module else "", 4)


def test_imports_only_go_downward() -> None:
    upward = [
        f"{module} imports {target}"
        for module, imports in MODULES.items()
        for target, _ in imports
        if target.startswith("minillm.") and _layer(target) > _layer(module)
    ]
    assert upward == []


def test_no_import_cycles() -> None:
    graph = {
        module: {t for t, _ in imports if t in MODULES and t != module}
        for module, imports in MODULES.items()
    }
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, " -> ".join((*path, module))
        if module not in done:
            for target in graph[module]:
                visit(target, (*path, module))
            done.add(module)

    for module in graph:
        visit(module, ())


def test_core_does_no_io() -> None:
    io = [
        f"{module} imports {target}"
        for module, imports in MODULES.items()
        if _layer(module) <= 1
        for target, _ in imports
        if target.split(".")[0] in IO
    ]
    assert io == []
    core = sorted(m for m in MODULES if _layer(m) <= 1)
    code = (  # the package's __init__ (the SDK, which uses httpx) is not run
        "import sys, types; package = types.ModuleType('minillm');"
        f" package.__path__ = [{str(ROOT)!r}]; sys.modules['minillm'] = package;"
        f" import {', '.join(core)}; print(sorted(set(sys.modules) & {set(IO)!r}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_only_the_provider_transport_uses_httpx_in_the_gateway() -> None:
    users = [
        module
        for module, imports in MODULES.items()
        if _layer(module) <= 3 and not module.startswith(HTTPX_OWNER)
        for target, _ in imports
        if target.split(".")[0] == "httpx"
    ]
    assert users == []
