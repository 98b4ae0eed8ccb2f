"""How one client call crosses to one provider, and how its answer comes back.

Sans-I/O.  The client's API and the provider's decide one of three ways:

* **the same API** (or an operation that is never translated): the body goes
  as it is with the target's model; the answer comes back untouched
  (:func:`same_api`).  A Responses call is the same API for an OpenAI-format
  provider that serves ``/responses`` (``ProviderConfig.responses``);
* **Chat Completions <-> Messages**: request, reply and stream translated
  (:func:`chat_via_messages`, :func:`messages_via_chat`);
* **Responses through Chat Completions**: the Responses request becomes a Chat
  Completions one (:func:`~minillm.core.translate.responses_to_chat_request`), sent
  as it is to an OpenAI-compatible provider without the Responses API, or
  translated once more for a Messages provider; the answer takes the same
  steps back (:func:`responses_via_chat`, :func:`responses_via_messages`).

Which crossing a call takes is its dialect's choice (:mod:`minillm.core.dialects`).
The crossings raise :class:`~minillm.core.errors.BadRequest` for what cannot
cross (from the translators, or JSON nested too deeply to serialise).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import orjson

from minillm.core.config import ProviderConfig
from minillm.core.errors import BadRequest
from minillm.core.translate import (
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
from minillm.core.translate.passthrough import PassthroughStream, ResponsesPassthroughStream

__all__ = [
    "Call",
    "ClientAPI",
    "Crossing",
    "Exchange",
    "Operation",
    "chat_via_messages",
    "messages_via_chat",
    "responses_via_chat",
    "responses_via_messages",
    "same_api",
]

Json = dict[str, Any]
ClientAPI = Literal["openai", "anthropic", "responses"]
Operation = Literal["chat", "responses", "embeddings", "models", "count_tokens"]


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


Crossing = Callable[[Call, ProviderConfig, str, int], Exchange]
"""``(call, provider, model asked of it, default max_tokens)`` -> the call for that provider."""


def same_api(call: Call, provider: ProviderConfig, model: str, default_max_tokens: int) -> Exchange:
    """The body as it is with ``model``; the answer untouched."""
    body = {**call.body, "model": model}
    drop_usage = False
    if call.stream and call.client_format == "openai":
        # the usage chunk, for accounting; not forwarded to a client that did not ask for it
        asked = body.get("stream_options")
        options = asked if isinstance(asked, dict) else {}
        drop_usage = options.get("include_usage") is not True
        body["stream_options"] = {**options, "include_usage": True}
    stream: Callable[[], StreamTranslator] = ResponsesPassthroughStream
    if call.client_format != "responses":
        stream = partial(PassthroughStream, drop_usage_chunk=drop_usage, fmt=call.client_format)
    return Exchange(call.operation, _encode(body), None, stream)


def chat_via_messages(
    call: Call, provider: ProviderConfig, model: str, default_max_tokens: int
) -> Exchange:
    """A Chat Completions call to an Anthropic-format provider."""
    options = call.body.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    body = openai_to_anthropic_request(
        call.body, model=model, default_max_tokens=default_max_tokens
    )
    asked = str(call.body.get("model"))  # the client sees the name it asked for
    stream = partial(AnthropicToOpenAIStream, model=asked, include_usage=include_usage)
    return Exchange("chat", _encode(body), _named(anthropic_to_openai_response, asked), stream)


def messages_via_chat(
    call: Call, provider: ProviderConfig, model: str, default_max_tokens: int
) -> Exchange:
    """A Messages call to an OpenAI-format provider."""
    body = anthropic_to_openai_request(
        call.body, model=model, reasoning=provider.is_reasoning(model)
    )
    asked = str(call.body.get("model"))
    stream = partial(OpenAIToAnthropicStream, model=asked)
    return Exchange("chat", _encode(body), _named(openai_to_anthropic_response, asked), stream)


def responses_via_chat(
    call: Call, provider: ProviderConfig, model: str, default_max_tokens: int
) -> Exchange:
    """A Responses call to an OpenAI-compatible provider without the Responses API."""
    plan = responses_to_chat_request(call.body, model=model, reasoning=provider.is_reasoning(model))
    reply = partial(chat_to_responses_response, plan=plan)
    stream = partial(ChatToResponsesStream, plan)
    return Exchange("chat", _encode(plan.chat), reply, stream, plan.dropped_tools)


def responses_via_messages(
    call: Call, provider: ProviderConfig, model: str, default_max_tokens: int
) -> Exchange:
    """A Responses call to an Anthropic-format provider: through Chat Completions."""
    plan = responses_to_chat_request(call.body, model=model)
    body = openai_to_anthropic_request(
        plan.chat, model=model, default_max_tokens=default_max_tokens
    )
    reply = partial(_anthropic_to_responses, plan=plan)
    stream = partial(_anthropic_to_responses_stream, plan)
    return Exchange("chat", _encode(body), reply, stream, plan.dropped_tools)


def _named(translate: Callable[[Json], Json], asked: str) -> Callable[[Json], Json]:
    """``translate`` with the model the client asked for in the answer, as in its streams."""
    return lambda answer: {**translate(answer), "model": asked}


def _encode(body: Json) -> bytes:
    """The provider's request body; JSON deeper than orjson writes (~255 levels) is a 400."""
    try:
        return orjson.dumps(body)
    except orjson.JSONEncodeError:
        raise BadRequest("Request JSON is nested too deeply") from None


def _anthropic_to_responses(body: Json, plan: ResponsesPlan) -> Json:
    return chat_to_responses_response(anthropic_to_openai_response(body), plan)


def _anthropic_to_responses_stream(plan: ResponsesPlan) -> StreamTranslator:
    model = str(plan.request.get("model"))
    return ChainedStream(
        AnthropicToOpenAIStream(model=model, include_usage=True), ChatToResponsesStream(plan)
    )
