"""The OpenAI Responses API, translated to and from Chat Completions (sans-I/O).

A Responses request becomes a Chat Completions request
(:func:`responses_to_chat_request`), sent as it is to an OpenAI-compatible
provider without the Responses API, or through
:func:`~minillm.core.translate.openai_to_anthropic_request` to an Anthropic-format
one.  The reply comes back the same way: a ``chat.completion`` (perhaps made
by :func:`~minillm.core.translate.anthropic_to_openai_response`) becomes a
``response`` object (:func:`chat_to_responses_response`); a chunk stream
becomes the Responses event stream
(:class:`~minillm.core.translate.ChatToResponsesStream`, chained after
:class:`~minillm.core.translate.AnthropicToOpenAIStream` with
:class:`~minillm.core.translate.ChainedStream` for Anthropic providers).

Requests (:func:`responses_to_chat_request`)
    * ``instructions`` and ``system`` / ``developer`` input messages -> system
      messages, in place (Codex sends its rules as developer messages);
      ``input`` as a string -> one user message;
    * message items: ``input_text`` / ``output_text`` (and assistant
      ``refusal``) parts -> text, ``input_image`` (URL or data URL) ->
      ``image_url``; ``function_call`` / ``custom_tool_call`` items -> assistant
      ``tool_calls`` (consecutive calls, and a call right after assistant text,
      form one assistant message); ``function_call_output`` /
      ``custom_tool_call_output`` -> ``tool`` messages; ``reasoning`` items
      (their encrypted content cannot cross) and built-in tool call items
      (``web_search_call``, ...) are dropped;
    * ``function`` tools -> chat function tools; ``custom`` tools (Codex's
      freeform ``apply_patch``) -> a function with one string parameter
      ``input`` (the grammar, if any, in its description); ``namespace`` tools
      -> one function per inner tool named ``<namespace>__<name>``; a name that
      does not fit ``^[a-zA-Z0-9_-]{1,64}$`` (or collides) gets a readable
      prefix and a hash.  Calls are mapped back to the names (and
      ``namespace``) the client declared;
    * built-in tools (``web_search``, ``file_search``, ``code_interpreter``,
      ``computer_use_preview``, ``image_generation``, ``local_shell``, ``mcp``,
      ...) are dropped and listed in :attr:`ResponsesPlan.dropped_tools`; a
      ``tool_choice`` forcing one is a 400;
    * ``tool_choice`` auto/none/required/function/custom, ``parallel_tool_calls``
      (both only when function tools remain); ``max_output_tokens`` ->
      ``max_tokens`` (absent: left to the target's default); ``temperature``,
      ``top_p``; for a reasoning model ``max_completion_tokens`` instead, no
      sampling parameters, and ``reasoning.effort`` -> ``reasoning_effort``;
      ``text.format`` json_schema / json_object -> ``response_format``;
      ``stream`` -> ``stream`` with ``stream_options.include_usage``;
    * refused (400 naming the field): ``previous_response_id``,
      ``conversation``, ``prompt`` and ``item_reference`` items (they need
      stored responses), ``background: true``, ``top_logprobs``,
      ``allowed_tools`` tool choices, ``input_file`` parts;
    * dropped as harmless: ``store``, ``include``, ``reasoning`` (but its effort),
      ``truncation``, ``prompt_cache_key``, ``client_metadata``, ``metadata``,
      ``service_tier``, ``user``, ``safety_identifier``, ``stream_options``,
      ``text.verbosity``, ``max_tool_calls`` and unknown keys.

Replies (:func:`chat_to_responses_response`)
    a ``response`` with the client's ``model`` and the request's echo fields;
    ``output``: a ``message`` item with one ``output_text`` part (content or
    refusal) when there is text, then one ``function_call`` item per tool call
    (``custom_tool_call`` with ``input`` for custom tools); ``finish_reason``
    length -> ``status: incomplete`` with reason ``max_output_tokens``,
    content_filter -> incomplete with reason ``content_filter``, anything else
    completed; ``usage`` with ``cached_tokens`` and ``reasoning_tokens``.
"""

from __future__ import annotations

import time
from typing import Any

from minillm.core.errors import UpstreamProtocolError
from minillm.core.translate._common import dumps_arguments, message_text
from minillm.core.translate._responses_common import (
    ResponsesPlan,
    call_item,
    message_id,
    message_item,
    response_id,
    response_object,
    responses_usage,
)
from minillm.core.translate._responses_request import responses_to_chat_request

__all__ = ["ResponsesPlan", "chat_to_responses_response", "responses_to_chat_request"]


def chat_to_responses_response(chat: dict[str, Any], plan: ResponsesPlan) -> dict[str, Any]:
    """The Responses ``response`` object for a ``chat.completion`` body.

    Raises :class:`~minillm.core.errors.UpstreamProtocolError` when ``chat`` is not
    shaped like a chat completion.
    """
    choices = chat.get("choices") if isinstance(chat, dict) else None
    first = choices[0] if isinstance(choices, list) and choices else None
    if not isinstance(first, dict) or not isinstance(message := first.get("message"), dict):
        raise UpstreamProtocolError("Provider response has no choices[0].message")
    resp_id = response_id(chat.get("id"))
    output: list[dict[str, Any]] = []
    text = message_text(message.get("content")) or message_text(message.get("refusal"))
    if text:
        output.append(message_item(message_id(resp_id), text))
    calls = message.get("tool_calls")
    for i, call in enumerate(calls if isinstance(calls, list) else []):
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict):
            continue
        arguments = fn.get("arguments")
        if not isinstance(arguments, str) or not arguments:  # some servers send an object
            arguments = dumps_arguments(arguments or {})
        call_id = call.get("id") or f"call_{i}"
        output.append(call_item(plan, str(fn.get("name") or ""), str(call_id), arguments))
    created = chat.get("created")
    return response_object(
        plan,
        resp_id,
        created if isinstance(created, int) else int(time.time()),
        output,
        finish=first.get("finish_reason") or "stop",
        usage=responses_usage(chat.get("usage")),
    )
