"""OpenAI's Responses API (/v1/responses) over Chat Completions: pure translation, no I/O.

``translator(body)`` is the path's Factory (eldric.wire.translate): the client's Responses
body in, a Translator out, whose ``request()`` is the Chat Completions body to send and
whose ``whole()`` / ``feed()`` turn the reply back into a ``response`` object or the
Responses event stream (eldric.wire.responses_stream). Shapes follow the OpenAPI spec and
the openai SDK's types (research: formats.md §2); the unit tests parse the output with the
SDK's own types and stream accumulator.

The conversation is what ``input`` says: expanding ``previous_response_id`` into it is the
job of the first eldric hop, which keeps the store (eldric.store.responses); here the id is
only echoed. ``store`` is that hop's business too and is never forwarded.
"""

from __future__ import annotations

from typing import Any

import msgspec

from eldric.errors import BadRequest
from eldric.wire.responses_stream import ResponseStream

CHAT_PATH = "/v1/chat/completions"
_decode = msgspec.json.decode
_encode = msgspec.json.encode

# The tool types the Responses API runs on OpenAI's side (tool_param.py and siblings):
# a backend behind Chat Completions has none of them.
BUILT_IN_TOOLS = frozenset((
    "file_search", "web_search", "web_search_2025_08_26", "web_search_preview",
    "web_search_preview_2025_03_11", "computer", "computer_use", "computer_use_preview",
    "code_interpreter", "image_generation", "mcp", "local_shell", "shell", "custom",
    "namespace", "tool_search", "apply_patch", "programmatic_tool_calling"))

# Fields a Chat Completions backend cannot honour, which change what the client gets.
_REFUSED = {"background": "background responses", "conversation": "conversations",
            "prompt": "prompt templates"}


# Fields only echoed or read by the first hop (which leaves a body it cannot read to be
# refused here): still the client's error, not a reply echoing junk.
_TYPED = (("stream", bool, "a boolean"), ("store", bool, "a boolean"),
          ("previous_response_id", str, "a string"))


def unsupported(what: str, param: str, code: str = "unsupported_parameter") -> BadRequest:
    return BadRequest(f"{what} is not supported by this model's backend", param=param, code=code)


# ---------------------------------------------------------------- request: Responses -> Chat

def to_chat(req: dict) -> dict:
    """A Responses request body (JSON-decoded) -> the Chat Completions body."""
    model = req.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("model is required", param="model")
    for field, what in _REFUSED.items():
        if req.get(field):
            raise unsupported(what, field)
    for field, kind, what in _TYPED:
        if req.get(field) is not None and not isinstance(req[field], kind):
            raise BadRequest(f"{field} must be {what}", param=field)
    messages: list[dict] = []
    instructions = req.get("instructions")
    if instructions is not None:
        if not isinstance(instructions, str):
            raise BadRequest("instructions must be a string", param="instructions")
        messages.append({"role": "system", "content": instructions})
    messages += input_messages(req.get("input"))
    if not messages:
        raise BadRequest("input is required", param="input")
    out: dict[str, Any] = {"model": model, "messages": messages}
    _tools(req, out)
    _format(req.get("text"), out)
    _sampling(req, out)
    if req.get("stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


def input_messages(value: Any) -> list[dict]:
    """`input` (a string or a list of items) -> Chat Completions messages."""
    if value is None:
        return []
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if not isinstance(value, list):
        raise BadRequest("input must be a string or an array of items", param="input")
    messages: list[dict] = []
    for i, item in enumerate(value):
        param = f"input[{i}]"
        if not isinstance(item, dict):
            raise BadRequest("an input item must be an object", param=param)
        kind = item.get("type") or ("message" if "role" in item else None)
        if kind == "message":
            messages.append(_message(item, param))
        elif kind == "function_call":
            _function_call(item, param, messages)
        elif kind == "function_call_output":
            messages.append(_function_output(item, param))
        elif kind == "reasoning":
            continue  # the model's own notes: a Chat Completions backend takes none back
        else:
            raise unsupported(f"input item type {kind!r}", f"{param}.type")
    return messages


_ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}


def _message(item: dict, param: str) -> dict:
    role = _ROLES.get(_text(item.get("role")) or "")
    if role is None:
        raise BadRequest("role must be user, assistant, system or developer",
                         param=f"{param}.role")
    content = item.get("content")
    if isinstance(content, str):
        return {"role": role, "content": content}
    if not isinstance(content, list):
        raise BadRequest("content must be a string or an array of parts",
                         param=f"{param}.content")
    parts = [_part(p, f"{param}.content[{j}]") for j, p in enumerate(content)]
    if all(p["type"] == "text" for p in parts):
        # one string: every Chat Completions backend takes it for every role
        return {"role": role, "content": "".join(p["text"] for p in parts)}
    if role != "user":
        raise BadRequest("only a user message may hold images", param=f"{param}.content")
    return {"role": role, "content": parts}


def _part(part: Any, param: str) -> dict:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in ("input_text", "output_text"):
        return {"type": "text", "text": _str(part, "text", param)}
    if kind == "refusal":
        return {"type": "text", "text": _str(part, "refusal", param)}
    if kind == "input_image":
        url = part.get("image_url")
        if not isinstance(url, str) or not url:
            raise unsupported("an input_image without image_url (file_id)", param)
        image: dict[str, Any] = {"url": url}
        if part.get("detail") in ("low", "high", "auto"):
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    raise unsupported(f"content part type {kind!r}", f"{param}.type")


def _text(value: Any) -> str | None:
    """A field compared as a name (a dict key, a set member): a client's `[]` or `{}`
    there is unhashable, so anything not a string is no name at all."""
    return value if isinstance(value, str) else None


def _str(obj: dict, field: str, param: str) -> str:
    value = obj.get(field)
    if not isinstance(value, str):
        raise BadRequest(f"{field} must be a string", param=f"{param}.{field}")
    return value


def _function_call(item: dict, param: str, messages: list[dict]) -> None:
    """Consecutive function_call items (and the assistant text just before them) are one
    assistant message with tool_calls: call_id is the link to the outputs."""
    call = {"id": _str(item, "call_id", param), "type": "function",
            "function": {"name": _str(item, "name", param),
                         "arguments": _str(item, "arguments", param)}}
    last = messages[-1] if messages else None
    if last is not None and last["role"] == "assistant" and isinstance(
            last.get("content", ""), (str, type(None))):
        last.setdefault("tool_calls", []).append(call)
    else:
        messages.append({"role": "assistant", "content": None, "tool_calls": [call]})


def _function_output(item: dict, param: str) -> dict:
    output = item.get("output")
    if isinstance(output, list):
        output = "".join(_part(p, f"{param}.output[{j}]").get("text", "")
                         for j, p in enumerate(output))
    if not isinstance(output, str):
        raise BadRequest("output must be a string or an array of parts",
                         param=f"{param}.output")
    return {"role": "tool", "tool_call_id": _str(item, "call_id", param), "content": output}


def _tools(req: dict, out: dict) -> None:
    tools = req.get("tools")
    if tools is None:
        tools = []
    if not isinstance(tools, list):
        raise BadRequest("tools must be an array", param="tools")
    functions = []
    for i, tool in enumerate(tools):
        kind = _text(tool.get("type")) if isinstance(tool, dict) else None
        if kind != "function":
            if kind in BUILT_IN_TOOLS:
                raise unsupported(f"the built-in tool {kind!r}", f"tools[{i}].type",
                                  "unsupported_tool")
            raise BadRequest(f"unknown tool type {kind!r}", param=f"tools[{i}].type")
        fn: dict[str, Any] = {"name": _str(tool, "name", f"tools[{i}]")}
        for field in ("description", "parameters", "strict"):
            if tool.get(field) is not None:
                fn[field] = tool[field]
        functions.append({"type": "function", "function": fn})
    choice = _tool_choice(req.get("tool_choice"), functions)
    if functions:
        out["tools"] = functions
        if req.get("parallel_tool_calls") is not None:
            out["parallel_tool_calls"] = req["parallel_tool_calls"]
    if choice is not None and (functions or choice == "none"):
        out["tool_choice"] = choice


def _tool_choice(choice: Any, functions: list[dict]) -> Any:
    if choice is None or choice in ("none", "auto", "required"):
        return choice
    kind = _text(choice.get("type")) if isinstance(choice, dict) else None
    if kind == "function":
        return {"type": "function", "function": {"name": _str(choice, "name", "tool_choice")}}
    if kind == "allowed_tools" and choice.get("mode") in ("auto", "required"):
        # Chat Completions has no twin: send only the allowed functions
        tools = choice.get("tools") or []
        if not isinstance(tools, list):
            raise BadRequest("tools must be an array", param="tool_choice.tools")
        allowed = {_text(t.get("name")) for t in tools if isinstance(t, dict)}
        functions[:] = [f for f in functions if f["function"]["name"] in allowed]
        return choice["mode"]
    if kind in BUILT_IN_TOOLS:
        raise unsupported(f"the built-in tool {kind!r}", "tool_choice", "unsupported_tool")
    raise BadRequest("unsupported tool_choice", param="tool_choice")


def _format(text: Any, out: dict) -> None:
    fmt = text.get("format") if isinstance(text, dict) else None
    if fmt is None:
        return
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "text":
        return
    if kind == "json_object":
        out["response_format"] = {"type": "json_object"}
    elif kind == "json_schema":
        schema: dict[str, Any] = {"name": _str(fmt, "name", "text.format")}
        if not isinstance(fmt.get("schema"), dict):
            raise BadRequest("schema must be an object", param="text.format.schema")
        for field in ("schema", "strict", "description"):
            if fmt.get(field) is not None:
                schema[field] = fmt[field]
        out["response_format"] = {"type": "json_schema", "json_schema": schema}
    else:
        raise BadRequest(f"unknown text.format type {kind!r}", param="text.format.type")


def _sampling(req: dict, out: dict) -> None:
    for field in ("temperature", "top_p", "user"):
        if req.get(field) is not None:
            out[field] = req[field]
    limit = req.get("max_output_tokens")
    if limit is not None:
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise BadRequest("max_output_tokens must be a positive integer",
                             param="max_output_tokens")
        out["max_tokens"] = limit
    reasoning = req.get("reasoning")
    if isinstance(reasoning, dict) and reasoning.get("effort") is not None:
        out["reasoning_effort"] = reasoning["effort"]
    if req.get("top_logprobs"):
        out["logprobs"] = True
        out["top_logprobs"] = req["top_logprobs"]


class Translator(ResponseStream):
    """One /v1/responses request translated to Chat Completions (the Translator
    Protocol): the reply's halves are Reply.whole and ResponseStream's feed/close/cut."""

    upstream_path = CHAT_PATH
    media_type = "text/event-stream"

    def __init__(self, req: dict) -> None:
        self.chat = to_chat(req)  # first: it refuses a body without a model
        super().__init__(req)
        self.stream = bool(req.get("stream"))

    def request(self) -> bytes:
        return _encode(self.chat)


def translator(body: bytes) -> Translator:
    """The Factory of /v1/responses (eldric.wire.translate.TRANSLATED)."""
    try:
        req = _decode(body)
    except msgspec.DecodeError as exc:
        raise BadRequest(f"the body is not JSON: {exc}") from None
    except RecursionError:  # msgspec's bound on nesting: a body no API would take
        raise BadRequest("the body is nested too deeply") from None
    if not isinstance(req, dict):
        raise BadRequest("the request body must be a JSON object")
    return Translator(req)
