"""Processes that only serve minillm tune the garbage collector; embedded gateways do not."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from minillm.app import create_app
from minillm.server.dedicated import YOUNG_THRESHOLD, dedicate


@pytest.fixture
def restored_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_dedicate_freezes_what_is_loaded_and_collects_young_objects_less_often(
    restored_gc: None,
) -> None:
    gc.unfreeze()
    _, middle, old = gc.get_threshold()
    dedicate()
    assert gc.get_freeze_count() > 10_000  # the modules, loaded: never traversed again
    assert gc.get_threshold() == (YOUNG_THRESHOLD, middle, old)


def test_the_hypercorn_factory_dedicates_its_process(
    restored_gc: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)
    monkeypatch.setenv("MINI_LLM_USAGE_DB", "off")
    create_app()
    assert gc.get_threshold()[0] == YOUNG_THRESHOLD and gc.get_freeze_count() > 0
