"""Anthropic Messages ``messages`` -> OpenAI Chat Completions ``messages``.

One pass over the turns, in order:

* ``system`` turns (Claude Code 2.x sends them) -> ``system`` messages at the
  same position, text blocks joined with a blank line;
* ``user`` turns: each ``tool_result`` -> a ``role: tool`` message placed where
  the turn was, the turn's other blocks following as one user message (a lone
  text block becomes a plain string).  Blocks: ``text``; ``image`` (base64 ->
  ``data:`` URL, url -> URL); ``document`` (plain text or content -> text,
  base64 PDF -> a ``file`` part); ``search_result`` -> text naming its source;
* a tool result's content: text (``"Error: "`` prefixed when ``is_error``),
  ``search_result`` / text ``document`` -> text, ``tool_reference`` -> a line
  naming the loaded tool; its images move to the user message that follows the
  turn's tool messages (OpenAI tool messages carry text only);
* ``assistant`` turns: text joined -> ``content`` (``None`` when there is none
  but tool calls), ``tool_use`` -> ``tool_calls`` (``arguments`` = JSON of
  ``input``); ``thinking`` / ``redacted_thinking`` are dropped (their
  signatures only mean something to Anthropic);
* ``cache_control`` and ``citations`` on any block are dropped;
* refused (400 naming the block): server-tool blocks (``server_tool_use``,
  ``web_search_tool_result``, ...), ``container_upload``, ``file`` sources and
  PDF URLs (Chat Completions takes neither).

:class:`Conversation` also collects the tools named by ``tool_reference``
blocks, so deferred tools (``defer_loading``) loaded by a tool search are sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from minillm.core.translate._common import bad, dumps_arguments, text_of

__all__ = ["Conversation"]

Message = dict[str, Any]
Part = dict[str, Any]


@dataclass(slots=True)
class Conversation:
    """The translated messages and the tool names that ``tool_reference`` blocks loaded."""

    messages: list[Message] = field(default_factory=list)
    referenced_tools: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, system: object, messages: object) -> Conversation:
        conv = cls()
        if system_text := text_of(system or "", "system"):
            conv.messages.append({"role": "system", "content": system_text})
        if not isinstance(messages, list) or not messages:
            raise bad("messages", "must be a non-empty array")
        for i, msg in enumerate(messages):
            conv._add(msg, f"messages[{i}]")
        return conv

    def _add(self, msg: object, path: str) -> None:
        if not isinstance(msg, dict):
            raise bad(path, "must be an object")
        role, content = msg.get("role"), msg.get("content")
        if role == "system":
            self.messages.append({"role": "system", "content": text_of(content, f"{path}.content")})
            return
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        elif not isinstance(content, list):
            raise bad(f"{path}.content", "must be a string or an array of content blocks")
        if role == "user":
            self._user(content, f"{path}.content")
        elif role == "assistant":
            self.messages.append(_assistant(content, f"{path}.content"))
        else:
            raise bad(f"{path}.role", "must be 'user', 'assistant' or 'system'")

    def _user(self, blocks: list[Any], path: str) -> None:
        """Tool messages for the turn's tool results, then one user message."""
        parts: list[Part] = []
        moved: list[Part] = []  # images out of tool results
        for i, block in enumerate(blocks):
            where = f"{path}[{i}]"
            if _block(block, where).get("type") == "tool_result":
                self.messages.append(self._tool_message(block, where, moved))
            else:
                parts.append(_user_part(block, where))
        parts = moved + parts
        if len(parts) == 1 and parts[0]["type"] == "text":
            self.messages.append({"role": "user", "content": parts[0]["text"]})
        elif parts:
            self.messages.append({"role": "user", "content": parts})

    def _tool_message(self, block: dict[str, Any], path: str, images: list[Part]) -> Message:
        call_id = block.get("tool_use_id")
        if not isinstance(call_id, str):
            raise bad(f"{path}.tool_use_id", "must be a string")
        content = block.get("content") or ""
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        elif not isinstance(content, list):
            raise bad(f"{path}.content", "must be a string or an array of content blocks")
        texts: list[str] = []
        for i, item in enumerate(content):
            where = f"{path}.content[{i}]"
            kind = _block(item, where).get("type")
            if kind == "tool_reference" and isinstance(name := item.get("tool_name"), str):
                self.referenced_tools.add(name)
                texts.append(f"Tool loaded: {name}")
                continue
            part = _user_part(item, where)
            if part["type"] == "text":
                texts.append(part["text"])
            elif kind == "image":
                images.append(part)
            else:
                raise bad(f"{where}.type", f"{kind!r} is not supported inside a tool result")
        text = "\n\n".join(texts)
        if block.get("is_error"):
            text = f"Error: {text}"
        return {"role": "tool", "tool_call_id": call_id, "content": text}


def _user_part(raw: object, path: str) -> Part:
    """One user content block as an OpenAI content part."""
    block = _block(raw, path)
    kind = block.get("type")
    if kind == "text":
        return {"type": "text", "text": _text(block, path)}
    if kind == "image":
        url = _image_url(block.get("source"), f"{path}.source")
        return {"type": "image_url", "image_url": {"url": url}}
    if kind == "document":
        return _document(block, path)
    if kind == "search_result":
        head = " ".join(str(block[k]) for k in ("title", "source") if block.get(k))
        body = text_of(block.get("content") or "", f"{path}.content")
        return {"type": "text", "text": f"{head}\n\n{body}"}
    raise bad(f"{path}.type", f"unsupported content block type {kind!r}")


def _document(block: dict[str, Any], path: str) -> Part:
    source = block.get("source")
    if not isinstance(source, dict):
        raise bad(f"{path}.source", "must be an object")
    kind, data, title = source.get("type"), source.get("data"), block.get("title")
    title = title if isinstance(title, str) else ""
    head = f"{title}\n\n" if title else ""
    if kind == "text" and isinstance(data, str):
        return {"type": "text", "text": head + data}
    if kind == "content":
        return {"type": "text", "text": head + text_of(source.get("content"), f"{path}.source")}
    if kind == "base64" and isinstance(data, str):
        media = source.get("media_type") or "application/pdf"
        file = {"filename": title or "document.pdf", "file_data": f"data:{media};base64,{data}"}
        return {"type": "file", "file": file}
    raise bad(f"{path}.source", "must be a text, content or base64 document source")


def _assistant(blocks: list[Any], path: str) -> Message:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for i, block in enumerate(blocks):
        kind = _block(block, f"{path}[{i}]").get("type")
        if kind == "text":
            texts.append(_text(block, f"{path}[{i}]"))
        elif kind == "tool_use":
            calls.append(_tool_call(block, f"{path}[{i}]"))
        elif kind not in ("thinking", "redacted_thinking"):
            raise bad(f"{path}[{i}].type", f"unsupported content block type {kind!r}")
    text = "".join(texts)
    msg: Message = {"role": "assistant", "content": text if text or not calls else None}
    if calls:
        msg["tool_calls"] = calls
    return msg


def _block(block: object, path: str) -> dict[str, Any]:
    if not isinstance(block, dict):
        raise bad(path, "must be an object")
    return block


def _text(block: dict[str, Any], path: str) -> str:
    text = block.get("text")
    if not isinstance(text, str):
        raise bad(f"{path}.text", "must be a string")
    return text


def _image_url(source: object, path: str) -> str:
    if isinstance(source, dict):
        if source.get("type") == "url" and isinstance(url := source.get("url"), str):
            return url
        media, data = source.get("media_type"), source.get("data")
        if source.get("type") == "base64" and isinstance(media, str) and isinstance(data, str):
            return f"data:{media};base64,{data}"
    raise bad(path, "must be a base64 or url image source")


def _tool_call(block: dict[str, Any], path: str) -> dict[str, Any]:
    call_id, name, args = block.get("id"), block.get("name"), block.get("input", {})
    if not isinstance(call_id, str) or not isinstance(name, str):
        raise bad(path, "tool_use blocks need a string id and name")
    if not isinstance(args, dict):
        raise bad(f"{path}.input", "must be an object")
    fn = {"name": name, "arguments": dumps_arguments(args)}
    return {"id": call_id, "type": "function", "function": fn}
