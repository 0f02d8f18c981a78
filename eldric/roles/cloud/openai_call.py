"""Calling a backend that speaks OpenAI's API (OpenAI-compatible, Ollama, Azure OpenAI):
through the zero-copy core, bytes untouched except the model name (backend/model) and,
for streamed chats, the usage request. Where a request goes (base URL, path, query) is
its kind's `route` (kinds.py); usage is counted from the reply as it passes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec
from aiohttp import web

from eldric.stream import Target, forward, with_fields
from eldric.stream.sse import Tap
from eldric.wire.openai_reply import sse_data
from eldric.wire.translate import Translator

if TYPE_CHECKING:
    from eldric.roles.cloud.backends import Backend
    from eldric.roles.cloud.state import CloudState


class _Usage(msgspec.Struct):
    prompt_tokens: int = 0
    completion_tokens: int = 0


class _UsageHolder(msgspec.Struct):
    usage: _Usage | None = None
    choices: list[msgspec.Raw] | None = None


_usage_dec = msgspec.json.Decoder(_UsageHolder)


def _usage_of(data: bytes) -> _UsageHolder | None:
    try:
        return _usage_dec.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def _event_json(event: bytes) -> bytes | None:
    return event[6:] if event.startswith(b"data: ") and event[6:7] == b"{" else None


def _openai_usage(data: bytes) -> tuple[int, int] | None:
    holder = _usage_of(data)
    if holder is None or holder.usage is None:
        return None
    return holder.usage.prompt_tokens, holder.usage.completion_tokens


def _is_usage_only(event: bytes) -> bool:
    data = _event_json(event)
    if data is None or b'"usage"' not in data:
        return False
    holder = _usage_of(data)
    return holder is not None and holder.usage is not None and not holder.choices


async def call(request: web.Request, cs: CloudState, b: Backend, model: str, body: bytes,
               head: Any, translate: Translator | None = None, headers: dict[str, str] | None = None,
               usage: Callable[[bytes], tuple[int, int] | None] = _openai_usage,
               keep: Tap | None = None) -> web.StreamResponse:
    """`head` is the request head the handler decoded (a chat head reads stream_options);
    `translate` is a translated client API's (eldric.wire.translated): `body` is then its
    request, sent to its `upstream_path`, and the reply goes back through it. A
    client API relayed as it is (Anthropic's to Anthropic) brings the `headers` to send
    instead of the backend's auth headers, and how its replies state `usage`. `keep`
    reads the translated stream (the /v1/responses store's tap)."""
    path = translate.upstream_path if translate is not None else request.path
    base, sub, query = b.kind.route(b, path[len("/v1"):], model)
    fields: dict = {}
    if model != head.model:
        fields["model"] = model
    drop = None
    if head.stream and sub.endswith("/chat/completions"):
        asked = getattr(head, "stream_options", None)
        if not (asked and asked.include_usage):
            # Ask for the usage chunk to account tokens; the client did not ask for it,
            # so it is taken out of the client's stream again.
            fields["stream_options"] = {"include_usage": True}
            drop = _is_usage_only

    def count(data: bytes) -> None:
        """Account the usage in one JSON reply or chunk, if it has any."""
        if data[:1] == b"{" and b'"usage"' in data:
            counts = usage(data)
            if counts is not None:
                cs.metrics.count_tokens(b.name, model, *counts)

    def tap(event: bytes) -> None:
        data = sse_data(event)  # after an `event:` line too (Anthropic's)
        if data is not None:
            count(data)

    target = Target(b.state, base, headers=b.auth_headers() if headers is None else headers)
    resp = await forward(request, target, sub, body,
                         timeouts=cs.timeouts, rewrite=with_fields(**fields) if fields else None,
                         tap=tap if head.stream and translate is None else keep, drop=drop,
                         query=query, reply_headers={"X-Eldric-Backend": b.name},
                         translate=translate)
    if resp.status in (401, 403) and not resp.prepared:
        raise b.key_refused(resp.status)
    if not head.stream and translate is None and isinstance(resp, web.Response) \
            and resp.status == 200 and resp.body:
        count(bytes(resp.body))  # a whole reply carries its usage too
    elif (counts := getattr(translate, "usage", None)) is not None:
        cs.metrics.count_tokens(b.name, model, *counts)  # read by the translator (xmltools)
    if resp.status >= 400:
        cs.metrics.error(b.name, model)
    return resp
