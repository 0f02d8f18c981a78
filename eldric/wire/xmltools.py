"""XML tool emulation: OpenAI tool calling for a backend whose chat has none.

A chat -> chat Translator (eldric.wire.translate): the request's ``tools`` go into the
system prompt in the Hermes format that Qwen2.5 and NousResearch's Hermes models are
trained on (https://qwen.readthedocs.io/en/latest/framework/function_call.html, "Hermes
Style Tool Use"; https://github.com/NousResearch/Hermes-Function-Calling), and the
model's ``<tool_call>{"name": …, "arguments": {…}}</tool_call>`` blocks come back as
OpenAI ``tool_calls`` with finish_reason ``tool_calls``, whole replies and streams alike
(eldric.wire.xmltools_scan). The conversation's earlier turns are rendered the same way:
an assistant turn's ``tool_calls`` as its ``<tool_call>`` blocks, ``tool`` results as a
user turn of ``<tool_response>`` blocks, so a backend that knows no tool roles gets a
plain user/assistant chat. Everything else in the request and the reply (sampling, ids,
usage, a backend's own fields) passes untouched. The format is documented for operators
in docs/backends.md ("XML tool emulation").

``tool_choice``: ``none`` leaves the tools out of the prompt; ``required`` and a named
function say so in it and, where the backend continues a final assistant message
(``prefill``: llama.cpp does), start the model's reply with ``<tool_call>`` (and the
named function's name), which a small model needs to follow the format at all.

Pure, no I/O; the roles decide where it applies (a kind or adapter with ``tools="xml"``,
a model matched by a per-model setting) and compose it with a client API's translator
(eldric.wire.translate.chain).
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Mapping
from typing import Any, overload

import msgspec

from eldric.errors import BadRequest
from eldric.wire.native import chat_in, chat_out
from eldric.wire.openai_reply import json_object, sse_data
from eldric.wire.translate import Translator, chain
from eldric.wire.xmltools_scan import CLOSE, OPEN, Call, Piece, Scanner

_decode = msgspec.json.decode
_encode = msgspec.json.encode

# The request fields of native tool calling, which a backend without it may refuse.
_TOOL_FIELDS = ("tools", "tool_choice", "parallel_tool_calls")

# The line that says a system prompt holds the emulation's tools (prompted()).
_MARK = "You are provided with function signatures within <tools></tools> XML tags:"

_PROMPT = """# Tools

You may call one or more functions to assist with the user query.

""" + _MARK + """
<tools>
{tools}
</tools>

For each function call, return a json object with function name and arguments within \
<tool_call></tool_call> XML tags:
<tool_call>
{{"name": <function-name>, "arguments": <args-json-object>}}
</tool_call>
For example:
<tool_call>
{example}
</tool_call>"""


def wanted(body: bytes) -> bool:
    """Whether a chat body needs the emulation at all: tools offered, or tool turns in
    its history. One byte search (``"tool`` begins ``"tools"``, ``"tool_calls"`` and the
    role ``"tool"``), so a request without them pays nothing more; a false mark (a
    ``"toolbox"`` in the text) costs a decode that finds nothing (emulation())."""
    return b'"tool' in body


def prompted(system: str | None) -> bool:
    """Whether a system prompt holds the emulation's tools section (a backend whose
    request cannot carry the system prompt cannot carry the tools either)."""
    return system is not None and _MARK in system


def prompt(tools: list[chat_in.Tool], choice: str) -> str:
    """The system prompt's tools section (the format above)."""
    listed = "\n".join(json.dumps({"type": "function", "function": {
        "name": t.name, "description": t.description or "", "parameters": t.parameters}})
        for t in tools)
    first = next((t for t in tools if t.name == choice), tools[0])
    text = _PROMPT.format(tools=listed, example=_call_text(first.name, _example(first)))
    if choice == "required":
        text += "\nYou must call one of these functions now."
    elif choice not in ("auto", "none"):
        text += f"\nYou must call the function {choice} now."
    return text


def _example(tool: chat_in.Tool) -> dict:
    """The tool's required arguments with placeholder values: a pattern to copy."""
    props = tool.parameters.get("properties")
    props = props if isinstance(props, dict) else {}
    req = tool.parameters.get("required")
    names = [n for n in req if n in props] if isinstance(req, list) else list(props)[:1]
    return {n: "..." for n in names}


def _call_text(name: str, arguments: Any) -> str:
    # spaced as the format's own examples are: what the model sees is what it copies
    return json.dumps({"name": name, "arguments": arguments})


def prefill_of(tools: list[chat_in.Tool], choice: str) -> str:
    """The start of the model's reply where tool_choice demands a call ("" where not):
    ``<tool_call>`` and, for a named function, its name and its first required
    argument's name (and the opening quote of a string), so that what is left for the
    model is a value: a 135M model given less wanders off into a schema of its own."""
    if choice == "required":
        return OPEN + '\n{"name": "'
    tool = next((t for t in tools if t.name == choice), None)
    if tool is None:  # auto, none
        return ""
    text = OPEN + '\n{"name": ' + json.dumps(choice) + ', "arguments": {'
    first = next(iter(_example(tool)), None)
    if first is not None:
        prop = tool.parameters["properties"][first]
        quote = '"' if isinstance(prop, dict) and prop.get("type") == "string" else ""
        text += json.dumps(first) + ": " + quote
    return text


class XmlTools:
    """One chat request's emulation (a Translator, chat -> chat)."""

    upstream_path = "/v1/chat/completions"
    media_type = "text/event-stream"

    def __init__(self, body: dict, *, prefill: bool = False):
        conv = chat_in.read(body)  # checked once: a 400 naming the parameter
        self.model = conv.model
        self.stream = conv.stream
        offered = conv.tools if conv.tool_choice != "none" else []
        self._names = frozenset(t.name for t in offered)
        self._prefix = prefill_of(offered, conv.tool_choice) if prefill else ""
        self._body = _rendered(body, prompt(offered, conv.tool_choice) if offered else None,
                               self._prefix)
        self._scan = Scanner(self._names, self._prefix)
        self._envelope: dict | None = None  # the last chunk seen: ids for what close() sends
        self._finished = False
        self._sent = 0  # tool calls streamed so far (the next one's index)
        # whether the client asked for the usage chunk: a relay may ask the backend for
        # it to count tokens (the cloud role does), and it is then read here, not sent
        self._client_usage = conv.include_usage
        self.usage: tuple[int, int] | None = None  # (prompt, completion) once the reply said

    def request(self) -> bytes:
        return _encode(self._body)

    def whole(self, body: bytes) -> bytes:
        reply = _decode(body)
        choices = reply.get("choices") if isinstance(reply, dict) else None
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise ValueError("not a chat.completion")
        self._count(reply)
        message = choices[0].get("message")
        if not isinstance(message, dict):
            raise ValueError("a choice without its message")
        content = message.get("content")
        pieces = self._scan.feed(content if isinstance(content, str) else "")
        pieces += self._scan.close()
        text = "".join(p for p in pieces if isinstance(p, str))
        calls = [chat_out.tool_call(p.name, p.arguments) for p in pieces if isinstance(p, Call)]
        if calls:
            message["content"] = text if text.strip() else None
            message["tool_calls"] = calls
            choices[0]["finish_reason"] = "tool_calls"
        elif content is not None:
            message["content"] = text
        return _encode(reply)

    def feed(self, event: bytes) -> bytes:
        data = sse_data(event)
        if data is None or data[:1] != b"{":  # [DONE], comments: as they came
            return event + b"\n\n"
        chunk = _decode(data)
        choices = chunk.get("choices")
        if choices == [] and self._count(chunk) and not self._client_usage:
            return b""  # the usage chunk the client did not ask for
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            return event + b"\n\n"  # the usage chunk, an error object
        self._envelope = chunk
        choice = choices[0]
        delta = choice.get("delta")
        delta = delta if isinstance(delta, dict) else {}
        content = delta.pop("content", None)
        finish = choice.get("finish_reason")
        pieces = self._scan.feed(content) if isinstance(content, str) else []
        if finish is not None:
            pieces += self._scan.close()
        out = self._pieces(chunk, pieces, delta)
        if finish is not None:
            self._finished = True
            reason = "tool_calls" if self._scan.calls else finish
            out.append(_chunk(chunk, {}, reason))
        return b"".join(out)

    def close(self) -> bytes:
        """The stream ended: text still held (a stream cut before its finish chunk)."""
        if self._finished or self._envelope is None:
            return b""
        return b"".join(self._pieces(self._envelope, self._scan.close(), {}))

    def cut(self, status: int, message: str, code: str) -> bytes:
        return chat_out.error_event(status, message, code)

    def _count(self, obj: dict) -> bool:
        """Keep a reply's or chunk's usage; whether it had one."""
        u = obj.get("usage")
        if not isinstance(u, dict):
            return False
        prompt, done = u.get("prompt_tokens"), u.get("completion_tokens")
        if isinstance(prompt, int) and isinstance(done, int):
            self.usage = (prompt, done)
        return True

    def _pieces(self, chunk: dict, pieces: list[Piece], rest: dict) -> list[bytes]:
        """The chunks for an upstream chunk's released pieces; `rest` is what else its
        delta held (role, reasoning_content), sent with the first of them, or alone."""
        out = []
        for p in pieces:
            if isinstance(p, str):
                delta = {**rest, "content": p}
            else:
                delta = {**rest, "tool_calls": [{
                    "index": self._sent, **chat_out.tool_call(p.name, p.arguments)}]}
                self._sent += 1
            out.append(_chunk(chunk, delta, None))
            rest = {}
        if rest:
            out.append(_chunk(chunk, rest, None))
        return out


def _chunk(chunk: dict, delta: dict, finish: str | None) -> bytes:
    """The upstream chunk (its id, created, model, own fields) with another delta."""
    choice = {**chunk["choices"][0], "delta": delta, "finish_reason": finish}
    return chat_out.sse({**chunk, "choices": [choice]})


def _rendered(body: dict, tools_prompt: str | None, prefill: str) -> dict:
    """The request without native tool fields: the tools in the system prompt, tool
    calls and results as text, the prefill as a last assistant message."""
    out = {k: v for k, v in body.items() if k not in _TOOL_FIELDS}
    msgs: list[dict] = []
    for m in body["messages"]:  # chat_in.read checked their shapes
        role = m.get("role")
        if role == "tool":
            block = f"<tool_response>\n{_text(m.get('content'))}\n</tool_response>"
            if msgs and msgs[-1].get("role") == "user" and msgs[-1].get("_results"):
                msgs[-1]["content"] += "\n" + block  # the results of one turn's calls
            else:
                msgs.append({"role": "user", "content": block, "_results": True})
        elif role == "assistant" and m.get("tool_calls"):
            calls = "\n".join(
                f"{OPEN}\n{_call_text(c['function']['name'], _args(c['function']))}\n{CLOSE}"
                for c in m["tool_calls"])
            text = _text(m.get("content"))
            msgs.append({**{k: v for k, v in m.items() if k != "tool_calls"},
                         "content": f"{text}\n{calls}" if text else calls})
        else:
            msgs.append(m)
    for m in msgs:
        m.pop("_results", None)
    if tools_prompt is not None:
        _add_system(msgs, tools_prompt)
    if prefill:
        msgs.append({"role": "assistant", "content": prefill})
    out["messages"] = msgs
    return out


def _add_system(msgs: list[dict], section: str) -> None:
    """The tools section after the first system message's text (one system message:
    many chat templates take only one, first), or as the system message."""
    first = msgs[0] if msgs else None
    if first is not None and first.get("role") in ("system", "developer"):
        text = _text(first.get("content"))
        msgs[0] = {**first, "content": f"{text}\n\n{section}" if text else section}
    else:
        msgs.insert(0, {"role": "system", "content": section})


def _text(content: Any) -> str:
    """A message's text: a string, or its text parts joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p["text"] for p in content
                       if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def _args(fn: dict) -> Any:
    return json_object(fn.get("arguments"))


def emulation(body: bytes, *, prefill: bool = False) -> XmlTools | None:
    """The emulation of a chat body, None where it needs none (no tools, no tool turns).
    BadRequest (400) for a body that is not a chat request's JSON."""
    if not wanted(body):
        return None
    try:
        obj = _decode(body)
    except msgspec.DecodeError:
        raise BadRequest("the request body is not valid JSON") from None
    if not isinstance(obj, dict):
        raise BadRequest("the request body must be a JSON object")
    messages = obj.get("messages")
    if not obj.get("tools") and not (isinstance(messages, list) and any(
            isinstance(m, dict) and (m.get("role") == "tool" or m.get("tool_calls"))
            for m in messages)):
        return None
    return XmlTools(obj, prefill=prefill)


def matches(model: str, globs: tuple[str, ...] | list[str]) -> bool:
    """Whether a per-model setting (``--xml-tools-models``, a cloud backend's
    ``options.xml_tools``) names `model`: shell-style globs, ``*`` for every model."""
    return any(fnmatch.fnmatchcase(model, g) for g in globs)


def applies(tools: str, options: Mapping[str, Any], model: str) -> bool:
    """Whether a backend's requests for `model` are emulated: its kind or adapter has no
    native tools (``tools == "xml"``), or its options say so for every model
    (``"tools": "xml"``) or for the models their ``"xml_tools"`` globs name."""
    globs = options.get("xml_tools")
    return tools == "xml" or options.get("tools") == "xml" or (
        isinstance(globs, list) and matches(model, [g for g in globs if isinstance(g, str)]))


@overload
def wrapped(translate: Translator, chat: bytes, *,
            prefill: bool = ...) -> tuple[bytes, Translator]: ...
@overload
def wrapped(translate: None, chat: bytes, *,
            prefill: bool = ...) -> tuple[bytes, Translator | None]: ...
def wrapped(translate: Translator | None, chat: bytes, *,
            prefill: bool = False) -> tuple[bytes, Translator | None]:
    """(the body to send, the translator) for a chat body whose tools are emulated: the
    client API's translator (if any) chained before the emulation; unchanged where the
    body needs none."""
    x = emulation(chat, prefill=prefill)
    if x is None:
        return chat, translate
    return x.request(), x if translate is None else chain(translate, x)
