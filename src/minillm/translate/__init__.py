"""Sans-I/O translation between the OpenAI Chat Completions and Anthropic
Messages APIs: requests, responses, streams and provider error bodies."""

from minillm.translate.requests import anthropic_to_openai_request, openai_to_anthropic_request
from minillm.translate.responses import anthropic_to_openai_response, openai_to_anthropic_response
from minillm.translate.streams import (
    AnthropicToOpenAIStream,
    OpenAIToAnthropicStream,
    StreamTranslator,
    stream_error,
)
from minillm.translate.upstream_errors import stream_upstream_error, upstream_error

__all__ = [
    "AnthropicToOpenAIStream",
    "OpenAIToAnthropicStream",
    "StreamTranslator",
    "anthropic_to_openai_request",
    "anthropic_to_openai_response",
    "openai_to_anthropic_request",
    "openai_to_anthropic_response",
    "stream_error",
    "stream_upstream_error",
    "upstream_error",
]
