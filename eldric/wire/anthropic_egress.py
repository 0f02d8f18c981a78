"""The egress: OpenAI chat completions <-> Anthropic Messages API, pure, no I/O.

The cloud role sends ``to_anthropic(body)`` to ``POST /v1/messages`` (headers ``x-api-key``
and ``anthropic-version: ANTHROPIC_VERSION``) and turns the reply back into OpenAI shapes:
``from_anthropic`` for a JSON reply, ``anthropic_egress_stream.StreamTranslator`` for an
SSE reply (fed one event at a time); its error replies are mapped by the adapter
(eldric/backends/native/anthropic.py: map_error), whose I/O is eldric.backends.call's.
Shapes follow the Messages API reference: https://docs.anthropic.com/en/api/messages
and /en/docs/build-with-claude/streaming.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec

from eldric.errors import BadRequest
from eldric.wire.anthropic_shared import FINISH, openai_usage, prompt_tokens
from eldric.wire.openai_reply import Unreadable, json_object

DEFAULT_MAX_TOKENS = 4096

_IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
_encode = msgspec.json.encode


# ---------------------------------------------------------------- request: OpenAI -> Anthropic

def to_anthropic(body: dict, *, model: str, default_max_tokens: int = DEFAULT_MAX_TOKENS) -> dict:
    """OpenAI chat request (already JSON-decoded) -> Anthropic Messages request body."""
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    n = body.get("n")
    if n is not None and n != 1:
        raise BadRequest("n > 1 is not supported by this model's backend", param="n")
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise BadRequest("messages must be a non-empty array", param="messages")
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type", "text") != "text":
        raise BadRequest(f"response_format {fmt.get('type')!r} is not supported by this "
                         "model's backend", param="response_format")
    system, turns = _turns(msgs)
    out: dict[str, Any] = {"model": model, "max_tokens": _max_tokens(body, default_max_tokens)}
    if system:
        out["system"] = "\n\n".join(system)
    out["messages"] = turns
    _sampling(body, out)
    if body.get("stream"):
        out["stream"] = True
    user = body.get("user") or body.get("safety_identifier")
    if isinstance(user, str) and user:
        out["metadata"] = {"user_id": user}
    _tools(body, out)
    return out


def _turns(msgs: list) -> tuple[list[str], list[dict]]:
    """OpenAI messages -> (system texts, Anthropic turns): system and developer messages
    become the system prompt, tool results user turns, same-role neighbours one turn."""
    system: list[str] = []
    turns: list[dict] = []  # {"role", "content": [blocks]}
    for i, m in enumerate(msgs):
        if not isinstance(m, dict):
            raise BadRequest("each message must be an object", param=f"messages[{i}]")
        role = m.get("role")
        if role in ("system", "developer"):
            text = "\n\n".join(b["text"] for b in _content(m.get("content"), i, text_only=True))
            if text:
                system.append(text)
            continue
        if role == "user":
            role, blocks = "user", _content(m.get("content"), i)
        elif role == "assistant":
            blocks = _content(m.get("content"), i, text_only=True)
            blocks += _tool_uses(m.get("tool_calls"), i)
        elif role == "tool":
            role, blocks = "user", [_tool_result(m, i)]
        else:
            raise BadRequest(f"unsupported message role {role!r}", param=f"messages[{i}].role")
        if not blocks:
            continue  # Anthropic rejects empty content; an empty turn carries nothing
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"] += blocks
        else:
            turns.append({"role": role, "content": blocks})
    if not turns:
        raise BadRequest("messages hold no user or assistant content", param="messages")
    for t in turns:
        # In a user turn, tool_result blocks must come first; text may follow them.
        t["content"].sort(key=lambda b: b["type"] != "tool_result")
        if len(t["content"]) == 1 and t["content"][0]["type"] == "text":
            t["content"] = t["content"][0]["text"]
    return system, turns


def _sampling(body: dict, out: dict) -> None:
    """stop, temperature (Anthropic's range is 0..1) and top_p."""
    stop = body.get("stop")
    if isinstance(stop, str):
        out["stop_sequences"] = [stop]
    elif isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        if stop:
            out["stop_sequences"] = stop
    elif stop is not None:
        raise BadRequest("stop must be a string or an array of strings", param="stop")
    temperature = body.get("temperature")
    if temperature is not None:
        if not isinstance(temperature, (int, float)) or not 0 <= temperature <= 1:
            raise BadRequest("temperature must be between 0 and 1 for this model's backend",
                             param="temperature")
        out["temperature"] = temperature
    if body.get("top_p") is not None:
        out["top_p"] = body["top_p"]


def _max_tokens(body: dict, default: int) -> int:
    for key in ("max_completion_tokens", "max_tokens"):
        v = body.get(key)
        if v is not None:
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise BadRequest(f"{key} must be a positive integer", param=key)
            return v
    return default


def _content(content: Any, i: int, *, text_only: bool = False) -> list[dict]:
    """A message's content (string or parts) -> Anthropic blocks, empty text dropped."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise BadRequest("content must be a string or an array of parts",
                         param=f"messages[{i}].content")
    blocks = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("text", "refusal") and isinstance(part.get(kind), str):
            if part[kind]:
                blocks.append({"type": "text", "text": part[kind]})
        elif kind == "image_url" and not text_only:
            blocks.append(_image(part.get("image_url"), f"messages[{i}].content[{j}]"))
        else:
            raise BadRequest(f"unsupported content part {kind!r} for this model's backend",
                             param=f"messages[{i}].content[{j}]")
    return blocks


def _image(image_url: Any, param: str) -> dict:
    url = image_url.get("url") if isinstance(image_url, dict) else image_url
    if not isinstance(url, str):
        raise BadRequest("image_url.url must be a string", param=param)
    if url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    if url.startswith("data:"):
        head, sep, data = url[5:].partition(",")
        media_type, _, encoding = head.partition(";")
        if not sep or encoding != "base64":
            raise BadRequest("an image data: URL must be base64-encoded", param=param)
        if media_type not in _IMAGE_TYPES:
            raise BadRequest(f"image type {media_type!r} is not supported (use one of "
                             f"{', '.join(_IMAGE_TYPES)})", param=param)
        return {"type": "image",
                "source": {"type": "base64", "media_type": media_type, "data": data}}
    raise BadRequest("image_url.url must be an http(s) or data: URL", param=param)


def _tool_uses(calls: Any, i: int) -> list[dict]:
    if not calls:
        return []
    blocks = []
    for j, call in enumerate(calls):
        param = f"messages[{i}].tool_calls[{j}]"
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or call.get("type", "function") != "function":
            raise BadRequest("only function tool calls are supported", param=param)
        args = fn.get("arguments")
        try:
            tool_input = json_object(args if isinstance(args, (str, dict)) else
                                     None if args is None else _encode(args).decode())
        except Unreadable as exc:
            raise BadRequest(str(exc), param=param + ".function.arguments") from None
        if not isinstance(call.get("id"), str) or not isinstance(fn.get("name"), str):
            raise BadRequest("a tool call needs an id and a function name", param=param)
        blocks.append({"type": "tool_use", "id": call["id"], "name": fn["name"],
                       "input": tool_input})
    return blocks


def _tool_result(m: dict, i: int) -> dict:
    if not isinstance(m.get("tool_call_id"), str):
        raise BadRequest("a tool message needs a tool_call_id", param=f"messages[{i}].tool_call_id")
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": m["tool_call_id"]}
    content = _content(m.get("content"), i, text_only=True)
    if content:
        block["content"] = content[0]["text"] if len(content) == 1 else content
    return block


def _tools(body: dict, out: dict) -> None:
    tools = body.get("tools")
    if not tools:
        return  # tool_choice without tools has nothing to choose from: dropped
    converted = []
    for j, tool in enumerate(tools):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(fn, dict) or tool.get("type") != "function" or not fn.get("name"):
            raise BadRequest("only function tools are supported", param=f"tools[{j}]")
        t = {"name": fn["name"]}
        if fn.get("description"):
            t["description"] = fn["description"]
        t["input_schema"] = fn.get("parameters") or {"type": "object", "properties": {}}
        converted.append(t)
    out["tools"] = converted
    choice = body.get("tool_choice")
    if choice in (None, "auto"):
        tc: dict[str, Any] = {"type": "auto"}
    elif choice == "none":
        tc = {"type": "none"}
    elif choice == "required":
        tc = {"type": "any"}
    elif isinstance(choice, dict) and choice.get("type") == "function" \
            and isinstance((choice.get("function") or {}).get("name"), str):
        tc = {"type": "tool", "name": choice["function"]["name"]}
    else:
        raise BadRequest("unsupported tool_choice", param="tool_choice")
    if body.get("parallel_tool_calls") is False and tc["type"] != "none":
        tc["disable_parallel_tool_use"] = True
    if choice is not None or "disable_parallel_tool_use" in tc:
        out["tool_choice"] = tc


# ---------------------------------------------------------------- reply: Anthropic -> OpenAI

def from_anthropic(resp: dict, *, model: str) -> dict:
    """Anthropic Messages response -> OpenAI chat.completion object."""
    texts, calls = [], []
    for block in resp.get("content") or []:
        if block.get("type") == "text":
            texts.append(block.get("text") or "")
        elif block.get("type") == "tool_use":
            calls.append({"id": block["id"], "type": "function",
                          "function": {"name": block["name"],
                                       "arguments": _encode(block.get("input") or {}).decode()}})
        # thinking, redacted_thinking and server-tool blocks have no OpenAI counterpart
    message: dict[str, Any] = {"role": "assistant",
                               "content": "".join(texts) if texts or not calls else None,
                               "refusal": None}
    if calls:
        message["tool_calls"] = calls
    usage = resp.get("usage") or {}
    return {
        "id": resp.get("id") or f"chatcmpl-{time.time_ns():x}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": FINISH.get(resp.get("stop_reason"), "stop")}],
        "usage": openai_usage(prompt_tokens(usage), usage.get("output_tokens") or 0,
                              usage.get("cache_read_input_tokens")),
    }
