"""The public API is exactly ``minillm.__all__`` (as httpx's test_exported_members)."""

from __future__ import annotations

import subprocess
import sys
import types

import minillm


def test_all_public_members_are_exported() -> None:
    public = {
        name
        for name, value in vars(minillm).items()
        if (not name.startswith("_") or name == "__version__")
        and not isinstance(value, types.ModuleType)  # submodules become attributes on import
    }
    assert sorted(minillm.__all__) == sorted(public)
    assert len(set(minillm.__all__)) == len(minillm.__all__)


def test_exported_members_belong_to_minillm() -> None:
    for name in minillm.__all__:
        member = getattr(minillm, name)
        if name != "__version__":
            assert member.__module__.startswith("minillm."), name


def test_import_is_light() -> None:
    """`import minillm` in a sync app loads neither the server stack nor Trio."""
    code = "import sys, minillm; print(sorted({'trio', 'quart', 'hypercorn'} & set(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
