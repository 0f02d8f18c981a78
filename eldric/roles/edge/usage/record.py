"""What one reply used, and the row the store counts for it."""

from __future__ import annotations

import msgspec


class Tokens(msgspec.Struct, omit_defaults=True):
    prompt: int = 0
    completion: int = 0
    cached: int = 0  # of prompt: read from the backend's prompt cache
    estimated: bool = False  # counted by eldric's estimate: the reply stated no usage
    cache_hit: int = 0  # of the total: a reply served by eldric's response cache

    @property
    def total(self) -> int:
        return self.prompt + self.completion


class Record(msgspec.Struct, omit_defaults=True):
    """One request through the edge, as the store and the request log keep it."""

    ts: float  # time.time() when the request came in
    client: str  # the client's name, "anonymous" on an open edge
    model: str  # as the client asked ("" when the body named none)
    backend: str  # the worker or cloud backend that answered ("" when none did)
    path: str  # /v1/chat/completions, /v1/messages, /api/chat, …
    status: int
    tokens: Tokens
    cost: float | None  # None: the model has no price (listed as unpriced)
    latency_ms: float
    ttft_ms: float | None = None
    stream: bool = False
    abandoned: bool = False  # the client left before the reply ended: what was sent
    cache: str = ""  # "hit": served by eldric's response cache (no backend ran)
