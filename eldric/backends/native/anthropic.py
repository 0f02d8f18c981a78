"""Anthropic's Messages API as a native adapter: a chat request translated to
``POST /v1/messages`` and the reply back (eldric.wire.anthropic_egress,
anthropic_egress_stream), on the one loop every native API shares
(eldric.backends.call). The cloud role also relays a client's own Messages requests to
it untranslated (roles/cloud/anthropic_call.py); that relay is not this adapter's.

Headers: ``x-api-key`` and ``anthropic-version``
(https://docs.anthropic.com/en/api/overview#authentication, /en/api/versioning); the
model list ``GET /v1/models?limit=1000`` (https://docs.anthropic.com/en/api/models-list:
``data[].id``). Errors: https://docs.anthropic.com/en/api/errors (529 overloaded -> 503).
"""

from __future__ import annotations

import msgspec

from eldric.backends import auth
from eldric.backends.egress import Adapter, Context, Outbound, Reach
from eldric.backends.table import CHAT, BackendDef
from eldric.errors import error_json
from eldric.stream.upstream_errors import normalise
from eldric.wire.anthropic_egress import from_anthropic, to_anthropic
from eldric.wire.anthropic_egress_stream import StreamTranslator
from eldric.wire.anthropic_shared import ANTHROPIC_VERSION, ERRORS, prompt_tokens
from eldric.wire.openai import UpstreamModelList

_encode = msgspec.json.encode
_VERSION = {"anthropic-version": ANTHROPIC_VERSION}


class Messages:
    """One chat request as a Messages request (an Egress). ``path`` and ``extra`` let a
    host of Anthropic's models with the same body (Anthropic on Vertex: its own path,
    ``anthropic_version`` in the body, no ``model``: an extra key set to None is left
    out) reuse it."""

    def __init__(self, body: dict, ctx: Context, *, path: str = "/v1/messages",
                 extra: dict | None = None, headers: dict[str, str] | None = None) -> None:
        self.model = ctx.model
        self.stream = bool(body.get("stream"))
        payload = to_anthropic(body, model=ctx.model)  # BadRequest naming the parameter
        payload["stream"] = self.stream
        for key, value in (extra or {}).items():  # None: the key left out
            if value is None:
                payload.pop(key, None)
            else:
                payload[key] = value
        self._out = Outbound(path, _encode(payload),
                             headers=dict(_VERSION if headers is None else headers))
        self._events = StreamTranslator(model=ctx.model, include_usage=ctx.include_usage)
        self.done = False
        self.usage: tuple[int, int] | None = None

    def outbound(self) -> Outbound:
        return self._out

    def whole(self, raw: bytes) -> bytes:
        try:
            msg = msgspec.json.decode(raw)
        except msgspec.DecodeError:  # not a ValueError in every msgspec eldric admits
            raise ValueError("not JSON") from None
        if not isinstance(msg, dict) or msg.get("type") != "message":
            raise ValueError("not an Anthropic message")
        out = from_anthropic(msg, model=self.model)
        usage = msg.get("usage") or {}
        self.usage = (prompt_tokens(usage), usage.get("output_tokens") or 0)
        return _encode(out)

    def feed(self, frame: bytes) -> list[bytes]:
        events = self._events
        out = events.feed(frame)
        self.done = events.complete or events.errored
        self.usage = events.usage
        return out

    def finish(self) -> list[bytes]:
        return self._events.finish()

    def error(self, status: int, raw: bytes) -> tuple[int, bytes]:
        return map_error(status, raw)

    def follow(self, raw: bytes) -> Outbound | None:
        return None


def map_error(status: int, body: bytes) -> tuple[int, bytes]:
    """Anthropic error reply -> (status, OpenAI-shaped error JSON). The status is kept,
    except Anthropic's own 529 (overloaded), which becomes 503."""
    if status == 529:
        status = 503
    try:
        data = msgspec.json.decode(body) if body else None
    except msgspec.DecodeError:
        data = None
    err = data.get("error") if isinstance(data, dict) else None
    if not isinstance(err, dict) or not isinstance(err.get("message"), str):
        return status, normalise(status, body, "anthropic")  # e.g. a proxy's HTML page
    found = ERRORS.get(str(err.get("type")))
    otype, code = (found[0], found[1]) if found else (None, err.get("type"))
    return status, error_json(status, err["message"], type=otype,
                              code=code if isinstance(code, str) else None)


def _models(reach: Reach) -> Outbound:
    return Outbound("/v1/models", query="limit=1000", method="GET", headers=dict(_VERSION))


def _parse_models(raw: bytes) -> list[str]:
    return [m.id for m in msgspec.json.decode(raw, type=UpstreamModelList).data]


def _messages(body: dict, ctx: Context) -> Messages:
    return Messages(body, ctx)


ANTHROPIC = Adapter(name="anthropic", ops={CHAT: _messages}, sign=auth.x_api_key,
                    models=_models, parse_models=_parse_models, vision=True,
                    option_keys=frozenset())

ADAPTERS = {"anthropic": ANTHROPIC}

ROWS = [
    BackendDef("anthropic", "Anthropic (Messages API)", "anthropic",
               "https://api.anthropic.com", "cloud", auth="x-api-key",
               key_env="ANTHROPIC_API_KEY", models="/v1/models",
               paths=(CHAT, "/v1/messages"), vision=True,
               docs="https://docs.anthropic.com/en/api/messages",
               tested="fake (tests/fakes/anthropic.py), with the openai, anthropic and "
                      "langchain SDKs",
               note="the cloud role relays /v1/messages as it is; chat and every other "
                    "client API translated"),
]
