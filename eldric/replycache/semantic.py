"""The semantic matcher (issue 22, `--cache semantic`): an earlier request of the same
scope, model and context whose last user turn embeds near enough to this one's.

What is compared: only the last user turn's text, embedded through the role's own
upstreams (`embed`, given by the role: the edge's routers, the router's workers). What
must be equal instead (part of the bucket, never of the vector): the API-key scope, the
model, the system prompt and the conversation's length — the same question after
another system prompt, or deeper in another conversation, is another question. Past
`max_turns` user turns nothing is matched: the last turn alone no longer says what was
asked ("and in French?"), so a long conversation only ever hits the exact cache.

Vectors are normalised once, so cosine similarity is a plain dot product; pure Python
(no numpy: no heavy dependency for a bounded index). A dot product costs ~20 µs per
entry of a 384-dim bucket on Python 3.11, on the event loop, so entries are first
prefiltered by their coordinate signs (`reach`) and a bucket is bounded (`per_bucket`,
default 256; a bucket is one key, model and context): bench/cache_semantic.py. An
embeddings call that fails or passes its deadline is a miss (counted, logged once),
never the client's error.
"""

from __future__ import annotations

import asyncio
import sys
from array import array
import hashlib
import logging
import math
import operator
from collections import OrderedDict
from typing import Awaitable, Callable, Protocol, Sequence

log = logging.getLogger("eldric.replycache")

# The role's embeddings call: texts in, one vector per text out (any /v1/embeddings
# model reached through the role's upstreams). C's eldric/replycache/embed.py names the
# same shape; a structural alias here keeps this module importable on its own.
Embed = Callable[[Sequence[str]], Awaitable[Sequence[Sequence[float]]]]

_SEP = "\x1f"  # between the bucket's context digest and the turn in `probe`'s scope


def probe(body: dict, scope: str, max_turns: int) -> tuple[str, str] | None:
    """(scope with context, last user turn's text) for a chat request, or None when the
    request is not one to match semantically (too long, no text turn, images, …).

    The context (system prompt(s), the number of turns) goes into the scope given to
    `find`/`remember`, so it must be equal; the turn is what is embedded."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return None
    system: list[str] = []
    users = 0
    for msg in messages:
        if not isinstance(msg, dict):
            return None
        role = msg.get("role")
        if role in ("system", "developer"):
            text = _text(msg.get("content"))
            if text is None:
                return None
            system.append(text)
        elif role == "user":
            users += 1
    last = messages[-1]
    if last.get("role") != "user" or users > max_turns:
        return None
    turn = _text(last.get("content"))
    if not turn:
        return None
    ctx = hashlib.sha256(
        "\x00".join([str(len(messages)), *system]).encode()).hexdigest()[:16]
    return f"{scope}{_SEP}{ctx}", turn


def _text(content: object) -> str | None:
    """A message's text, whitespace normalised; None when it holds more than text."""
    if isinstance(content, str):
        return " ".join(content.split())
    if isinstance(content, list):
        parts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text":
                return None
            parts.append(str(part.get("text", "")))
        return " ".join(" ".join(parts).split())
    return None


def unit(vec: Sequence[float]) -> list[float] | None:
    """The vector scaled to length 1 (None for a zero or non-finite vector)."""
    norm = math.sqrt(sum(x * x for x in vec))
    if not norm or not math.isfinite(norm):
        return None
    return [x / norm for x in vec]


_sumprod = getattr(math, "sumprod", None)  # Python 3.12+: in C, several times faster


def dot(a: Sequence[float], b: Sequence[float]) -> float:
    if len(a) != len(b):
        return -1.0
    return _sumprod(a, b) if _sumprod else sum(map(operator.mul, a, b))


def signs(vec: Sequence[float]) -> int:
    """The vector's coordinate signs as bits: a cheap prefilter (see `reach`)."""
    bits = 0
    for i, x in enumerate(vec):
        if x > 0:
            bits |= 1 << i
    return bits


def reach(dims: int, floor: float) -> int:
    """How many sign bits two vectors at cosine >= `floor` may differ in, with margin.
    At angle θ the expected share of differing coordinate signs is θ/π (for vectors
    spread like embeddings); twice that plus 5 % of the dimensions leaves room, so an
    entry skipped is one far from the floor. A skip is a miss, never a wrong hit:
    every candidate's cosine is computed exactly. XOR and bit_count are in C, so a
    bucket's scan costs a fraction of a µs per entry instead of a dot product each."""
    theta = math.acos(max(-1.0, min(1.0, floor)))
    return int(dims * min(1.0, 2 * theta / math.pi + 0.05))


class Index(Protocol):
    """Where the vectors of one matcher live: memory or Redis. `best` may skip entries
    whose cosine cannot reach `floor`."""

    async def best(self, bucket: str, vec: list[float],
                   floor: float = -1.0) -> tuple[float, str] | None: ...
    async def add(self, bucket: str, key: str, vec: list[float]) -> None: ...
    async def close(self) -> None: ...


class MemoryIndex:
    """Bounded per bucket (the oldest entry goes first) and in the number of buckets."""

    def __init__(self, per_bucket: int = 256, buckets: int = 10000) -> None:
        self.per_bucket = per_bucket
        self.max_buckets = buckets
        self.buckets: OrderedDict[str, OrderedDict[str, tuple[int, list[float]]]] = (
            OrderedDict())

    async def best(self, bucket: str, vec: list[float],
                   floor: float = -1.0) -> tuple[float, str] | None:
        entries = self.buckets.get(bucket)
        if not entries:
            return None
        self.buckets.move_to_end(bucket)
        bits, limit = signs(vec), reach(len(vec), floor)
        return max(((dot(vec, v), k) for k, (b, v) in entries.items()
                    if (bits ^ b).bit_count() <= limit), default=None)

    async def add(self, bucket: str, key: str, vec: list[float]) -> None:
        entries = self.buckets.get(bucket)
        if entries is None:
            entries = self.buckets[bucket] = OrderedDict()
            while len(self.buckets) > self.max_buckets:
                self.buckets.popitem(last=False)
        self.buckets.move_to_end(bucket)
        entries[key] = (signs(vec), vec)
        entries.move_to_end(key)
        while len(entries) > self.per_bucket:
            entries.popitem(last=False)

    async def close(self) -> None:
        self.buckets.clear()


class Matcher:
    """`Similar` (eldric/replycache/__init__.py) over an Index and the role's embed."""

    def __init__(self, embed: Embed, index: Index | None = None, *,
                 threshold: float = 0.95, deadline_s: float = 2.0) -> None:
        self.embed = embed
        self.index = index if index is not None else MemoryIndex()
        self.threshold = threshold
        self.deadline_s = deadline_s
        self.failures = 0          # embeddings calls failed or timed out (a miss each)
        self._warned = False
        # find() embeds, remember() of the same text follows when the reply is in:
        # keep recent vectors so the turn is embedded once.
        self._recent: OrderedDict[str, list[float]] = OrderedDict()

    async def _vector(self, text: str) -> list[float] | None:
        vec = self._recent.get(text)
        if vec is not None:
            self._recent.move_to_end(text)
            return vec
        try:
            out = await asyncio.wait_for(self.embed([text]), self.deadline_s)
            vec = unit([float(x) for x in out[0]])
        except Exception as exc:  # any failure of the embeddings call is a miss
            self._failed(f"embeddings call failed ({type(exc).__name__}: {exc})")
            return None
        if vec is None:
            self._failed("embeddings call returned a zero vector")
            return None
        self._recent[text] = vec
        while len(self._recent) > 256:
            self._recent.popitem(last=False)
        return vec

    def _failed(self, why: str) -> None:
        self.failures += 1
        if not self._warned:
            self._warned = True
            log.warning("semantic cache: %s; treated as a miss (logged once)", why)

    async def find(self, scope: str, model: str, text: str) -> str | None:
        vec = await self._vector(text)
        if vec is None:
            return None
        try:
            found = await self.index.best(_bucket(scope, model), vec, self.threshold)
        except Exception as exc:
            self._failed(f"index lookup failed ({type(exc).__name__}: {exc})")
            return None
        if found is None or found[0] < self.threshold:
            return None
        return found[1]

    async def remember(self, scope: str, model: str, text: str, key: str) -> None:
        vec = await self._vector(text)
        if vec is None:
            return
        try:
            await self.index.add(_bucket(scope, model), key, vec)
        except Exception as exc:
            self._failed(f"index update failed ({type(exc).__name__}: {exc})")

    async def close(self) -> None:
        await self.index.close()


def _bucket(scope: str, model: str) -> str:
    return hashlib.sha256(f"{scope}\x00{model}".encode()).hexdigest()[:32]


def vectors(reply: dict) -> list[list[float]]:
    """The vectors of an OpenAI /v1/embeddings reply, in input order: `embedding` a list
    of floats, or (encoding_format base64) little-endian float32 bytes in base64."""
    import base64

    out: list[tuple[int, list[float]]] = []
    for item in reply["data"]:
        emb = item["embedding"]
        if isinstance(emb, str):
            floats = array("f")
            floats.frombytes(base64.b64decode(emb))
            if sys.byteorder != "little":
                floats.byteswap()
            emb = list(floats)
        out.append((int(item["index"]), [float(x) for x in emb]))
    return [v for _, v in sorted(out)]


def make(embed: Embed, *, redis=None, threshold: float = 0.95, ttl_s: float = 3600.0,
         deadline_s: float = 2.0, per_bucket: int = 256) -> Matcher:
    """The matcher a role installs: `redis` (a redis.asyncio.Redis) for --cache-store
    redis, else the memory index; the rest from the cache's config."""
    if redis is not None:
        from eldric.replycache.semantic_redis import RedisIndex

        index: Index = RedisIndex(redis, per_bucket=per_bucket, ttl_s=ttl_s)
    else:
        index = MemoryIndex(per_bucket=per_bucket)
    return Matcher(embed, index, threshold=threshold, deadline_s=deadline_s)
