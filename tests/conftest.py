# ---------------------------------------------------------------------------------------
# Fake upstream (tests/upstream.py): a real Hypercorn server speaking the OpenAI and
# Anthropic APIs, scripted per request with `upstream.push(Reply(...), Status(503), ...)`.
# It runs in the test's nursery and is cancelled with it at the end of the test.
# ---------------------------------------------------------------------------------------
import pytest
import trio
import trio.testing

from upstream import FakeUpstream


@pytest.fixture
async def upstream(nursery: trio.Nursery) -> FakeUpstream:
    fake = FakeUpstream()
    await nursery.start(fake.serve)
    return fake


# --- other fixtures below ---------------------------------------------------------------

from db_fixtures import postgres_server, postgres_url, usage_target  # noqa: E402, F401
from gateway_fixtures import start_gateway  # noqa: E402, F401  (the real gateway, in-process)
from redis_fixtures import cluster_url, redis_env, redis_server, sentinel_url  # noqa: E402, F401


@pytest.fixture(autouse=True)
def _private_data_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Keep the default usage database (under the user data dir) out of the real home."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("data")))


@pytest.fixture
async def hang_guard(nursery: trio.Nursery, autojump_clock: trio.testing.MockClock) -> None:
    """Fail a test on the autojump clock that hangs: an hour of virtual time passes
    in an instant once every task waits, and a test that hangs then fails at once."""

    async def watchdog() -> None:
        await trio.sleep(3600)
        raise AssertionError("the test hung (an hour of virtual time passed)")

    nursery.start_soon(watchdog)
