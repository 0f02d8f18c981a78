"""An OpenAI chat request read once into a neutral Conversation, for native translators.

Every native API (Gemini, Bedrock, Cohere, KServe v2, TGI, a template…) needs the same
things from an OpenAI chat body: the system text, the turns with their text, images, tool
calls and tool results, the tools offered and the sampling settings. ``read`` checks and
normalises them once, with a 400 naming the parameter for what is wrong, so each
translator only maps a Conversation to its own shapes. Shapes:
https://platform.openai.com/docs/api-reference/chat/create
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any, Literal

from eldric.errors import BadRequest
from eldric.wire.openai_reply import Unreadable, json_object


@dataclass
class Text:
    text: str


@dataclass
class Image:
    """An image part: a data: URL's bytes (``data``, base64 as sent, and its media type),
    or an http(s) URL (``url``; ``media_type`` guessed from its name, may be None)."""

    url: str | None = None
    data: str | None = None  # base64, as in the data: URL
    media_type: str | None = None
    detail: str | None = None

    def raw(self) -> bytes:
        """The image's bytes (a data: URL's only)."""
        return base64.b64decode(self.data or "")


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: dict  # the JSON object (OpenAI sends it as a string)
    arguments_text: str  # as the client sent it


@dataclass
class ToolResult:
    call_id: str
    name: str | None  # the called tool's name, from the assistant turn that called it
    content: str  # the result's text (parts joined)


Part = Text | Image | ToolCall | ToolResult


@dataclass
class Turn:
    role: Literal["user", "assistant", "tool"]
    parts: list[Part]

    @property
    def text(self) -> str:
        return "".join(p.text for p in self.parts if isinstance(p, Text))


@dataclass
class Tool:
    name: str
    description: str | None
    parameters: dict  # JSON Schema ({"type": "object", "properties": {}} when none given)


@dataclass
class Sampling:
    max_tokens: int | None = None  # max_completion_tokens, else max_tokens
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None  # not OpenAI's, sent by many clients of local servers
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    json_mode: bool = False  # response_format json_object / json_schema
    json_schema: dict | None = None  # response_format json_schema's schema


@dataclass
class Conversation:
    model: str
    system: str | None  # system and developer messages, joined by a blank line
    turns: list[Turn]  # same-role neighbours are kept apart (each API merges as it must)
    tools: list[Tool]
    # "auto", "none", "required", or the one tool's name it must call
    tool_choice: str
    sampling: Sampling
    stream: bool
    include_usage: bool
    user: str | None = None

    @property
    def has_images(self) -> bool:
        return any(isinstance(p, Image) for t in self.turns for p in t.parts)

    def prompt(self) -> str:
        """The conversation as one plain prompt, for APIs that take text only (KServe v2,
        TGI's generate, a template): ``System: …``, ``User: …``, ``Assistant: …`` lines and
        a last ``Assistant:`` to continue. Backends with a chat template of their own
        should be sent messages instead, where their API takes them."""
        lines = [f"System: {self.system}"] if self.system else []
        for t in self.turns:
            who = {"user": "User", "assistant": "Assistant", "tool": "Tool"}[t.role]
            body = t.text if t.role != "tool" else "\n".join(
                p.content for p in t.parts if isinstance(p, ToolResult))
            lines.append(f"{who}: {body}")
        lines.append("Assistant:")
        return "\n".join(lines)


def read(body: Any, *, model: str | None = None) -> Conversation:
    """An OpenAI chat request (decoded JSON) as a Conversation; BadRequest naming the
    parameter for what the Chat Completions API would refuse. `model` replaces the
    body's (the backend's own name for it)."""
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    n = body.get("n")
    if n is not None and n != 1:
        raise BadRequest("n > 1 is not supported by this model's backend", param="n")
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise BadRequest("messages must be a non-empty array", param="messages")
    system: list[str] = []
    turns: list[Turn] = []
    names: dict[str, str] = {}  # tool call id -> its tool's name
    for i, m in enumerate(msgs):
        if not isinstance(m, dict):
            raise BadRequest("each message must be an object", param=f"messages[{i}]")
        role = m.get("role")
        if role in ("system", "developer"):
            text = "".join(p.text for p in _parts(m.get("content"), i, images=False))
            if text:
                system.append(text)
        elif role == "user":
            turns.append(Turn("user", _parts(m.get("content"), i, images=True)))
        elif role == "assistant":
            parts: list[Part] = list(_parts(m.get("content"), i, images=False))
            for call in _calls(m.get("tool_calls"), i):
                names[call.id] = call.name
                parts.append(call)
            turns.append(Turn("assistant", parts))
        elif role == "tool":
            call_id = m.get("tool_call_id")
            if not isinstance(call_id, str) or not call_id:
                raise BadRequest("a tool message needs its tool_call_id",
                                 param=f"messages[{i}].tool_call_id")
            text = "".join(p.text for p in _parts(m.get("content"), i, images=False))
            turns.append(Turn("tool", [ToolResult(call_id, names.get(call_id), text)]))
        else:
            raise BadRequest(f"unsupported message role {role!r}", param=f"messages[{i}].role")
    if not turns:
        raise BadRequest("messages hold no user or assistant content", param="messages")
    tools, choice = _tools(body)
    opts = body.get("stream_options")
    name = model or body.get("model")
    if not isinstance(name, str) or not name:
        raise BadRequest("model must be a non-empty string", param="model")
    user = body.get("user") or body.get("safety_identifier")
    return Conversation(
        model=name, system="\n\n".join(system) or None, turns=turns, tools=tools,
        tool_choice=choice, sampling=_sampling(body), stream=bool(body.get("stream")),
        include_usage=bool(isinstance(opts, dict) and opts.get("include_usage")),
        user=user if isinstance(user, str) and user else None)


def _parts(content: Any, i: int, *, images: bool) -> list[Text | Image]:
    if content is None:
        return []
    if isinstance(content, str):
        return [Text(content)] if content else []
    if not isinstance(content, list):
        raise BadRequest("content must be a string or an array of parts",
                         param=f"messages[{i}].content")
    out: list[Text | Image] = []
    for j, part in enumerate(content):
        where = f"messages[{i}].content[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if not isinstance(part.get("text"), str):
                raise BadRequest("a text part needs its text", param=where)
            if part["text"]:
                out.append(Text(part["text"]))
        elif kind == "image_url":
            if not images:
                raise BadRequest("only user messages may hold images", param=where)
            out.append(image(part.get("image_url"), where))
        else:
            raise BadRequest(f"content part type {kind!r} is not supported by this "
                             "model's backend", param=where)
    return out


IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
_BY_SUFFIX = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png",
              ".gif": "image/gif", ".webp": "image/webp"}


def image(image_url: Any, param: str) -> Image:
    """An ``image_url`` part's value (``{"url", "detail"}`` or a bare string)."""
    url = image_url.get("url") if isinstance(image_url, dict) else image_url
    detail = image_url.get("detail") if isinstance(image_url, dict) else None
    if not isinstance(url, str):
        raise BadRequest("image_url.url must be a string", param=param)
    if url.startswith(("http://", "https://")):
        suffix = url.split("?", 1)[0].rsplit("/", 1)[-1]
        dot = suffix.rfind(".")
        return Image(url=url, media_type=_BY_SUFFIX.get(suffix[dot:].lower()) if dot >= 0
                     else None, detail=detail)
    if url.startswith("data:"):
        head, _, data = url[5:].partition(",")
        media_type, _, encoding = head.partition(";")
        if encoding != "base64":
            raise BadRequest("an image data: URL must be base64-encoded", param=param)
        if media_type not in IMAGE_TYPES:
            raise BadRequest(f"image type {media_type!r} is not supported (use one of "
                             f"{', '.join(IMAGE_TYPES)})", param=param)
        try:
            base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest("an image data: URL holds invalid base64", param=param) from None
        return Image(data=data, media_type=media_type, detail=detail)
    raise BadRequest("image_url.url must be an http(s) or data: URL", param=param)


def _calls(calls: Any, i: int) -> list[ToolCall]:
    if calls is None:
        return []
    if not isinstance(calls, list):
        raise BadRequest("tool_calls must be an array", param=f"messages[{i}].tool_calls")
    out = []
    for j, c in enumerate(calls):
        where = f"messages[{i}].tool_calls[{j}]"
        fn = c.get("function") if isinstance(c, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise BadRequest("a tool call needs function.name", param=where)
        args = fn.get("arguments")
        try:
            obj = json_object(args)
        except Unreadable:
            raise BadRequest("tool call arguments must be a JSON object",
                             param=f"{where}.function.arguments") from None
        text = args if isinstance(args, str) else ""
        call_id = c.get("id") if isinstance(c.get("id"), str) and c.get("id") else f"call_{i}_{j}"
        out.append(ToolCall(call_id, fn["name"], obj, text))
    return out


def _tools(body: dict) -> tuple[list[Tool], str]:
    raw = body.get("tools")
    tools: list[Tool] = []
    if raw is not None:
        if not isinstance(raw, list):
            raise BadRequest("tools must be an array", param="tools")
        for j, t in enumerate(raw):
            fn = t.get("function") if isinstance(t, dict) else None
            if not isinstance(t, dict) or t.get("type", "function") != "function" \
                    or not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                raise BadRequest("each tool must be {type: function, function: {name, …}}",
                                 param=f"tools[{j}]")
            params = fn.get("parameters")
            if params is not None and not isinstance(params, dict):
                raise BadRequest("function.parameters must be a JSON Schema object",
                                 param=f"tools[{j}].function.parameters")
            desc = fn.get("description")
            tools.append(Tool(fn["name"], desc if isinstance(desc, str) else None,
                              params or {"type": "object", "properties": {}}))
    choice = body.get("tool_choice")
    if choice is None:
        return tools, "auto" if tools else "none"
    if choice in ("auto", "none", "required"):
        return tools, choice
    fn = choice.get("function") if isinstance(choice, dict) else None
    if isinstance(fn, dict) and isinstance(fn.get("name"), str):
        if fn["name"] not in {t.name for t in tools}:
            raise BadRequest(f"tool_choice names {fn['name']!r}, which is not in tools",
                             param="tool_choice")
        return tools, fn["name"]
    raise BadRequest("tool_choice must be auto, none, required or {type: function, "
                     "function: {name}}", param="tool_choice")


def _number(body: dict, key: str, kind: type | tuple[type, ...] = (int, float)) -> Any:
    v = body.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, kind):
        raise BadRequest(f"{key} must be a number", param=key)
    return v


def _sampling(body: dict) -> Sampling:
    s = Sampling()
    for key in ("max_completion_tokens", "max_tokens"):
        v = body.get(key)
        if v is not None:
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise BadRequest(f"{key} must be a positive integer", param=key)
            s.max_tokens = v
            break
    s.temperature = _number(body, "temperature")
    s.top_p = _number(body, "top_p")
    s.top_k = _number(body, "top_k", int)
    s.seed = _number(body, "seed", int)
    s.presence_penalty = _number(body, "presence_penalty")
    s.frequency_penalty = _number(body, "frequency_penalty")
    stop = body.get("stop")
    if isinstance(stop, str):
        s.stop = [stop]
    elif isinstance(stop, list) and all(isinstance(x, str) for x in stop):
        s.stop = list(stop)
    elif stop is not None:
        raise BadRequest("stop must be a string or an array of strings", param="stop")
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema"):
        s.json_mode = True
        schema = fmt.get("json_schema")
        if isinstance(schema, dict) and isinstance(schema.get("schema"), dict):
            s.json_schema = schema["schema"]
    elif fmt is not None and not (isinstance(fmt, dict) and fmt.get("type", "text") == "text"):
        raise BadRequest("response_format must be {type: text|json_object|json_schema}",
                         param="response_format")
    return s


def alternating(turns: list[tuple[str, list]], field: str) -> list[dict]:
    """(role, content) pairs as an API that wants the roles alternating takes them
    (Gemini's contents, Bedrock's messages): an empty content left out, same-role
    neighbours one turn (`field` names its content list: "parts", "content")."""
    out: list[dict] = []
    for role, content in turns:
        if not content:
            continue
        if out and out[-1]["role"] == role:
            out[-1][field] += content
        else:
            out.append({"role": role, field: content})
    return out
