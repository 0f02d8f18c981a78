"""Calling an Anthropic backend: a client's own Messages request (and count_tokens)
relayed as it is through the zero-copy core (relay); everything else — a chat request,
and every other client API as its translator's chat body — through the native adapter
(eldric/backends/native/anthropic.py) on the one loop every native API shares
(eldric.backends.call, via native_call).

Failures before anything reached the client raise UpstreamFailure like the core does, so
the cloud handler fails over to the next backend the same way.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from eldric.backends.native.anthropic import ANTHROPIC
from eldric.backends.native.anthropic import map_error  # noqa: F401 - its old home, kept
from eldric.roles.cloud import native_call, openai_call
from eldric.stream.sse import Tap
from eldric.wire.anthropic_shared import usage_counts
from eldric.wire.cluster import covers
from eldric.wire.translate import Translator

if TYPE_CHECKING:  # both import the kinds table, which names this module's call
    from eldric.roles.cloud.backends import Backend
    from eldric.roles.cloud.state import CloudState

_native = native_call.caller(ANTHROPIC)


def call(request: web.Request, cs: CloudState, b: Backend, model: str,
         body: bytes, head: Any, *, translate: Translator | None = None,
         keep: Tap | None = None) -> Awaitable[web.StreamResponse]:
    """Anthropic's own paths (/v1/messages, count_tokens) are relayed as they are; any
    other request goes through the adapter (`translate`: a client API's translator,
    `body` its chat request; `keep` reads what the client gets)."""
    if covers(("/v1/messages",), request.path) and translate is None:
        return relay(request, cs, b, model, body, head)
    return _native(request, cs, b, model, body, head, translate=translate, keep=keep)


def relay(request: web.Request, cs: CloudState, b: Backend, model: str, body: bytes,
          head: Any) -> Awaitable[web.StreamResponse]:
    """A client's own Messages request through the zero-copy core, with the backend's
    key; the client's anthropic-version is kept where it sent one (its body is written
    for that version), else eldric's."""
    headers = b.auth_headers()
    if request.headers.get("anthropic-version"):
        del headers["anthropic-version"]
    return openai_call.call(request, cs, b, model, body, head, headers=headers,
                            usage=usage_counts)
