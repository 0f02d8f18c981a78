"""Calling a backend of a native kind (Gemini, Bedrock, Cohere, …): its adapter's
request through eldric.backends.call.send, the one loop every native API shares with
the worker. A translated client API (Responses, Messages, Ollama's chat) comes as its
translator's chat body and goes back through it there."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from eldric.backends import call as native
from eldric.backends.egress import Adapter
from eldric.exchange import Answer
from eldric.stream.sse import Tap
from eldric.wire.translate import Translator
from eldric.wire.vision import VisionUnsupported

if TYPE_CHECKING:
    from eldric.roles.cloud.backends import Backend
    from eldric.roles.cloud.state import CloudState


def caller(adapter: Adapter):  # type: ignore[no-untyped-def]
    """The kinds table's Call for one adapter."""

    async def call(request: web.Request, cs: CloudState, b: Backend, model: str,
                   body: bytes, head: Any, *, translate: Translator | None = None,
                   keep: Tap | None = None) -> Answer:
        path = translate.upstream_path if translate is not None else request.path

        def usage(prompt: int, completion: int) -> None:
            cs.metrics.count_tokens(b.name, model, prompt, completion)

        try:
            return await native.send(request, adapter, b, body, path=path, model=model,
                                     timeouts=cs.timeouts, translate=translate, keep=keep,
                                     on_usage=usage,
                                     reply_headers={"X-Eldric-Backend": b.name})
        except native.KeyRefused:
            b.auth_failed = True  # shown until a probe passes
            raise
        except VisionUnsupported as exc:  # the next backend listing the model may see
            raise exc.failure(b.state.id) from None

    return call
