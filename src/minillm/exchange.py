"""How one client call crosses to one provider, and how its answer comes back.

Sans-I/O.  The client's API and the provider's decide one of three ways:

* **the same API** (or an operation that is never translated): the body goes
  as it is with the target's model; the answer comes back untouched.  A
  Responses call is the same API for an OpenAI-format provider that serves
  ``/responses`` (``ProviderConfig.responses``);
* **Chat Completions <-> Messages**: request, reply and stream translated;
* **Responses through Chat Completions**: the Responses request becomes a Chat
  Completions one (:func:`~minillm.translate.responses_to_chat_request`), sent
  as it is to an OpenAI-compatible provider without the Responses API, or
  translated once more for a Messages provider; the answer takes the same
  steps back.

:func:`exchange` raises :class:`~minillm.errors.BadRequest` for what cannot
cross (from the translators, or JSON nested too deeply to serialise).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import orjson

from minillm.config import ProviderConfig
from minillm.dialects import ClientAPI
from minillm.errors import BadRequest
from minillm.providers.http import Operation
from minillm.translate import (
    AnthropicToOpenAIStream,
    ChainedStream,
    ChatToResponsesStream,
    OpenAIToAnthropicStream,
    ResponsesPlan,
    StreamTranslator,
    anthropic_to_openai_request,
    anthropic_to_openai_response,
    chat_to_responses_response,
    openai_to_anthropic_request,
    openai_to_anthropic_response,
    responses_to_chat_request,
)
from minillm.translate.passthrough import PassthroughStream

__all__ = ["Call", "Exchange", "exchange"]

Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Call:
    """One client request: the API it speaks, the operation and its JSON body."""

    client_format: ClientAPI
    operation: Operation
    body: dict[str, Any]
    headers: Mapping[str, str]

    def __post_init__(self) -> None:
        # every API's ``stream`` is a boolean; a truthy string would stream upstream
        # while the gateway expects JSON
        if not isinstance(self.body.get("stream"), bool | None):
            raise BadRequest("'stream' must be a boolean")

    @property
    def stream(self) -> bool:
        return self.operation in ("chat", "responses") and self.body.get("stream") is True


@dataclass(frozen=True, slots=True)
class Exchange:
    """One call, ready for one provider."""

    operation: Operation
    """The provider's operation (a Responses call may become a chat one)."""
    body: bytes
    reply: Callable[[Json], Json] | None
    """The provider's JSON answer -> the client's; ``None`` when it already is."""
    stream: Callable[[], StreamTranslator]
    """A new translator for the provider's stream."""
    dropped_tools: tuple[str, ...] = ()
    """Built-in tools the provider cannot run, left out of the request."""


def exchange(call: Call, provider: ProviderConfig, model: str, default_max_tokens: int) -> Exchange:
    """``call`` for ``provider``, asking for ``model``."""
    if provider.serves(call.client_format) or call.operation not in ("chat", "responses"):
        return _same_api(call, model)
    if call.client_format == "responses":
        return _responses_via_chat(call, provider, model, default_max_tokens)
    asked = str(call.body.get("model"))  # the client sees the name it asked for
    stream: Callable[[], StreamTranslator]
    if provider.format == "anthropic":
        options = call.body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        body = openai_to_anthropic_request(
            call.body, model=model, default_max_tokens=default_max_tokens
        )
        stream = partial(AnthropicToOpenAIStream, model=asked, include_usage=include_usage)
        return Exchange("chat", _encode(body), anthropic_to_openai_response, stream)
    body = anthropic_to_openai_request(
        call.body, model=model, reasoning=provider.is_reasoning(model)
    )
    stream = partial(OpenAIToAnthropicStream, model=asked)
    return Exchange("chat", _encode(body), openai_to_anthropic_response, stream)


def _encode(body: Json) -> bytes:
    """The provider's request body; JSON deeper than orjson writes (~255 levels) is a 400."""
    try:
        return orjson.dumps(body)
    except orjson.JSONEncodeError:
        raise BadRequest("Request JSON is nested too deeply") from None


def _same_api(call: Call, model: str) -> Exchange:
    body = {**call.body, "model": model}
    drop_usage = False
    if call.stream and call.client_format == "openai":
        # the usage chunk, for accounting; not forwarded to a client that did not ask for it
        asked = body.get("stream_options")
        options = asked if isinstance(asked, dict) else {}
        drop_usage = options.get("include_usage") is not True
        body["stream_options"] = {**options, "include_usage": True}
    fmt = None if call.client_format == "responses" else call.client_format
    stream = partial(PassthroughStream, drop_usage_chunk=drop_usage, fmt=fmt)
    return Exchange(call.operation, _encode(body), None, stream)


def _responses_via_chat(
    call: Call, provider: ProviderConfig, model: str, default_max_tokens: int
) -> Exchange:
    reasoning = provider.format == "openai" and provider.is_reasoning(model)
    plan = responses_to_chat_request(call.body, model=model, reasoning=reasoning)
    if provider.format == "openai":
        body, reply = plan.chat, partial(chat_to_responses_response, plan=plan)
        stream: Callable[[], StreamTranslator] = partial(ChatToResponsesStream, plan)
    else:
        body = openai_to_anthropic_request(
            plan.chat, model=model, default_max_tokens=default_max_tokens
        )
        reply = partial(_anthropic_to_responses, plan=plan)
        stream = partial(_anthropic_to_responses_stream, plan)
    return Exchange("chat", _encode(body), reply, stream, plan.dropped_tools)


def _anthropic_to_responses(body: Json, plan: ResponsesPlan) -> Json:
    return chat_to_responses_response(anthropic_to_openai_response(body), plan)


def _anthropic_to_responses_stream(plan: ResponsesPlan) -> StreamTranslator:
    model = str(plan.request.get("model"))
    return ChainedStream(
        AnthropicToOpenAIStream(model=model, include_usage=True), ChatToResponsesStream(plan)
    )
