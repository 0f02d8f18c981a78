"""The contract between a client API eldric speaks and the Chat Completions it forwards.

Where a backend does not serve a client's API natively (Anthropic's /v1/messages, OpenAI's
/v1/responses, Ollama's /api/chat…), the hop next to the backend translates: it turns the
client's body into a Chat Completions (or embeddings) body, sends that through the
forwarding core, and turns the reply back. A Translator is that one request's translation:
pure, no I/O, fed bytes and returning bytes, so the same object serves the worker, the
cloud worker and the edge, and is tested against each API's documented transcripts.

The core calls, in order: ``request()`` once (the body to send to ``upstream_path``),
then for a 2xx reply either ``whole(body)`` (a JSON reply) or ``feed(event)`` for each
complete upstream SSE event (its bytes without the blank line) and ``close()`` at the
stream's end; ``cut(...)`` if the upstream fails after the client got the first byte.
Error replies (4xx/5xx) do not go through the translator: they are rendered in the path's
dialect (eldric.wire.dialect), like every other error eldric sends on that path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


class Translator(Protocol):
    upstream_path: str  # where the translated body goes: "/v1/chat/completions", …
    model: str  # the model the client asked for (routing, metrics)
    stream: bool  # whether the client asked for a streamed reply
    media_type: str  # the Content-Type of the translated streamed reply

    def request(self) -> bytes:
        """The body to send upstream (JSON)."""
        ...

    def whole(self, body: bytes) -> bytes:
        """A whole 2xx JSON reply of the upstream, as the client's API has it (JSON).
        Raises ValueError when the upstream's body is not what its API promises."""
        ...

    def feed(self, event: bytes) -> bytes:
        """One complete upstream SSE event in; what to send the client for it (often
        nothing, sometimes several events)."""
        ...

    def close(self) -> bytes:
        """The upstream's stream ended: what is left to send. A stream that ended before
        the upstream said it was finished ends in the client API's error event."""
        ...

    def cut(self, status: int, message: str, code: str) -> bytes:
        """The upstream failed mid-reply: the client API's terminal error event."""
        ...


# A client body in, its translation out; raises an EldricError (a 400 naming the
# parameter) for a body the client's API would refuse.
Factory = Callable[[bytes], Translator]


@dataclass(frozen=True)
class Translation:
    """A client API path eldric translates: how, and the native path it needs (a backend
    without `needs` cannot serve the path even translated)."""

    factory: Factory
    needs: str = "/v1/chat/completions"


class Chain:
    """Two translations in a row (a Translator): `outer` is the client API's (Messages,
    Responses, Ollama: client body -> Chat Completions), `inner` one of Chat Completions
    to what the backend takes (eldric.wire.xmltools: tools emulated), built from the
    outer's request. The reply goes back through the inner, then the outer."""

    __slots__ = ("outer", "inner", "upstream_path", "model", "stream", "media_type")

    def __init__(self, outer: Translator, inner: Translator):
        self.outer, self.inner = outer, inner
        self.upstream_path = inner.upstream_path
        self.model, self.stream, self.media_type = outer.model, outer.stream, outer.media_type

    def request(self) -> bytes:
        return self.inner.request()

    @property
    def usage(self) -> tuple[int, int] | None:
        """The reply's (prompt, completion) tokens where the inner reads them."""
        return getattr(self.inner, "usage", None)

    def whole(self, body: bytes) -> bytes:
        return self.outer.whole(self.inner.whole(body))

    def feed(self, event: bytes) -> bytes:
        return self._on(self.inner.feed(event))

    def close(self) -> bytes:
        return self._on(self.inner.close()) + self.outer.close()

    def cut(self, status: int, message: str, code: str) -> bytes:
        # what the inner still holds is lost with the stream: the client's API ends it
        return self.outer.cut(status, message, code)

    def _on(self, events: bytes) -> bytes:
        """The inner's output (whole SSE events, each ended by a blank line) through the
        outer, event by event."""
        feed = self.outer.feed
        return b"".join([feed(e) for e in events.split(b"\n\n") if e.strip()])


def chain(outer: Translator, inner: Translator | None) -> Translator:
    """`outer` then `inner` as one Translator; `outer` alone where there is no inner."""
    return outer if inner is None else Chain(outer, inner)
