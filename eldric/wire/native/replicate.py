"""Replicate's predictions API <-> OpenAI's chat: the pure translation (no I/O).

Create (https://replicate.com/docs/reference/http#predictions.create,
/docs/topics/predictions/create-a-prediction): ``POST /v1/models/{owner}/{name}/predictions``
``{input, stream}`` for an official model, ``POST /v1/predictions`` ``{version, input}``
for a version (the backend's ``version`` option, or a model named ``owner/name:version``),
``POST /v1/deployments/{owner}/{name}/predictions`` for a deployment (``deployment``
option). The reply is a prediction ``{id, model, version, input, output, logs, error,
status: starting|processing|succeeded|failed|canceled, metrics, urls: {get, cancel,
stream, web}}``.

- A whole reply: sent with ``Prefer: wait=N`` (sync mode: the request is held up to N
  seconds, 60 at most; option ``wait``). A prediction that is still ``starting`` or
  ``processing`` then is asked again at ``urls.get`` (``follow``) until it is done, within
  the call's timeout. ``output`` of a language model is a list of text pieces, joined.
- A stream: created with ``"stream": true``, then ``GET urls.stream`` with ``Accept:
  text/event-stream`` (https://replicate.com/docs/topics/predictions/streaming): events
  ``output`` (plain text, data lines joined by newlines), ``logs`` (ignored), ``error``
  (JSON ``{"detail"}`` or text) and ``done`` (JSON ``{}``, or ``{"reason": "canceled"}`` /
  ``{"reason": "error"}``).
- Cancel: ``POST urls.cancel`` (https://replicate.com/docs/reference/http#predictions.cancel),
  sent by the call when the client leaves before the prediction is done (``cancel``).
- Errors: RFC 7807 problem JSON ``{title, detail, status}``; 422 (invalid input) is the
  client's 400, 404 the model's, 429 and 5xx fail over.

The input is a language model's usual one on Replicate (meta/meta-llama-3-*-instruct,
mistralai/*): ``prompt``, ``system_prompt``, ``max_tokens``, ``temperature``, ``top_p``,
``top_k``, ``seed``, ``presence_penalty``, ``frequency_penalty``, ``stop_sequences`` (a
comma-separated string). Option ``names`` renames or (with null) drops fields for a model
whose inputs differ (``{"max_tokens": "max_new_tokens"}``); option ``input`` adds fixed
fields (``prompt_template``…). A conversation of more than one turn is sent as a
transcript (``User: …`` / ``Assistant: …`` lines). Tools are emulated in XML by eldric
(the adapter says ``tools="xml"``); images are refused (400): a vision model's image input
is not a chat part. Token counts come from ``metrics.input_token_count`` /
``output_token_count`` where the model reports them (whole replies; a stream says none).
Shapes checked against replicate/replicate-python (prediction.py, stream.py) and
replicate/replicate-javascript (lib/stream.js and its tests).
"""

from __future__ import annotations

import dataclasses
from typing import Any
from urllib.parse import quote

import msgspec

from eldric.wire.native.outbound import Context, Outbound
from eldric.errors import BadRequest, error_json
from eldric.wire.anthropic_shared import sse_fields
from eldric.wire.native import chat_in, chat_out
from eldric.wire.native.refused import Refused

_encode = msgspec.json.encode
_decode = msgspec.json.decode

PENDING = ("starting", "processing")
DEFAULT_WAIT = 60  # seconds: the most Prefer: wait takes


def prediction_input(conv: chat_in.Conversation, options: dict) -> dict:
    """The prediction's ``input`` for a conversation."""
    if conv.has_images:
        raise BadRequest("this Replicate backend takes no images in chat messages",
                         param="messages", code="vision_unsupported")
    if conv.tools:
        raise BadRequest("this Replicate backend has no native tool calls (eldric's XML tool "
                         "emulation was not applied)", param="tools")
    users = [t for t in conv.turns if t.role == "user"]
    if len(conv.turns) == 1 and users:
        prompt = users[0].text
    else:
        prompt = dataclasses.replace(conv, system=None).prompt()  # the system goes apart
    s = conv.sampling
    fields: dict[str, Any] = {
        "prompt": prompt, "system_prompt": conv.system, "max_tokens": s.max_tokens,
        "temperature": s.temperature, "top_p": s.top_p, "top_k": s.top_k, "seed": s.seed,
        "presence_penalty": s.presence_penalty, "frequency_penalty": s.frequency_penalty,
        "stop_sequences": ",".join(s.stop) if s.stop else None}
    names = options.get("names") if isinstance(options.get("names"), dict) else {}
    out: dict[str, Any] = {}
    for key, value in fields.items():
        name = names.get(key, key)
        if value is not None and name:
            out[name] = value
    extra = options.get("input")
    if isinstance(extra, dict):
        out.update(extra)
    return out


def create(model: str, options: dict, input_: dict, *, stream: bool) -> Outbound:
    """The create request: by deployment, by version, or by an official model's name."""
    body: dict[str, Any] = {"input": input_}
    if stream:
        body["stream"] = True
    name, _, version = model.partition(":")
    version = options.get("version") or version
    deployment = options.get("deployment")
    if deployment:
        path = f"/v1/deployments/{_owner_name(str(deployment), 'deployment')}/predictions"
    elif version:
        path, body = "/v1/predictions", {"version": version, **body}
    else:
        path = f"/v1/models/{_owner_name(name, 'model')}/predictions"
    headers = {"Content-Type": "application/json"}
    if not stream:
        wait = options.get("wait", DEFAULT_WAIT)
        headers["Prefer"] = f"wait={max(1, min(int(wait), DEFAULT_WAIT))}"
    return Outbound(path, _encode(body), headers=headers, framing="sse")


def _owner_name(ref: str, what: str) -> str:
    owner, _, name = ref.partition("/")
    if not owner or not name or "/" in name:
        raise BadRequest(f"a Replicate {what} is named owner/name, not {ref!r}", param="model")
    return f"{quote(owner, safe='')}/{quote(name, safe='')}"


def prediction(raw: bytes) -> dict:
    try:
        p = _decode(raw)
    except msgspec.DecodeError as e:
        raise ValueError(f"Replicate's reply is not JSON: {e}") from None
    if not isinstance(p, dict) or not isinstance(p.get("status"), str):
        raise ValueError("Replicate's reply is not a prediction (no status)")
    return p


def output_text(output: Any) -> str:
    """A language model's output: a list of text pieces (joined), or one string."""
    if output is None:
        return ""
    if isinstance(output, str):
        return output
    if isinstance(output, list) and all(isinstance(x, str) for x in output):
        return "".join(output)
    return _encode(output).decode()  # a model whose output is not text: its JSON


def usage_of(p: dict) -> tuple[int, int] | None:
    m = p.get("metrics")
    if isinstance(m, dict) and isinstance(m.get("input_token_count"), int) \
            and isinstance(m.get("output_token_count"), int):
        return m["input_token_count"], m["output_token_count"]
    return None


def error(status: int, raw: bytes) -> tuple[int, bytes]:
    """A Replicate problem reply -> (status, OpenAI error JSON). 422 is the request's
    fault (an input the model refuses): 400."""
    status = 400 if status == 422 else (502 if status < 400 else status)
    return status, chat_out.api_error(status, raw, "detail", "title")


class ChatEgress:
    """One /v1/chat/completions request as a Replicate prediction."""

    def __init__(self, body: dict, ctx: Context):
        self.conv = chat_in.read(body, model=ctx.model)
        self.stream = self.conv.stream
        self._create = create(self.conv.model, dict(ctx.options),
                              prediction_input(self.conv, dict(ctx.options)), stream=self.stream)
        self.done = False
        self.usage: tuple[int, int] | None = None
        self._urls: dict = {}
        self._failed = False
        self._writer = chat_out.ChunkWriter(
            self.conv.model, include_usage=self.conv.include_usage or ctx.include_usage)

    def outbound(self) -> Outbound:
        return self._create

    def _keep_urls(self, p: dict) -> None:
        if isinstance(p.get("urls"), dict):
            self._urls = {**self._urls, **p["urls"]}

    def follow(self, raw: bytes) -> Outbound | None:
        """A stream: its URL. A whole reply still pending: where to ask again. ValueError:
        the prediction failed, or a stream was asked of a model that has none."""
        p = prediction(raw)
        self._keep_urls(p)
        if p["status"] in ("failed", "canceled"):
            raise ValueError(f"Replicate's prediction {p['status']}: {p.get('error') or ''}")
        if self.stream:
            url = self._urls.get("stream")
            if not isinstance(url, str) or not url:
                raise ValueError("this Replicate model does not stream (no urls.stream)")
            return Outbound("", method="GET", url=url, framing="sse", from_reply=True,
                            headers={"Accept": "text/event-stream", "Cache-Control": "no-store"})
        if p["status"] in PENDING and isinstance(self._urls.get("get"), str):
            return Outbound("", method="GET", url=self._urls["get"], framing="json",
                            from_reply=True,
                            headers={"Accept": "application/json"})
        return None

    def cancel(self, raw: bytes | None = None) -> Outbound | None:
        """The request that cancels the prediction (the client left before it was done)."""
        if raw:
            try:
                self._keep_urls(prediction(raw))
            except ValueError:
                pass
        url = self._urls.get("cancel")
        if self.done or not isinstance(url, str) or not url:
            return None
        return Outbound("", method="POST", url=url, framing="json", from_reply=True)

    def whole(self, raw: bytes) -> bytes:
        p = prediction(raw)
        self._keep_urls(p)
        if p["status"] != "succeeded":
            detail = f": {p['error']}" if p.get("error") else ""
            raise ValueError(f"Replicate's prediction ended {p['status']}{detail}")
        self.done = True
        self.usage = usage_of(p)
        prompt, completion = self.usage or (None, None)
        return _encode(chat_out.completion(
            self.conv.model, text=output_text(p.get("output")), finish_reason="stop",
            prompt_tokens=prompt, completion_tokens=completion))

    def feed(self, frame: bytes) -> list[bytes]:
        if self.done:
            return []
        name, data = sse_fields(frame)
        if name == "output":
            return self._writer.text((data or b"").decode("utf-8", "replace"))
        if name == "error":
            return self._fail(_detail(data) or "the prediction failed")
        if name == "done":
            reason = _json(data).get("reason")
            if reason in ("canceled", "error"):
                return self._fail(f"Replicate's prediction ended: {reason}")
            self.done = True
            return self._writer.finish("stop")
        return []  # logs, comments

    def _fail(self, message: str) -> list[bytes]:
        if not self._writer.started:  # nothing sent: a 502 the call fails over from
            raise Refused(502, error_json(502, message, code="upstream_error"))
        self.done = self._failed = True
        return [chat_out.error_event(502, message, "upstream_error")]

    def finish(self) -> list[bytes]:
        if self._failed:
            return []
        return self._writer.finish("stop") + self._writer.end(self.usage)

    def error(self, status: int, raw: bytes) -> tuple[int, bytes]:
        return error(status, raw)


def _json(data: bytes | None) -> dict:
    try:
        obj = _decode(data or b"{}")
    except msgspec.DecodeError:
        return {}
    return obj if isinstance(obj, dict) else {}


def _detail(data: bytes | None) -> str:
    obj = _json(data)
    if obj:
        return str(obj.get("detail") or obj.get("error") or obj.get("title") or "")
    return (data or b"").decode("utf-8", "replace").strip()
