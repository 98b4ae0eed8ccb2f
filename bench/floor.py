"""The floor: the bare cost of our own stack (Quart-Trio, Hypercorn trio, one httpx client).

Forwards request bodies unchanged to ``FLOOR_UPSTREAM`` and streams answers back.
``hypercorn --worker-class trio --bind 127.0.0.1:PORT 'bench.floor:create_app()'``
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import httpx
import orjson
from quart import Response, request
from quart_trio import QuartTrio

_FORWARDED = ("content-type", "authorization", "x-api-key", "anthropic-version")


def create_app() -> QuartTrio:
    app = QuartTrio("floor")
    app.config.update(RESPONSE_TIMEOUT=None, BODY_TIMEOUT=None, MAX_CONTENT_LENGTH=10 << 20)
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=1024)
    client = httpx.AsyncClient(
        base_url=os.environ.get("FLOOR_UPSTREAM", "http://127.0.0.1:9001"),
        limits=limits,
        timeout=60.0,
    )
    app.after_serving(client.aclose)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/chat/completions")
    @app.post("/v1/messages")
    async def forward() -> Response:
        body = await request.get_data()
        headers = {k: v for k in _FORWARDED if (v := request.headers.get(k))}
        upstream = client.build_request("POST", request.path, content=body, headers=headers)
        if not orjson.loads(body).get("stream"):
            r = await client.send(upstream)
            return Response(r.content, r.status_code, content_type=r.headers["content-type"])
        r = await client.send(upstream, stream=True)

        async def relay() -> AsyncIterator[bytes]:
            try:
                async for chunk in r.aiter_raw():
                    yield chunk
            finally:
                await r.aclose()

        return Response(relay(), r.status_code, content_type=r.headers["content-type"])

    return app
