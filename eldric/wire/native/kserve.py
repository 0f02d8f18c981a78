"""OpenAI chat <-> KServe/Triton v2 *generate* (pure, no I/O).

The generate extension of the v2 (Open Inference) protocol, as Triton documents it:
https://github.com/triton-inference-server/server/blob/main/docs/protocol/extension_generate.md

- ``POST v2/models/{m}[/versions/{v}]/generate`` takes ``{"text_input": "…",
  "parameters": {…}}`` (parameter values are strings, numbers or booleans) and answers
  ``{"model_name", "model_version", "text_output"}``; "any additional properties in the
  request object are passed either as parameters or tensors based on model
  specification" — the ``inputs`` option adds such fields (the vLLM backend's
  ``exclude_input_in_output``, ``return_finish_reason``, ``return_num_input_tokens``,
  ``return_num_output_tokens``; TensorRT-LLM's ``max_tokens``, ``bad_words``…).
- ``…/generate_stream`` answers the same objects as SSE ``data:`` events, one per
  response (the vLLM and TensorRT-LLM backends send each new piece of text); an error
  after the first event comes as ``{"error": "…"}`` in an event with status 200.
- Errors before inference: an HTTP error status and ``{"error": "…"}``.

The chat is sent as one prompt (``Conversation.prompt()``); the output fields the vLLM
backend adds when asked (``finish_reason``, ``num_input_tokens``, ``num_output_tokens``,
https://github.com/triton-inference-server/vllm_backend/blob/main/docs/additional_outputs.md)
are read when present. The stream has no end marker of its own: only when the
``finish_reason`` output is requested (``inputs.return_finish_reason``) can a stream cut
short be told from one that ended; otherwise its end is taken as the end.

Model list: Triton's ``POST v2/repository/index`` (``[{"name", "version", "state"}]``,
https://github.com/triton-inference-server/server/blob/main/docs/protocol/extension_model_repository.md)
or KServe's ``GET v2/models`` (``{"models": [names]}``, kserve/protocol/rest/v2_endpoints.py);
health ``GET v2/health/ready`` (both).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import msgspec

from eldric.wire.native.outbound import Context, Outbound
from eldric.wire.native.text import TextEgress, json_of, one_stop

API = "KServe v2 generate"
_encode = msgspec.json.encode


def _scalar(v: Any) -> Any:
    """An output tensor of one element comes as the element or a one-element list."""
    if isinstance(v, list):
        return v[0] if len(v) == 1 else ("".join(v) if all(isinstance(x, str) for x in v)
                                         else None)
    return v


def _finish(v: Any) -> str | None:
    v = _scalar(v)
    if not isinstance(v, str) or not v:
        return None
    return "length" if v == "length" else "stop"  # vLLM's stop, length, abort


class KServeEgress(TextEgress):
    api = API

    def __init__(self, body: dict, ctx: Context):
        super().__init__(body, ctx)
        self.prompt = self.conv.prompt()
        inputs = ctx.options.get("inputs") or {}
        # Without the finish_reason output the stream's end is its only end.
        self.ends_with_body = not _truthy(inputs.get("return_finish_reason"))
        self._finish: str | None = None
        self._text: list[str] = []

    def outbound(self) -> Outbound:
        o = self.options
        s = self.conv.sampling
        params: dict[str, Any] = {}
        for name, value in (("max_tokens", s.max_tokens), ("temperature", s.temperature),
                            ("top_p", s.top_p), ("top_k", s.top_k), ("seed", s.seed),
                            ("presence_penalty", s.presence_penalty),
                            ("frequency_penalty", s.frequency_penalty),
                            ("stop", one_stop(self.conv, API))):
            if value is not None:
                params[name] = value
        if self.stream:
            params["stream"] = True  # a decoupled model (vLLM's) streams only when told
        params.update(o.get("parameters") or {})
        req: dict[str, Any] = {"text_input": self.prompt}
        if o.get("sampling_at") == "inputs":  # TensorRT-LLM's ensemble takes them as tensors
            req.update(params)
        elif params:
            req["parameters"] = params
        req.update(o.get("inputs") or {})
        model = quote(self.conv.model, safe="")
        version = o.get("version")
        base = f"/v2/models/{model}" + (f"/versions/{quote(str(version), safe='')}"
                                        if version else "")
        return Outbound(path=base + ("/generate_stream" if self.stream else "/generate"),
                        body=_encode(req), headers={"Content-Type": "application/json"},
                        framing="sse")

    def _read(self, obj: dict) -> str:
        self.count(_scalar(obj.get("num_input_tokens")), _scalar(obj.get("num_output_tokens")),
                   add=self.stream)
        fin = _finish(obj.get("finish_reason"))
        if fin:
            self._finish = fin
        text = _scalar(obj.get("text_output"))
        if text is not None and not isinstance(text, str):
            raise ValueError(f"{API}: text_output is not text")
        return text or ""

    def whole(self, raw: bytes) -> bytes:
        obj = json_of(raw, API)
        if not isinstance(obj, dict) or "text_output" not in obj:
            raise ValueError(f"{API}: the reply has no text_output")
        text = self._read(obj)
        # The vLLM backend answers prompt + output unless exclude_input_in_output is set.
        if text.startswith(self.prompt):
            text = text[len(self.prompt):].lstrip(" ")
        return self.reply(text, self._finish or "stop")

    def feed(self, frame: bytes) -> list[bytes]:
        obj = self.event(frame)
        if obj is None:
            return []
        if "error" in obj:
            return self.fail(502, f"{API}: {obj['error']}")
        out = self.text(self._read(obj))
        if self._finish:
            out += self.end(self._finish)
        return out


def check(options: Any) -> None:
    """The adapter's config check (a ConfigError at start-up): the options outbound()
    and the model list read, by type."""
    for name in ("inputs", "parameters"):
        if options.get(name) is not None and not isinstance(options[name], dict):
            raise ValueError(f"option {name} must be an object")
    if options.get("sampling_at", "parameters") not in ("parameters", "inputs"):
        raise ValueError("option sampling_at must be parameters or inputs")
    if options.get("server", "triton") not in ("triton", "kserve"):
        raise ValueError("option server must be triton or kserve")


def _truthy(v: Any) -> bool:
    return v is True or (isinstance(v, str) and v.lower() == "true")


def chat(body: dict, ctx: Context) -> KServeEgress:
    return KServeEgress(body, ctx)


def models(server: str) -> Outbound:
    """The model list: Triton's repository index (ready models only) or KServe's."""
    if server == "kserve":
        return Outbound(path="/v2/models", method="GET")
    return Outbound(path="/v2/repository/index", body=b'{"ready":true}',
                    headers={"Content-Type": "application/json"})


def parse_models(raw: bytes) -> list[str]:
    obj = json_of(raw, API)
    if isinstance(obj, list):  # Triton's index
        return [m["name"] for m in obj if isinstance(m, dict) and isinstance(m.get("name"), str)
                and m.get("state", "READY") == "READY"]
    if isinstance(obj, dict) and isinstance(obj.get("models"), list):  # KServe's list
        return [m for m in obj["models"] if isinstance(m, str)]
    raise ValueError(f"{API}: the model list is neither Triton's index nor KServe's list")


HEALTH = Outbound(path="/v2/health/ready", method="GET")
