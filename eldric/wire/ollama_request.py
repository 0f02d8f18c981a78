"""Ollama's /api/chat, /api/generate and /api/embed request bodies as Chat Completions and
embeddings bodies: pure, no I/O.

Shapes follow Ollama's docs/api.md and api/types.go: messages carry raw base64 `images`
and tool calls whose `arguments` are JSON objects (Chat Completions wants data: URLs and
JSON strings); sampling lives in `options` (`num_predict` is `max_tokens`); `format` is
"json" or a JSON schema; a missing `stream` means true. A body Ollama itself would refuse,
or one with no Chat Completions equivalent, is a 400 naming the field.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import msgspec

from eldric.errors import BadRequest
from eldric.wire.head import decode_head
from eldric.wire.vision import sniff

_encode = msgspec.json.encode


class _Common(msgspec.Struct, kw_only=True):
    model: str
    format: str | dict | None = None
    options: dict[str, Any] | None = None
    stream: bool | None = None  # absent or null: Ollama streams
    think: bool | str | None = None
    keep_alive: Any = None  # the backend's own model cache: nothing to forward


class ChatBody(_Common, kw_only=True):
    messages: list[Any] | None = None
    tools: list[Any] | None = None


class GenerateBody(_Common, kw_only=True):
    prompt: str | None = None
    suffix: str | None = None
    system: str | None = None
    template: str | None = None
    context: list[int] | None = None
    raw: bool | None = None
    images: list[Any] | None = None


class EmbedBody(msgspec.Struct, kw_only=True):
    model: str
    input: str | list[Any] | None = None
    truncate: bool | None = None  # the backend truncates as it does; Ollama's default
    options: dict[str, Any] | None = None
    keep_alive: Any = None
    dimensions: int | None = None


class EmbeddingsBody(msgspec.Struct, kw_only=True):
    """The legacy /api/embeddings: one prompt, one vector."""

    model: str
    prompt: str | None = None
    options: dict[str, Any] | None = None
    keep_alive: Any = None


def decode(raw: bytes, kind: type) -> Any:
    body: Any = decode_head(raw, kind)
    if not body.model:
        raise BadRequest("model is required", param="model")
    return body


# ---------------------------------------------------------------- sampling and format

_NUMBER = (int, float)
# Same name and meaning in Chat Completions.
_SAME: dict[str, tuple[type, ...]] = {
    "temperature": _NUMBER, "top_p": _NUMBER, "seed": (int,),
    "presence_penalty": _NUMBER, "frequency_penalty": _NUMBER}
# Not in OpenAI's API, but llama.cpp's server takes them under these names (vLLM the
# first two): passed on, so a backend that knows them samples as asked.
_EXTRA: dict[str, tuple[type, ...]] = {
    "top_k": (int,), "min_p": _NUMBER, "typical_p": _NUMBER, "repeat_penalty": _NUMBER,
    "repeat_last_n": (int,)}
# Everything else (num_ctx, num_gpu, num_thread, use_mmap…) configures the backend's own
# runner at load time; Ollama itself ignores options it does not know.

_EFFORT = {"low": "low", "medium": "medium", "high": "high", "max": "high"}


def _typed(value: Any, kinds: tuple[type, ...]) -> bool:
    return isinstance(value, kinds) and not isinstance(value, bool)


def sampling(body: _Common, out: dict) -> None:
    """`options`, `format` and `think` onto the Chat Completions body `out`."""
    for key, value in (body.options or {}).items():
        kinds = _SAME.get(key) or _EXTRA.get(key)
        if kinds is not None:
            if value is None:
                continue
            if not _typed(value, kinds):
                raise BadRequest(f"options.{key} must be a number", param=f"options.{key}")
            out[key] = value
        elif key == "num_predict":
            if not _typed(value, (int,)):
                raise BadRequest("options.num_predict must be an integer",
                                 param="options.num_predict")
            if value > 0:  # -1 (and Ollama's -2): as many as the context allows
                out["max_tokens"] = value
        elif key == "stop":
            out["stop"] = _stop(value)
    fmt = body.format
    if fmt == "json":
        out["response_format"] = {"type": "json_object"}
    elif isinstance(fmt, dict):
        out["response_format"] = {"type": "json_schema",
                                  "json_schema": {"name": "format", "schema": fmt}}
    elif fmt not in (None, ""):
        raise BadRequest('format must be "json" or a JSON schema object', param="format")
    think = body.think
    if isinstance(think, str):
        if think not in _EFFORT:
            raise BadRequest('think must be true, false, "low", "medium", "high" or "max"',
                             param="think")
        out["reasoning_effort"] = _EFFORT[think]
    # think true or false: no backend-neutral switch exists (OpenAI's non-reasoning models
    # refuse reasoning_effort); a thinking model thinks as it does, and the reply drops
    # the thinking when the client said false.


def _stop(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(s, str) for s in value):
        return value
    raise BadRequest("options.stop must be an array of strings", param="options.stop")


# ---------------------------------------------------------------- messages

_ROLES = ("system", "user", "assistant", "tool")
def image_url(image: Any, param: str) -> dict:
    """One of Ollama's base64 images as a Chat Completions image part (a data: URL; its
    media type read from the image's first bytes, which Ollama's clients do not send)."""
    if not isinstance(image, str) or not image:
        raise BadRequest("an image must be a base64 string", param=param)
    if image.startswith("data:image/"):
        return {"type": "image_url", "image_url": {"url": image}}
    try:
        head = base64.b64decode(image[:16], validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("an image must be base64-encoded", param=param) from None
    media = sniff(head)
    if media is None:
        raise BadRequest("an image must be a PNG, JPEG, GIF or WebP file", param=param)
    return {"type": "image_url", "image_url": {"url": f"data:{media};base64,{image}"}}


def user_content(text: str, images: Any, param: str) -> str | list[dict]:
    if not images:
        return text
    if not isinstance(images, list):
        raise BadRequest("images must be an array of base64 strings", param=param)
    parts: list[dict] = [{"type": "text", "text": text}] if text else []
    return parts + [image_url(img, f"{param}[{j}]") for j, img in enumerate(images)]


def messages(raw: list[Any]) -> list[dict]:
    """Ollama's chat messages as Chat Completions messages."""
    out: list[dict] = []
    pending: list[tuple[str, str]] = []  # (id, name) of tool calls not yet answered
    for i, m in enumerate(raw):
        p = f"messages[{i}]"
        if not isinstance(m, dict):
            raise BadRequest("each message must be an object", param=p)
        role = m.get("role")
        role = role.lower() if isinstance(role, str) else role  # as Ollama's server does
        if role not in _ROLES:
            raise BadRequest(f"unsupported message role {role!r}", param=p + ".role")
        content = m.get("content")
        if content is None:
            content = ""
        if not isinstance(content, str):
            raise BadRequest("content must be a string", param=p + ".content")
        if m.get("images") and role != "user":
            raise BadRequest("only user messages may carry images", param=p + ".images")
        if role == "tool":
            out.append(_tool_result(m, content, pending, i))
            continue
        msg: dict[str, Any] = {"role": role,
                               "content": user_content(content, m.get("images"), p + ".images")}
        if role == "assistant":
            calls = _tool_calls(m.get("tool_calls"), p, i)
            if calls:
                msg["tool_calls"] = calls
                msg["content"] = content or None
                pending = [(c["id"], c["function"]["name"]) for c in calls]
        out.append(msg)
    return out


def _tool_calls(calls: Any, p: str, i: int) -> list[dict]:
    if calls is None:
        return []
    if not isinstance(calls, list):
        raise BadRequest("tool_calls must be an array", param=p + ".tool_calls")
    out = []
    for j, call in enumerate(calls):
        q = f"{p}.tool_calls[{j}]"
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
            raise BadRequest("a tool call needs a function with a name", param=q + ".function")
        args = fn.get("arguments")
        if args is None:
            args = {}
        if not isinstance(args, dict):
            raise BadRequest("tool call arguments must be a JSON object",
                             param=q + ".function.arguments")
        cid = call.get("id")
        out.append({"id": cid if isinstance(cid, str) and cid else f"call_{i}_{j}",
                    "type": "function",
                    "function": {"name": fn["name"], "arguments": _encode(args).decode()}})
    return out


def _tool_result(m: dict, content: str, pending: list[tuple[str, str]], i: int) -> dict:
    """Ollama names the tool a result is for (`tool_name`); Chat Completions wants the
    call's id: the id given, else the unanswered call of that name, else the next one."""
    cid = m.get("tool_call_id")
    if not (isinstance(cid, str) and cid):
        name = m.get("tool_name")
        match = next((c for c in pending if c[1] == name), pending[0] if pending else None)
        cid = match[0] if match else f"call_{i}"
    pending[:] = [c for c in pending if c[0] != cid]
    return {"role": "tool", "tool_call_id": cid, "content": content}


def tools(raw: list[Any] | None) -> list[dict] | None:
    if not raw:
        return None  # the ollama client always sends "tools": []
    for j, tool in enumerate(raw):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(fn, dict) or tool.get("type", "function") != "function" \
                or not isinstance(fn.get("name"), str) or not fn["name"]:
            raise BadRequest("each tool must be a function tool with a name", param=f"tools[{j}]")
    return [{"type": "function", "function": t["function"]} for t in raw]
