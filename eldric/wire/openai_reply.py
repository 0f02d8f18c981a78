"""A Chat Completions reply as the client-API translators read it: typed, pure, no I/O.

One set of msgspec Structs for a chat.completion and a chat.completion.chunk (only the
fields a translator reads: https://platform.openai.com/docs/api-reference/chat/object and
/chat-streaming), so a backend's reply that is not what the API promises (``choices: 5``,
``finish_reason: ["stop"]``) is one clear ``Unreadable`` (a ValueError: the core makes it
the upstream's failure) instead of a crash deep in a translator. Also what every
translator needs around it: a tool call's arguments as a JSON object, and the two shapes
turned into each other for an upstream that ignored the request's ``stream`` flag
(``as_chunks``, ``gathered``).
"""

from __future__ import annotations

from typing import Any

import msgspec

_encode = msgspec.json.encode
_decode = msgspec.json.decode


class Unreadable(ValueError):
    """The upstream's reply is not what the Chat Completions API promises."""


class Fn(msgspec.Struct):
    name: str | None = None
    arguments: str | dict | None = None  # a string of JSON; a few backends send the object


class Call(msgspec.Struct):
    index: int = 0
    id: str | None = None
    function: Fn | None = None


class Part(msgspec.Struct):
    text: str | None = None


class Message(msgspec.Struct):
    content: str | list[Part] | None = None  # a list of parts from a backend that answers so
    reasoning_content: str | None = None  # llama.cpp, vLLM, DeepSeek
    reasoning: str | None = None  # Ollama's and OpenRouter's name for it
    refusal: str | None = None
    tool_calls: list[Call] | None = None


class Choice(msgspec.Struct):
    index: int = 0
    message: Message | None = None  # a whole reply
    delta: Message | None = None  # a stream chunk
    text: str | None = None  # /v1/completions (raw generate)
    finish_reason: str | None = None
    stop_reason: str | int | None = None  # vLLM: the stop string (or token id) matched


class Details(msgspec.Struct):
    cached_tokens: int | None = None


class Usage(msgspec.Struct):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    prompt_tokens_details: Details | None = None


class Reply(msgspec.Struct):
    """A chat.completion, or one chat.completion.chunk, or a backend's error event."""
    id: str | None = None
    choices: list[Choice] = []
    usage: Usage | None = None
    error: Any = None


_reply = msgspec.json.Decoder(Reply)


def reply(body: bytes) -> Reply:
    """A chat.completion (or chunk) decoded; Unreadable when it is not one."""
    try:
        return _reply.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise Unreadable(f"the backend's reply is not a chat completion: {exc}") from None


def text(m: Message | None) -> str:
    """The text of a message or delta: its content (joined parts), else its refusal."""
    if m is None:
        return ""
    content = m.content
    if isinstance(content, list):
        content = "".join(p.text or "" for p in content)
    return content or m.refusal or ""


def json_object(args: str | dict | None) -> dict:
    """A tool call's arguments as the JSON object they must be (empty: no arguments).
    Unreadable (a ValueError) naming what is wrong otherwise; each caller says whose."""
    if isinstance(args, dict):
        return args
    if args is None or not args.strip():
        return {}
    try:
        obj = _decode(args)
    except msgspec.DecodeError:
        raise Unreadable("tool call arguments are not valid JSON") from None
    if not isinstance(obj, dict):
        raise Unreadable("tool call arguments must be a JSON object")
    return obj


# ---------------------------------------------------------------- stream flag ignored

def as_chunks(body: bytes) -> list[bytes]:
    """A whole chat.completion as the SSE events (each without its blank line) a stream
    of it would have been: one chunk with each choice's message as its delta and its
    finish_reason, a usage chunk, ``[DONE]``. For an upstream that answered a stream
    request with whole JSON. Unreadable when it is not a chat.completion."""
    try:
        obj = _decode(body)
    except msgspec.DecodeError as exc:
        raise Unreadable(f"the backend's reply is not JSON: {exc}") from None
    choices = obj.get("choices") if isinstance(obj, dict) else None
    if not isinstance(choices, list):
        raise Unreadable("the backend's reply is not a chat completion: no choices")
    head = {k: obj[k] for k in ("id", "created", "model") if k in obj}
    head["object"] = "chat.completion.chunk"
    deltas = []
    for i, choice in enumerate(choices):
        if not isinstance(choice, dict):
            raise Unreadable("the backend's reply is not a chat completion: a choice "
                             "is not an object")
        delta = dict(choice.get("message") or {})
        calls = delta.get("tool_calls")
        if isinstance(calls, list):  # a chunk's tool calls carry their index
            delta["tool_calls"] = [dict(c, index=j) if isinstance(c, dict) else c
                                   for j, c in enumerate(calls)]
        out = {"index": choice.get("index", i), "delta": delta,
               "finish_reason": choice.get("finish_reason")}
        if "stop_reason" in choice:
            out["stop_reason"] = choice["stop_reason"]
        deltas.append(out)
    events = [b"data: " + _encode(head | {"choices": deltas})]
    if obj.get("usage") is not None:
        events.append(b"data: " + _encode(head | {"choices": [], "usage": obj["usage"]}))
    events.append(b"data: [DONE]")
    return events


def gathered(events: list[bytes]) -> bytes:
    """The chat.completion a chunk stream (its SSE events' data, each without the blank
    line) adds up to: content, refusal and reasoning joined, tool calls' argument
    fragments joined per index, the last finish_reason, the usage. For an upstream that
    answered a whole request with a stream. An error event comes back as it is, so the
    caller reads it as the upstream's failure; Unreadable for anything that is not a
    chunk, and for a stream that ended before it finished."""
    head: dict[str, Any] = {}
    choices: dict[int, dict] = {}
    usage: Any = None
    finished = False  # [DONE] or a finish_reason came: the stream did not end early
    for event in events:
        data = sse_data(event)
        if data is None:
            continue
        if data.strip() == b"[DONE]":
            finished = True
            continue
        try:
            chunk = _decode(data)
        except msgspec.DecodeError:
            raise Unreadable("the backend sent a stream event that is not JSON") from None
        if not isinstance(chunk, dict):
            raise Unreadable("the backend sent a stream event that is not a chunk")
        if chunk.get("error") is not None:
            return _encode({"error": chunk["error"]})
        for k in ("id", "created", "model"):
            head.setdefault(k, chunk.get(k))
        usage = chunk.get("usage") or usage
        for c in chunk.get("choices") or ():
            if not isinstance(c, dict) or not isinstance(c.get("delta") or {}, dict):
                raise Unreadable("the backend sent a chunk whose choice is not an object")
            _add(choices.setdefault(c.get("index", 0) if isinstance(c.get("index", 0), int)
                                    else 0, {"message": {"role": "assistant"}, "calls": {}}),
                 c)
    if not (finished or any("finish_reason" in c for c in choices.values())):
        raise Unreadable("the backend's stream ended before the reply was complete")
    out = {k: v for k, v in head.items() if v is not None} | {"object": "chat.completion"}
    out["choices"] = [_choice(i, c) for i, c in sorted(choices.items())]
    if usage is not None:
        out["usage"] = usage
    return _encode(out)


def _add(slot: dict, c: dict) -> None:
    msg, delta = slot["message"], c.get("delta") or {}
    for key in ("content", "refusal", "reasoning_content", "reasoning"):
        piece = delta.get(key)
        if isinstance(piece, str):
            msg[key] = (msg.get(key) or "") + piece
    for call in delta.get("tool_calls") or ():
        if not isinstance(call, dict):
            raise Unreadable("the backend sent a tool call that is not an object")
        at = call.get("index", 0)
        if not isinstance(at, int):
            raise Unreadable("the backend sent a tool call whose index is not a number")
        fn = call.get("function") if isinstance(call.get("function"), dict) else {}
        got = slot["calls"].setdefault(at, {"id": None, "type": "function",
                                            "function": {"name": "", "arguments": ""}})
        got["id"] = got["id"] or call.get("id")
        for key in ("name", "arguments"):
            piece = fn.get(key)
            if isinstance(piece, dict):
                piece = _encode(piece).decode()
            if isinstance(piece, str):
                got["function"][key] += piece
    if c.get("finish_reason") is not None:
        slot["finish_reason"] = c["finish_reason"]
    if c.get("stop_reason") is not None:
        slot["stop_reason"] = c["stop_reason"]


def _choice(index: int, slot: dict) -> dict:
    msg = slot["message"]
    msg.setdefault("content", None)
    calls = [call for _, call in sorted(slot["calls"].items())]
    if calls:
        msg["tool_calls"] = calls
    out = {"index": index, "message": msg, "finish_reason": slot.get("finish_reason")}
    if "stop_reason" in slot:
        out["stop_reason"] = slot["stop_reason"]
    return out


def sse_data(event: bytes) -> bytes | None:
    """The data of one SSE event (several data lines joined, as the SSE spec says)."""
    if event.startswith(b"data: ") and b"\n" not in event:
        return event[6:]  # what every backend sends
    data = [line[5:].removeprefix(b" ") for line in event.splitlines()
            if line.startswith(b"data:")]
    return b"\n".join(data) if data else None
