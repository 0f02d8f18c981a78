"""OpenAI chat <-> Hugging Face TGI's native generate API (pure, no I/O).

For TGI versions before its Messages API (< 1.4) and deployments that only expose the
native routes. Shapes from TGI's OpenAPI document
(https://github.com/huggingface/text-generation-inference/blob/main/docs/openapi.json,
https://huggingface.co/docs/text-generation-inference/conceptual/streaming):

- ``POST /generate`` ``{"inputs": "…", "parameters": {max_new_tokens, temperature,
  top_p, top_k, seed, stop, repetition_penalty, frequency_penalty, do_sample, details…}}``
  -> ``{"generated_text": "…", "details": {"finish_reason": "length"|"eos_token"|
  "stop_sequence", "generated_tokens": n, "prefill": [...], "tokens": [...]}}``.
- ``POST /generate_stream`` -> SSE ``data:`` events ``{"index", "token": {"id", "text",
  "logprob", "special"}, "generated_text": null, "details": null}``; the last event
  carries ``generated_text`` and ``details`` (``finish_reason``, ``generated_tokens``,
  ``input_length``). Special tokens (``</s>``) are not text and are dropped.
- Errors: ``{"error": "…", "error_type": "…"}`` with 422 (validation), 424 (generation),
  429 (overloaded), 500 (incomplete generation); in a stream, the same object as an event.
- ``GET /info`` -> ``{"model_id": …}``: the one model the server serves.

TGI's validation wants temperature > 0 and 0 < top_p < 1: a temperature of 0 is sent as
greedy decoding (no temperature, ``do_sample`` false, and no top_p / top_k, which would
make TGI sample anyway), a top_p of 1 (no nucleus filtering) is left out.
"""

from __future__ import annotations

from typing import Any

import msgspec

from eldric.wire.native.outbound import Context, Outbound
from eldric.wire.native.text import TextEgress, json_of

API = "TGI generate"
_encode = msgspec.json.encode
_FINISH = {"length": "length", "eos_token": "stop", "stop_sequence": "stop"}


class TGIEgress(TextEgress):
    api = API

    def outbound(self) -> Outbound:
        s = self.conv.sampling
        params: dict[str, Any] = {"details": True}
        if s.max_tokens is not None:
            params["max_new_tokens"] = s.max_tokens
        greedy = s.temperature is not None and s.temperature <= 0
        if s.temperature is not None and s.temperature > 0:
            params["temperature"] = s.temperature
            params["do_sample"] = True
        elif greedy:
            params["do_sample"] = False  # temperature 0: greedy
        # TGI samples whenever a warper is set, do_sample false or not (server/
        # text_generation_server/utils/tokens.py: sampling = do_sample or has_warpers),
        # so a greedy request sends no top_p / top_k
        if s.top_p is not None and 0 < s.top_p < 1 and not greedy:
            params["top_p"] = s.top_p
        if s.top_k is not None and s.top_k > 0 and not greedy:
            params["top_k"] = s.top_k
        if s.seed is not None and s.seed >= 0:  # a u64 in TGI's schema: 0 is one
            params["seed"] = s.seed
        if s.stop:
            params["stop"] = s.stop
        if s.frequency_penalty is not None:
            params["frequency_penalty"] = s.frequency_penalty
        params.update(self.options.get("parameters") or {})
        return Outbound(path="/generate_stream" if self.stream else "/generate",
                        body=_encode({"inputs": self.conv.prompt(), "parameters": params}),
                        headers={"Content-Type": "application/json"}, framing="sse")

    def whole(self, raw: bytes) -> bytes:
        obj = json_of(raw, API)
        if isinstance(obj, list) and len(obj) == 1:  # the compat route's shape
            obj = obj[0]
        if not isinstance(obj, dict) or not isinstance(obj.get("generated_text"), str):
            raise ValueError(f"{API}: the reply has no generated_text")
        details = obj.get("details") if isinstance(obj.get("details"), dict) else {}
        prefill = details.get("prefill")
        self.count(len(prefill) if isinstance(prefill, list) and prefill else None,
                   details.get("generated_tokens"))
        return self.reply(obj["generated_text"], _FINISH.get(details.get("finish_reason"), "stop"))

    def feed(self, frame: bytes) -> list[bytes]:
        obj = self.event(frame)
        if obj is None:
            return []
        if "error" in obj and "token" not in obj:
            kind = obj.get("error_type")
            status = 429 if kind == "overloaded" else 400 if kind == "validation" else 502
            return self.fail(status, f"{API}: {obj['error']}",
                             kind if isinstance(kind, str) else "upstream_error")
        token = obj.get("token")
        out: list[bytes] = []
        if isinstance(token, dict) and not token.get("special") and isinstance(token.get("text"), str):
            out += self.text(token["text"])
        details = obj.get("details")
        if isinstance(details, dict):  # the last event
            self.count(details.get("input_length"), details.get("generated_tokens"))
            out += self.end(_FINISH.get(details.get("finish_reason"), "stop"))
        elif obj.get("generated_text") is not None:  # details off: still the last event
            out += self.end("stop")
        return out

    def error(self, status: int, raw: bytes) -> tuple[int, bytes]:
        # 422 is TGI's input validation (the client's, 400); 424 a failed generation
        # (the backend's, 502, tried elsewhere).
        mapped = {422: 400, 424: 502}.get(status, status)
        return super().error(mapped, raw)


def check(options: Any) -> None:
    """The adapter's config check (a ConfigError at start-up)."""
    if options.get("parameters") is not None and not isinstance(options["parameters"], dict):
        raise ValueError("option parameters must be an object (TGI's parameters)")


def chat(body: dict, ctx: Context) -> TGIEgress:
    return TGIEgress(body, ctx)


INFO = Outbound(path="/info", method="GET")
HEALTH = Outbound(path="/health", method="GET")


def parse_models(raw: bytes) -> list[str]:
    obj = json_of(raw, API)
    if not isinstance(obj, dict) or not isinstance(obj.get("model_id"), str):
        raise ValueError(f"{API}: /info has no model_id")
    return [obj["model_id"]]
