"""OpenAI chat -> a configured JSON request, a configured path into the reply -> OpenAI.

For model servers that host an LLM behind a generic predict endpoint (TorchServe's
``/predictions/{model}``, TensorFlow Serving's ``/v1/models/{m}:predict``, Seldon /
MLServer's v2 ``/v2/models/{m}/infer``, an Azure ML online endpoint's ``/score``, an
ONNX Runtime server, a Meta LCM or VL-JEPA server someone deployed): their request and
reply bodies are whatever the deployed handler makes of them, so the operator writes the
shape down once in the backend's options (docs/backends.md has a worked example each):

``request``
    a JSON value; a string that is exactly ``"{{name}}"`` becomes that value as JSON (a
    number stays a number, ``messages`` an array; a value the request lacks drops the
    key from its object, or is null in an array); ``{{name}}`` inside a longer string
    is replaced by the value's text. Names: ``prompt`` (the chat as ``System:`` /
    ``User:`` / ``Assistant:`` lines ending in ``Assistant:``), ``messages``
    (``[{"role", "content"}]``, text only), ``system``, ``last_user`` (the last user
    message's text), ``model``, ``max_tokens``, ``temperature``, ``top_p``, ``top_k``,
    ``seed``, ``stop`` (an array), ``stream`` (a boolean).
``path``
    below the backend's URL, ``{model}`` replaced (``/predictions/{model}``).
``response``
    a dotted path to the generated text in the reply: ``predictions.0.generated_text``
    (a number indexes an array; a string met before the path's end is read as JSON;
    ``.`` is the whole reply, a text/plain one too). ``finish`` (optional): a path to a finish reason
    (``length`` stays length, anything else is stop). ``usage`` (optional):
    ``{"prompt_tokens": path, "completion_tokens": path}``. ``strip_prompt``: drop the
    prompt from the text's start (a Hugging Face pipeline with ``return_full_text``).
    ``headers``: sent with every request (Azure ML's ``azureml-model-deployment``).
``stream``
    null: the API streams nothing; a streamed chat is answered from the whole reply as
    one text chunk. Or ``{"path", "request" (default: the request above), "framing":
    "sse"|"ndjson", "text": a path to each event's new text, "done": a path present
    (and not null/false) in the last event, "end": the data of an end event
    ("[DONE]")}``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import msgspec

from eldric.errors import BadRequest, EldricError
from eldric.wire.native import chat_in
from eldric.wire.native.outbound import Context, Outbound
from eldric.wire.native.text import TextEgress, json_of, sse_data
from eldric.wire import xmltools

API = "template backend"
_encode = msgspec.json.encode
_decode = msgspec.json.decode
NAMES = ("prompt", "messages", "system", "last_user", "model", "max_tokens", "temperature",
         "top_p", "top_k", "seed", "stop", "stream")
_WHOLE = re.compile(r"^\{\{\s*(\w+)\s*\}\}$")
_PART = re.compile(r"\{\{\s*(\w+)\s*\}\}")
_DROP = object()


class Misconfigured(EldricError):
    """The backend's template options are wrong: the operator's to fix, not the client's."""

    status = 500
    code = "backend_misconfigured"


def check(options: Mapping[str, Any]) -> None:
    """Misconfigured naming the option for a template that cannot work: the adapter's
    config check (a ConfigError at start-up, or when the backend is added), and again
    at each request (cheap) for options that reached it some other way."""
    if not isinstance(options.get("path"), str) or not options["path"].startswith("/"):
        raise Misconfigured("template backend: option path must be a path below the "
                            "backend's URL (\"/predictions/{model}\")")
    if "request" not in options:
        raise Misconfigured("template backend: option request (the JSON body) is missing")
    if not isinstance(options.get("response"), str) or not options["response"]:
        raise Misconfigured("template backend: option response (a dotted path to the "
                            "text in the reply) is missing")
    _names(options["request"])
    # what outbound() and the reply's reading use, by type: a wrong one would be a
    # traceback at each request otherwise
    method = options.get("method", "POST")
    if not isinstance(method, str) or method.upper() not in ("POST", "PUT", "GET"):
        raise Misconfigured("template backend: option method must be POST, PUT or GET")
    headers = options.get("headers") or {}
    if not isinstance(headers, dict) or not all(
            isinstance(v, (str, int, float)) for v in headers.values()):
        raise Misconfigured("template backend: option headers must be an object of "
                            "header names and string values")
    if options.get("finish") is not None and not isinstance(options["finish"], str):
        raise Misconfigured("template backend: option finish must be a dotted path")
    usage = options.get("usage") or {}
    if not isinstance(usage, dict) or not all(
            k in ("prompt_tokens", "completion_tokens") and isinstance(v, str) and v
            for k, v in usage.items()):
        raise Misconfigured("template backend: option usage must be {\"prompt_tokens\": "
                            "a dotted path, \"completion_tokens\": a dotted path}")
    stream = options.get("stream")
    if stream is not None:
        if not isinstance(stream, dict) or stream.get("framing", "sse") not in ("sse", "ndjson") \
                or not isinstance(stream.get("text"), str):
            raise Misconfigured("template backend: option stream must be null or {path, "
                                "framing: sse|ndjson, text: a dotted path, done, end}")
        path = stream.get("path")
        if path is not None and not (isinstance(path, str) and path.startswith("/")):
            raise Misconfigured("template backend: option stream.path must be a path "
                                "below the backend's URL")
        if stream.get("done") is not None and not isinstance(stream["done"], str):
            raise Misconfigured("template backend: option stream.done must be a dotted path")
        if "request" in stream:
            _names(stream["request"])


# The placeholders that carry the system prompt (and with it the emulated tools).
_CARRIERS = frozenset(("prompt", "messages", "system"))


def _used(tpl: Any) -> list[str]:
    """The placeholders a template uses, in order."""
    if isinstance(tpl, str):
        return _PART.findall(tpl)
    if isinstance(tpl, dict):
        return [n for v in tpl.values() for n in _used(v)]
    if isinstance(tpl, list):
        return [n for v in tpl for n in _used(v)]
    return []


def _names(tpl: Any) -> None:
    if isinstance(tpl, str):
        for name in _PART.findall(tpl):
            if name not in NAMES:
                raise Misconfigured(f"template backend: unknown placeholder {{{{{name}}}}} "
                                    f"(known: {', '.join(NAMES)})")
    elif isinstance(tpl, dict):
        for v in tpl.values():
            _names(v)
    elif isinstance(tpl, list):
        for v in tpl:
            _names(v)


def values(conv: chat_in.Conversation, stream: bool) -> dict[str, Any]:
    """Every placeholder's value for one request."""
    s = conv.sampling
    messages = [{"role": "system", "content": conv.system}] if conv.system else []
    for t in conv.turns:
        if t.role == "tool":
            messages.append({"role": "tool", "content": "\n".join(
                p.content for p in t.parts if isinstance(p, chat_in.ToolResult))})
        else:
            messages.append({"role": t.role, "content": t.text})
    users = [t.text for t in conv.turns if t.role == "user"]
    return {"prompt": conv.prompt(), "messages": messages, "system": conv.system,
            "last_user": users[-1] if users else "", "model": conv.model,
            "max_tokens": s.max_tokens, "temperature": s.temperature, "top_p": s.top_p,
            "top_k": s.top_k, "seed": s.seed, "stop": s.stop or None, "stream": stream}


def fill(tpl: Any, vals: Mapping[str, Any]) -> Any:
    """The template with its placeholders replaced (see the module docstring)."""
    if isinstance(tpl, str):
        m = _WHOLE.match(tpl)
        if m:
            v = vals[m.group(1)]
            return _DROP if v is None else v
        return _PART.sub(lambda m: _text(vals[m.group(1)]), tpl)
    if isinstance(tpl, dict):
        out = {}
        for k, v in tpl.items():
            filled = fill(v, vals)
            if filled is not _DROP:
                out[k] = filled
        return out
    if isinstance(tpl, list):
        return [None if (f := fill(v, vals)) is _DROP else f for v in tpl]
    return tpl


def _text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    return _encode(v).decode()


def at(obj: Any, path: str) -> tuple[bool, Any]:
    """(found, value) at a dotted path: keys of objects, numbers index arrays; a string
    met before the path's end is read as JSON (MLServer's Hugging Face runtime answers
    each output as a JSON string); ``.`` is the reply itself."""
    if path == ".":
        return True, obj
    for part in path.split("."):
        if isinstance(obj, str):
            try:
                obj = _decode(obj)
            except (msgspec.DecodeError, RecursionError):
                return False, None
        if isinstance(obj, dict) and part in obj:
            obj = obj[part]
        elif isinstance(obj, list) and part.lstrip("-").isdigit() and -len(obj) <= int(part) < len(obj):
            obj = obj[int(part)]
        else:
            return False, None
    return True, obj


class TemplateEgress(TextEgress):
    api = API

    def __init__(self, body: dict, ctx: Context):
        check(ctx.options)
        super().__init__(body, ctx)
        conv = self.conv
        self.streamed = ctx.options.get("stream") if self.stream else None
        # A stream without an end marker (no done, no end) ends when the reply does.
        sc = self.streamed or {}
        self.ends_with_body = bool(self.streamed) and not (sc.get("done") or sc.get("end"))
        self._prompt = conv.prompt()
        sc = self.streamed
        tpl = sc["request"] if sc and "request" in sc else ctx.options["request"]
        if xmltools.prompted(conv.system) and not _CARRIERS & set(_used(tpl)):
            # the emulated tools are in the system prompt, which this template drops
            raise BadRequest(
                "this backend's template sends the model neither {{prompt}}, {{messages}} "
                f"nor {{{{system}}}} (only {', '.join('{{' + n + '}}' for n in _used(tpl))}"
                "), so the tools eldric emulates in the system prompt cannot reach it: send "
                "the request without tools, or give the template {{prompt}}",
                param="tools", code="tools_unsupported")

    def outbound(self) -> Outbound:
        o, sc = self.options, self.streamed
        tpl = sc["request"] if sc and "request" in sc else o["request"]
        body = fill(tpl, values(self.conv, bool(sc)))
        path = (sc.get("path") if sc else None) or o["path"]
        return Outbound(path=path.replace("{model}", quote(self.conv.model, safe="")),
                        body=_encode(body), method=o.get("method", "POST"),
                        headers={"Content-Type": "application/json",
                                 **{str(k): str(v) for k, v in (o.get("headers") or {}).items()}},
                        framing=(sc.get("framing", "sse") if sc else "json"))

    def _text_of(self, obj: Any) -> str:
        found, text = at(obj, self.options["response"])
        if not found or not isinstance(text, str):
            raise ValueError(f"{API}: the reply has no text at {self.options['response']}")
        if self.options.get("strip_prompt") and text.startswith(self._prompt):
            text = text[len(self._prompt):].lstrip(" ")
        return text

    def _counts(self, obj: Any, add: bool = False) -> None:
        paths = self.options.get("usage") or {}
        if paths:
            prompt = at(obj, paths["prompt_tokens"])[1] if "prompt_tokens" in paths else None
            completion = at(obj, paths["completion_tokens"])[1] \
                if "completion_tokens" in paths else None
            self.count(prompt, completion, add=add)

    def _finish_of(self, obj: Any) -> str:
        path = self.options.get("finish")
        return "length" if path and at(obj, path)[1] == "length" else "stop"

    def _body(self, raw: bytes) -> Any:
        """The reply decoded; with ``response: "."`` a reply that is not JSON is its
        text (TorchServe answers a handler's string as text/plain)."""
        if self.options["response"] == ".":
            try:
                return _decode(raw)
            except (msgspec.DecodeError, RecursionError):
                return raw.decode("utf-8", "replace")
        return json_of(raw, API)

    def whole(self, raw: bytes) -> bytes:
        obj = self._body(raw)
        text = self._text_of(obj)
        self._counts(obj)
        return self.reply(text, self._finish_of(obj))

    def feed(self, frame: bytes) -> list[bytes]:
        sc = self.streamed
        if not sc:  # framing json: the whole reply, once
            obj = self._body(frame)
            text = self._text_of(obj)
            self._counts(obj)
            return [*self.text(text), *self.end(self._finish_of(obj))]
        data = sse_data(frame) if sc.get("framing", "sse") == "sse" else frame.strip()
        if not data:
            return []
        if sc.get("end") is not None and data == str(sc["end"]).encode():
            return self.end("stop")
        obj = json_of(data, API)
        if isinstance(obj, dict) and "error" in obj and at(obj, sc["text"])[0] is False:
            return self.fail(502, f"{API}: {_message(obj['error'])}")
        found, piece = at(obj, sc["text"])
        out = self.text(piece) if found and isinstance(piece, str) else []
        self._counts(obj)
        done = sc.get("done")
        if done and at(obj, done)[1] not in (None, False):
            out += self.end(self._finish_of(obj))
        return out


def _message(err: Any) -> str:
    """An error value's message (a string, or an object with one)."""
    if isinstance(err, dict) and isinstance(err.get("message"), str):
        return err["message"]
    return err if isinstance(err, str) else _encode(err).decode()


def chat(body: dict, ctx: Context) -> TemplateEgress:
    return TemplateEgress(body, ctx)
