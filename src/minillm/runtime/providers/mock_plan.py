"""What the offline mock answers, decided once for either API (sans-I/O).

A Chat Completions or Messages request is read into a :class:`Conversation`
(texts, offered tools, tool choice, the tool results that answer the last
assistant turn); :func:`plan` decides the whole :class:`Reply` from it.  The
rules are in the docstring of :mod:`minillm.runtime.providers.mock`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass

import orjson

from minillm.core.errors import BadRequest

__all__ = [
    "Conversation",
    "Json",
    "Reply",
    "arguments_pieces",
    "as_list",
    "as_object",
    "from_anthropic",
    "from_openai",
    "plan",
    "positive",
    "text_pieces",
    "tokens",
]

Json = dict[str, object]

_GREETING = "Hello! I am the minillm mock model. Send me a message and I will echo it."
_MAX_DELTAS = 64
_MAX_DEPTH = 8
_WORD_START = re.compile(r"(?<=\s)(?=\S)")
_SAYS_TOOL = re.compile(r"\btools?\b")
_ANTHROPIC_CHOICE = {"auto": "auto", "any": "required", "none": "none"}


@dataclass(frozen=True, slots=True)
class Conversation:
    """A chat request as the mock sees it, whatever its API."""

    texts: list[str]  # every text, for the prompt's token count
    user: str  # the last user text
    tools: Json  # function name -> parameters schema, in offered order
    choice: str  # "auto", "none", "required" or the name of a tool
    results: list[tuple[str, str]]  # (tool name, output) answering the last assistant turn
    turns: int
    limit: int | None  # max tokens of the reply


@dataclass(frozen=True, slots=True)
class Reply:
    """The whole reply: a text or one tool call, why it finished, token counts."""

    text: str | None
    call: tuple[str, str, str] | None  # id digest, function name, JSON arguments
    finish_reason: str  # "stop", "length" or "tool_calls"
    prompt_tokens: int
    completion_tokens: int


def as_object(value: object) -> Json:
    return value if isinstance(value, dict) else {}


def as_list(value: object) -> list[object]:
    return value if isinstance(value, list) else []


def _text(content: object) -> str:
    """The text of a ``content``: a string or a list of parts with ``text``."""
    if isinstance(content, str):
        return content
    return " ".join(t for p in as_list(content) if isinstance(t := as_object(p).get("text"), str))


def tokens(text: str) -> int:
    return max(1, round(len(text.split()) * 4 / 3))


def positive(body: Json, key: str, default: int | None, most: int = 1 << 30) -> int | None:
    value = body.get(key, default)
    if value is None or (type(value) is int and 1 <= value <= most):
        return value
    raise BadRequest(f"'{key}' must be an integer from 1 to {most}")


def _messages(body: Json) -> list[Json]:
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw or not all(isinstance(m, dict) for m in raw):
        raise BadRequest("'messages' must be a non-empty array of message objects")
    return raw


def _results_of_last_turn(
    turns: list[tuple[str, list[tuple[str, str]]]], names: dict[str, str]
) -> list[tuple[str, str]]:
    """The (tool name, output) pairs sent after the last assistant turn."""
    results: list[tuple[str, str]] = []
    for role, outputs in reversed(turns):
        if role == "assistant":
            break
        results[:0] = [(names.get(call_id, "tool"), output) for call_id, output in outputs]
    return results


def from_openai(body: Json) -> Conversation:
    """A Chat Completions request."""
    messages = _messages(body)
    texts: list[str] = []
    users: list[str] = []
    names: dict[str, str] = {}  # tool call id -> function name
    turns: list[tuple[str, list[tuple[str, str]]]] = []
    for message in messages:
        role, text = message.get("role"), _text(message.get("content"))
        texts.append(text)
        for call in map(as_object, as_list(message.get("tool_calls"))):
            function = as_object(call.get("function"))
            texts.append(_text(function.get("arguments")))
            names[str(call.get("id"))] = str(function.get("name"))
        if role == "user":
            users.append(text)
        outputs = [(str(message.get("tool_call_id")), text)] if role == "tool" else []
        if role == "tool" and isinstance(name := message.get("name"), str):
            names.setdefault(str(message.get("tool_call_id")), name)
        turns.append((str(role), outputs))
    tools: Json = {}
    for tool in as_list(body.get("tools")):
        function = as_object(as_object(tool).get("function"))
        if isinstance(name := function.get("name"), str):
            tools[name] = function.get("parameters")
    choice = body.get("tool_choice", "auto")
    if isinstance(choice, dict):
        choice = as_object(choice.get("function")).get("name")
        if not isinstance(choice, str) or choice not in tools:
            raise BadRequest(f"tool_choice names a function not in 'tools': {choice!r}")
    limit = positive(body, "max_completion_tokens", None) or positive(body, "max_tokens", None)
    results = _results_of_last_turn(turns, names)
    user = users[-1] if users else ""
    return Conversation(texts, user, tools, str(choice), results, len(messages), limit)


def from_anthropic(body: Json, *, counting: bool = False) -> Conversation:
    """A Messages request (``counting``: for count_tokens, which needs no max_tokens)."""
    messages = _messages(body)
    texts = [_text(body.get("system"))]
    users: list[str] = []
    names: dict[str, str] = {}
    turns: list[tuple[str, list[tuple[str, str]]]] = []
    for message in messages:
        role, content = message.get("role"), message.get("content")
        blocks = as_list(content) if isinstance(content, list) else [{"text": content}]
        text = " ".join(t for b in blocks if isinstance(t := as_object(b).get("text"), str))
        outputs = []
        for block in map(as_object, blocks):
            if block.get("type") == "tool_use":
                names[str(block.get("id"))] = str(block.get("name"))
                texts.append(orjson.dumps(block.get("input")).decode())
            elif block.get("type") == "tool_result":
                outputs.append((str(block.get("tool_use_id")), _text(block.get("content"))))
        texts += [text, *(output for _, output in outputs)]
        if role == "user" and (text or not outputs):
            users.append(text)
        turns.append((str(role), outputs))
    tools: Json = {}
    for tool in map(as_object, as_list(body.get("tools"))):
        if isinstance(name := tool.get("name"), str) and "input_schema" in tool:
            tools[name] = tool["input_schema"]
    asked = as_object(body.get("tool_choice")) or {"type": "auto"}
    choice = _ANTHROPIC_CHOICE.get(str(asked.get("type")), asked.get("name"))
    if not isinstance(choice, str) or choice not in (*_ANTHROPIC_CHOICE.values(), *tools):
        raise BadRequest(f"tool_choice: no tool named {choice!r} in 'tools'")
    if "max_tokens" not in body and not counting:
        raise BadRequest("max_tokens: Field required")
    limit = positive(body, "max_tokens", None)
    results = _results_of_last_turn(turns, names)
    user = users[-1] if users else ""
    return Conversation(texts, user, tools, choice, results, len(messages), limit)


def plan(conversation: Conversation) -> Reply:
    """Decide the whole reply: a tool call, a summary of tool results, or an echo."""
    prompt = tokens(" ".join(conversation.texts))
    if conversation.results:  # answer the tool results in text: agent loops end
        text = "; ".join(f"Tool {name} returned: {out}" for name, out in conversation.results)
    elif call := _choose_tool(conversation):
        return Reply(None, call, "tool_calls", prompt, tokens(f"{call[1]} {call[2]}"))
    else:
        user = conversation.user
        text = f"You said: {user}" if user.strip() else _GREETING
    finish = "stop"
    limit = conversation.limit
    if limit is not None and len(words := text.split()) > limit:
        text, finish = " ".join(words[:limit]), "length"
    return Reply(text, None, finish, prompt, tokens(text))


def _choose_tool(conversation: Conversation) -> tuple[str, str, str] | None:
    tools, choice = conversation.tools, conversation.choice
    if not tools or choice == "none":
        return None
    said = conversation.user.lower()
    mentioned = [n for n in tools if re.search(rf"(?<!\w){re.escape(n.lower())}(?!\w)", said)]
    if choice in tools:
        name = choice
    elif choice == "required" or mentioned or _SAYS_TOOL.search(said):
        name = (mentioned or list(tools))[0]
    else:
        return None
    schema = {**as_object(tools[name]), "type": "object"}  # arguments are always an object
    args = orjson.dumps(_fill(schema, conversation.user or "mock", 0)).decode()
    digest = hashlib.blake2b(f"{conversation.turns}:{name}:{args}".encode(), digest_size=12)
    return digest.hexdigest(), name, args


def _fill(schema: object, text: str, depth: int) -> object:
    """A value matching the JSON schema ``schema``, with strings set to ``text``."""
    s = as_object(schema)
    if enum := as_list(s.get("enum")):
        return enum[0]
    if "const" in s:
        return s["const"]
    if options := as_list(s.get("anyOf")) or as_list(s.get("oneOf")) or as_list(s.get("allOf")):
        return _fill(options[0], text, depth)
    kind = s.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and "properties" in s):
        props = as_object(s.get("properties")) if depth < _MAX_DEPTH else {}
        required = s.get("required")
        wanted = required if isinstance(required, list) else list(props)
        names = [n for n in wanted if isinstance(n, str) and n in props]
        return {n: _fill(props[n], text, depth + 1) for n in names}
    if kind == "array":
        return [_fill(s.get("items"), text, depth + 1)] if depth < _MAX_DEPTH else []
    if kind in ("integer", "number", "boolean"):
        return True if kind == "boolean" else 1
    return None if kind == "null" else text


def text_pieces(text: str) -> Iterator[str]:
    """``text`` word by word, grouped into at most 64 pieces."""
    words = [w for w in _WORD_START.split(text) if w]
    step = max(1, -(-len(words) // _MAX_DELTAS))
    return ("".join(words[i : i + step]) for i in range(0, len(words), step))


def arguments_pieces(args: str) -> Iterator[str]:
    """JSON arguments in at least 2 fragments (they are at least ``{}``)."""
    step = max(1, -(-len(args) // 4))
    return (args[i : i + step] for i in range(0, len(args), step))
