"""The response cache (issue 22): a reply kept and served again, at the edge or router.

Not the router's cache-*aware* routing (eldric.roles.router.cache, which sends a
conversation to the worker already holding its prompt prefix): this keeps whole replies.

- ``--cache off`` (the default): nothing here is imported on the request path.
- ``--cache exact``: a chat (or completions) request whose normalised form (model,
  messages or prompt, the sampling parameters, tools; never `stream`, `user`,
  `stream_options`) was answered before is answered from the store; only deterministic
  requests (temperature 0, or a seed) unless configured; streamed requests are served
  from cache as a stream.
- ``--cache semantic``: as exact, and else the nearest earlier request by embedding
  similarity of the last user turn (through any /v1/embeddings model), above a
  threshold, for conversations no longer than a bound.

Entries are scoped per API key (the key's digest) unless the operator shares them;
per-model and per-client opt-in; ``Cache-Control: no-cache`` from the client bypasses;
every reply says ``X-Eldric-Cache: hit|miss|bypass``.

The seams between the parts (each a module of this package):
"""

from __future__ import annotations

from typing import Protocol

HEADER = "X-Eldric-Cache"


class Store(Protocol):
    """Where entries live: memory (a bounded LRU, one process) or Redis (a farm)."""

    async def get(self, key: str) -> bytes | None: ...
    async def put(self, key: str, value: bytes, ttl_s: float) -> None: ...
    async def close(self) -> None: ...


class Similar(Protocol):
    """The semantic part: which earlier request of this scope and model is near enough.
    `text` is the normalised last user turn (and whatever context the policy includes);
    what it returns is the exact key of that earlier request, looked up in the Store."""

    async def find(self, scope: str, model: str, text: str) -> str | None: ...
    async def remember(self, scope: str, model: str, text: str, key: str) -> None: ...
    async def close(self) -> None: ...
