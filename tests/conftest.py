# ---------------------------------------------------------------------------------------
# Fake upstream (tests/upstream.py): a real Hypercorn server speaking the OpenAI and
# Anthropic APIs, scripted per request with `upstream.push(Reply(...), Status(503), ...)`.
# It runs in the test's nursery and is cancelled with it at the end of the test.
# ---------------------------------------------------------------------------------------
import pytest
import trio

from upstream import FakeUpstream


@pytest.fixture
async def upstream(nursery: trio.Nursery) -> FakeUpstream:
    fake = FakeUpstream()
    await nursery.start(fake.serve)
    return fake


# --- other fixtures below ---------------------------------------------------------------

from gateway_fixtures import start_gateway  # noqa: E402, F401  (the real gateway, in-process)
