"""Sans-I/O translation between the OpenAI Chat Completions and Anthropic
Messages APIs: requests, responses, streams and provider error bodies; and
between the OpenAI Responses API and Chat Completions."""

from minillm.core.translate._responses_stream import (
    ChainedStream,
    ChatToResponsesStream,
    responses_stream_error,
)
from minillm.core.translate.requests import anthropic_to_openai_request, openai_to_anthropic_request
from minillm.core.translate.responses import (
    anthropic_to_openai_response,
    openai_to_anthropic_response,
)
from minillm.core.translate.responses_api import (
    ResponsesPlan,
    chat_to_responses_response,
    responses_to_chat_request,
)
from minillm.core.translate.streams import (
    AnthropicToOpenAIStream,
    OpenAIToAnthropicStream,
    StreamTranslator,
    stream_error,
)
from minillm.core.translate.upstream_errors import stream_upstream_error, upstream_error

__all__ = [
    "AnthropicToOpenAIStream",
    "ChainedStream",
    "ChatToResponsesStream",
    "OpenAIToAnthropicStream",
    "ResponsesPlan",
    "StreamTranslator",
    "anthropic_to_openai_request",
    "anthropic_to_openai_response",
    "chat_to_responses_response",
    "openai_to_anthropic_request",
    "openai_to_anthropic_response",
    "responses_stream_error",
    "responses_to_chat_request",
    "stream_error",
    "stream_upstream_error",
    "upstream_error",
]
