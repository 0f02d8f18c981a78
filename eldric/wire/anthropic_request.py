"""A client's Anthropic Messages request, decoded and turned into a Chat Completions body.

The ingress side of wire/anthropic.py: the request's shape (lenient Structs: fields eldric
does not translate, such as cache_control or citations, are skipped), refused with a 400
naming the field where Anthropic would refuse it or where it has no Chat Completions
twin, and ``chat_body()``, its translation. Request shapes: the anthropic SDK's
types/message_create_params.py and the Messages reference
(https://docs.anthropic.com/en/api/messages).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import msgspec

from eldric.errors import BadRequest
from eldric.wire.head import decode_head


class _Block(msgspec.Struct, tag_field="type"):
    pass


class Text(_Block, tag="text"):
    text: str


class ImageBase64(msgspec.Struct, tag_field="type", tag="base64"):
    media_type: Literal["image/jpeg", "image/png", "image/gif", "image/webp"]
    data: str


class ImageUrl(msgspec.Struct, tag_field="type", tag="url"):
    url: str


class FileRef(msgspec.Struct, tag_field="type", tag="file"):
    file_id: str


class Image(_Block, tag="image"):
    source: ImageBase64 | ImageUrl | FileRef


class Document(_Block, tag="document"):
    source: dict  # only a plain-text source translates: checked where it is read
    title: str | None = None


class ToolUse(_Block, tag="tool_use"):
    id: str
    name: str
    input: dict


class ToolResult(_Block, tag="tool_result"):
    tool_use_id: str
    content: str | list[Text | Image | Document] | None = None
    is_error: bool = False


class Thinking(_Block, tag="thinking"):
    thinking: str = ""
    signature: str = ""


class RedactedThinking(_Block, tag="redacted_thinking"):
    data: str = ""


Block = Text | Image | Document | ToolUse | ToolResult | Thinking | RedactedThinking


class Message(msgspec.Struct):
    role: Literal["user", "assistant", "system"]
    content: str | list[Block]


class Tool(msgspec.Struct, kw_only=True):
    name: str
    description: str | None = None
    input_schema: dict | None = None
    type: str | None = None  # "custom", or a server tool's versioned type (not served)
    strict: bool | None = None


class _Choice(msgspec.Struct, tag_field="type", kw_only=True):
    disable_parallel_tool_use: bool = False


class ChooseAuto(_Choice, tag="auto"):
    pass


class ChooseAny(_Choice, tag="any"):
    pass


class ChooseTool(_Choice, tag="tool"):
    name: str


class ChooseNone(_Choice, tag="none"):
    pass


class Metadata(msgspec.Struct):
    user_id: str | None = None


_Unit = Annotated[float, msgspec.Meta(ge=0, le=1)]  # Anthropic's range for both


class Prompt(msgspec.Struct, kw_only=True):
    """What a prompt is made of: the body of /v1/messages/count_tokens."""

    model: str
    messages: Annotated[list[Message], msgspec.Meta(min_length=1)]
    system: str | list[Text] | None = None
    tools: list[Tool] | None = None
    tool_choice: ChooseAuto | ChooseAny | ChooseTool | ChooseNone | None = None


class MessagesRequest(Prompt, kw_only=True):
    """The body of POST /v1/messages."""

    max_tokens: Annotated[int, msgspec.Meta(ge=1)]
    stream: bool = False
    stop_sequences: list[str] | None = None
    metadata: Metadata | None = None
    temperature: _Unit | None = None
    top_p: _Unit | None = None
    top_k: Annotated[int, msgspec.Meta(ge=0)] | None = None


_decoders = {kind: msgspec.json.Decoder(kind) for kind in (Prompt, MessagesRequest)}
_AT = re.compile(r" - at `\$\.?([^`]*)`$")
_MISSING = re.compile(r"^Object missing required field `([^`]+)`")


def decode(body: bytes, kind: type[Prompt] = MessagesRequest) -> Any:
    """The request, or a 400 naming the field (the whole path: messages[2].content[0])."""
    try:
        return _decoders[kind].decode(body)
    except msgspec.ValidationError as exc:
        raise BadRequest(f"invalid request body: {exc}", param=_param(str(exc))) from None
    except Exception:  # not JSON, empty, not UTF-8, too deep: decode_head says which
        decode_head(body, kind)
        raise


def _param(message: str) -> str | None:
    at = _AT.search(message)
    path = at.group(1) if at else ""
    missing = _MISSING.match(message)
    if missing:
        path = f"{path}.{missing.group(1)}" if path else missing.group(1)
    return path or None


# ---------------------------------------------------------------- to Chat Completions

def chat_body(req: MessagesRequest) -> dict:
    """The Chat Completions body for a Messages request (pure; raises a 400 for what has
    no Chat Completions twin)."""
    out: dict[str, Any] = {"model": req.model, "messages": chat_messages(req),
                           "max_tokens": req.max_tokens}
    if req.stream:
        # Anthropic's stream ends on its usage: ask the backend for its usage chunk
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    if req.stop_sequences:
        out["stop"] = req.stop_sequences
    for name in ("temperature", "top_p", "top_k"):  # top_k: llama.cpp's, vLLM's, Ollama's
        if (value := getattr(req, name)) is not None:
            out[name] = value
    if req.metadata and req.metadata.user_id:
        out["user"] = req.metadata.user_id
    chat_tools(req, out)
    return out


def chat_tools(req: Prompt, out: dict) -> None:
    if not req.tools:
        return  # a tool_choice without tools has nothing to choose from: dropped
    tools = []
    for j, t in enumerate(req.tools):
        if t.type not in (None, "custom"):
            raise BadRequest(f"the server tool {t.type!r} is not served by this backend; "
                             "only custom tools are", param=f"tools[{j}].type")
        if t.input_schema is None:
            raise BadRequest("a tool needs an input_schema", param=f"tools[{j}].input_schema")
        fn: dict[str, Any] = {"name": t.name, "parameters": t.input_schema}
        if t.description:
            fn["description"] = t.description
        if t.strict is not None:
            fn["strict"] = t.strict
        tools.append({"type": "function", "function": fn})
    out["tools"] = tools
    c = req.tool_choice
    if c is None:
        return
    if isinstance(c, ChooseTool):
        out["tool_choice"] = {"type": "function", "function": {"name": c.name}}
    else:
        out["tool_choice"] = {ChooseAuto: "auto", ChooseAny: "required",
                              ChooseNone: "none"}[type(c)]
    if c.disable_parallel_tool_use:
        out["parallel_tool_calls"] = False


def chat_messages(req: Prompt) -> list[dict]:
    """Anthropic's turns as Chat Completions messages: the system prompt first, each
    tool_result its own tool message, consecutive turns of one role merged (Anthropic
    combines them; many chat templates refuse two user turns in a row)."""
    out: list[dict] = []
    if req.system:
        out.append({"role": "system", "content": _system(req.system, "system")})
    for i, m in enumerate(req.messages):
        if m.role == "system":
            _append(out, {"role": "system", "content": _system(m.content, f"messages[{i}]")})
        elif isinstance(m.content, str):
            _append(out, {"role": m.role, "content": m.content})
        elif m.role == "assistant":
            _append(out, _assistant(m.content, i))
        else:
            for msg in _user(m.content, i):
                _append(out, msg)
    return out


def _system(content: str | list, param: str) -> str:
    if isinstance(content, str):
        return content
    for j, b in enumerate(content):
        if not isinstance(b, Text):
            raise BadRequest("a system prompt holds text blocks only",
                             param=f"{param}.content[{j}]")
    return "\n\n".join(b.text for b in content)


def _assistant(blocks: list, i: int) -> dict:
    texts, calls = [], []
    for j, b in enumerate(blocks):
        if isinstance(b, Text):
            texts.append(b.text)
        elif isinstance(b, ToolUse):
            calls.append({"id": b.id, "type": "function",
                          "function": {"name": b.name,
                                       "arguments": msgspec.json.encode(b.input).decode()}})
        elif not isinstance(b, (Thinking, RedactedThinking)):
            # thinking has no Chat Completions twin (and its signature only Anthropic checks)
            raise BadRequest(f"an assistant turn cannot hold a {_kind(b)} block here",
                             param=f"messages[{i}].content[{j}]")
    msg: dict[str, Any] = {"role": "assistant", "content": "\n\n".join(texts) if texts else None}
    if calls:
        msg["tool_calls"] = calls
    elif msg["content"] is None:
        msg["content"] = ""
    return msg


def _user(blocks: list, i: int) -> list[dict]:
    """A user turn: its tool results (each a tool message, first, as Anthropic requires
    them first), then what else it holds (images in a tool result join it: a tool message
    holds text only)."""
    tools: list[dict] = []
    parts: list[dict] = []
    for j, b in enumerate(blocks):
        param = f"messages[{i}].content[{j}]"
        if isinstance(b, ToolResult):
            text, images = _result(b, param)
            tools.append({"role": "tool", "tool_call_id": b.tool_use_id, "content": text})
            parts += images
        elif isinstance(b, (Thinking, RedactedThinking)):
            continue
        elif isinstance(b, ToolUse):
            raise BadRequest("a user turn cannot hold a tool_use block", param=param)
        else:
            parts.append(_part(b, param))
    return [*tools, {"role": "user", "content": _content(parts)}] if parts else tools


def _result(b: ToolResult, param: str) -> tuple[str, list[dict]]:
    if b.content is None or isinstance(b.content, str):
        text, images = b.content or "", []
    else:
        parts = [_part(c, f"{param}.content[{k}]") for k, c in enumerate(b.content)]
        text = "\n\n".join(p["text"] for p in parts if p["type"] == "text")
        images = [p for p in parts if p["type"] != "text"]
    # Chat Completions has no is_error: the model reads that the tool failed instead
    return (f"Error: {text}" if b.is_error else text), images


def _part(b: Any, param: str) -> dict:
    """A text, image or plain-text document block -> a Chat Completions content part."""
    if isinstance(b, Text):
        return {"type": "text", "text": b.text}
    if isinstance(b, Image):
        src = b.source
        if isinstance(src, ImageBase64):
            return {"type": "image_url",
                    "image_url": {"url": f"data:{src.media_type};base64,{src.data}"}}
        if isinstance(src, ImageUrl):
            return {"type": "image_url", "image_url": {"url": src.url}}
        raise BadRequest("an image from the Files API is not served by this backend; send "
                         "it as base64 or a URL", param=f"{param}.source")
    if isinstance(b, Document):
        if b.source.get("type") == "text" and isinstance(b.source.get("data"), str):
            return {"type": "text", "text": f"{b.title}\n\n{b.source['data']}"
                    if b.title else b.source["data"]}
        raise BadRequest("only plain-text documents are served by this backend",
                         param=f"{param}.source")
    raise BadRequest(f"a {_kind(b)} block is not allowed here", param=param)


def _content(parts: list[dict]) -> str | list[dict]:
    """Text alone as one string (every backend takes a string; not all take parts)."""
    if all(p["type"] == "text" for p in parts):
        return "\n\n".join(p["text"] for p in parts)
    return parts


def _append(out: list[dict], msg: dict) -> None:
    last = out[-1] if out else None
    if last is None or last["role"] != msg["role"] or msg["role"] == "tool":
        out.append(msg)
        return
    if last.get("tool_calls") and msg.get("content"):
        out.append(msg)  # an assistant's text after its tool calls keeps its place
        return
    last["content"] = _merge(last.get("content"), msg.get("content"))
    if msg.get("tool_calls"):
        last["tool_calls"] = [*last.get("tool_calls", []), *msg["tool_calls"]]
        last["content"] = last["content"] or None


def _merge(a: Any, b: Any) -> Any:
    def parts(c: Any) -> list[dict]:
        if not c:
            return []
        return [{"type": "text", "text": c}] if isinstance(c, str) else list(c)

    return _content(parts(a) + parts(b))


def _kind(b: Any) -> str:
    return type(b).__struct_config__.tag  # the block's "type" as the client sent it
