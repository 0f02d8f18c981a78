"""The AI decider: asks an LLM which candidate should serve a request, within a deadline.

It is the Decider of eldric.roles.router.thinking: it never raises and never outlasts
its deadline (timeout_ms). In autonomous mode a valid choice becomes ctx.prefer (tried
first when it has room; X-Eldric-Strategy: ai_routing, X-Eldric-Route-Reason: the model's
reason); in advisory mode it is only logged, shown (X-Eldric-AI-Advice) and compared with
where the strategy sent the request. A timeout, an invalid answer, a failed call or too
many decisions in flight leave the routing to the strategy, counted, and the reason says
so (ctx.note).

The call is a plain chat completion to an OpenAI-compatible endpoint through the process's
client session. It carries X-Eldric-Routing: decider, and a request carrying that header
is never AI-routed, so an endpoint that is this router (or an edge in front of it) cannot
make a decision ask for a decision.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any

import aiohttp
import structlog

from eldric.roles.router.ai.cache import DecisionCache, Verdict, shape
from eldric.roles.router.ai.config import AiRoutingConfig
from eldric.roles.router.ai.prompt import Invalid, answer, listed, question
from eldric.roles.router.ai.stats import AiStats
from eldric.roles.router.context import RouteContext
from eldric.roles.router.pool import Worker
from eldric.stream.headers import header_text

log = structlog.get_logger("eldric.router.ai")

MARK = "X-Eldric-Routing"  # "decider": the decider's own request, never AI-routed
ADVICE = "X-Eldric-AI-Advice"  # advisory mode: the worker the model would have picked
STRATEGY = "ai_routing"
_REPLY_LIMIT = 256 * 1024
# The loop's timers tick in whole milliseconds (libuv): aimed a tick early, the deadline
# is met rather than passed by up to one.
_TICK = 0.001  # a chat completion naming a worker is far smaller


class _Late(Exception):
    """The deadline passed first."""


class Failed(Exception):
    """The endpoint did not answer with a reply (a status, a connection error)."""


class Decider:
    __slots__ = ("cfg", "stats", "cache", "inflight", "_session", "_url", "_headers",
                 "_deadline", "_unwinding", "_last_fallback")

    def __init__(self, cfg: AiRoutingConfig, session: Callable[[], aiohttp.ClientSession],
                 stats: AiStats) -> None:
        self.cfg = cfg
        self.stats = stats
        self.cache = DecisionCache(cfg.cache_size, cfg.cache_ttl_ms)
        self.inflight = 0
        self._session = session
        self._url = f"{cfg.url}/v1/chat/completions"
        # identity: the shared session does not decompress (it relays bytes elsewhere)
        self._headers = {"Content-Type": "application/json", "Accept-Encoding": "identity",
                         MARK: "decider"}
        if cfg.llm_api_key:
            self._headers["Authorization"] = f"Bearer {cfg.llm_api_key}"
        self._deadline = cfg.timeout_ms / 1000
        self._unwinding: set[asyncio.Task[Any]] = set()  # late calls being cancelled
        self._last_fallback = ""

    async def decide(self, candidates: list[Worker], ctx: RouteContext) -> None:
        if len(candidates) < 2 or ctx.header(MARK) is not None:
            return  # nothing to choose, or the decider's own request
        key = shape(ctx, candidates)
        verdict = self.cache.get(key)
        if verdict is not None:
            self.stats.count("cached")
            self._use(verdict, ctx, "cached")
            return
        if self.inflight >= self.cfg.max_concurrent:
            self._fell_back(ctx, "busy", f"{self.inflight} decisions in flight")
            return
        workers = listed(candidates)
        t0 = time.perf_counter()
        self.inflight += 1
        self.stats.asking()
        try:
            outcome, result = await self._verdict(workers, ctx, t0)
        finally:
            self.inflight -= 1
        self.stats.took((time.perf_counter() - t0) * 1000)  # before any logging
        if isinstance(result, tuple):
            self._last_fallback = ""
            self.cache.put(key, result)
            self.stats.count(outcome)
            self._use(result, ctx, outcome)
        else:
            self._fell_back(ctx, outcome, result)

    async def _verdict(self, workers: list[Worker], ctx: RouteContext,
                       t0: float) -> tuple[str, Verdict | str]:
        """("decided", verdict), or (a fall-back's outcome, why)."""
        try:
            return "decided", await self._within_deadline(self._ask(workers, ctx), t0)
        except _Late:
            return "timeout", f"no answer within {self.cfg.timeout_ms} ms"
        except Invalid as exc:
            return "invalid", str(exc)
        except (Failed, aiohttp.ClientError, OSError) as exc:
            return "failed", str(exc) or type(exc).__name__
        except Exception as exc:  # never the request's failure: the strategy routes
            log.exception("ai_decider_error")
            return "failed", type(exc).__name__

    def chosen(self, worker: Worker, ctx: RouteContext) -> None:
        """Advisory mode: the first worker the request went to, against the model's pick."""
        if ctx.advice is not None:
            self.stats.advice(worker.id == ctx.advice)
            ctx.advice = None

    async def _within_deadline(self, call: Coroutine[Any, Any, Verdict], t0: float) -> Verdict:
        """The call's result, or _Late at the deadline. A late call is cancelled but not
        waited for: closing its connection is not the request's time (with ten calls
        timing out at once, waiting for each to unwind cost 10 ms past the deadline)."""
        task = asyncio.get_running_loop().create_task(call)
        try:
            left = self._deadline - (time.perf_counter() - t0) - _TICK
            done, _ = await asyncio.wait((task,), timeout=max(0.0, left))
        except asyncio.CancelledError:  # the client left
            task.cancel()
            raise
        if not done:
            task.cancel()
            self._unwinding.add(task)
            task.add_done_callback(self._unwound)
            raise _Late()
        return task.result()

    def _unwound(self, task: asyncio.Task[Any]) -> None:
        self._unwinding.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: it lost the race, it is no one's failure

    async def _ask(self, workers: list[Worker], ctx: RouteContext) -> Verdict:
        body = question(self.cfg.llm_model or "", workers, ctx, self.cfg.digest_chars)
        async with self._session().post(self._url, data=body, headers=self._headers) as r:
            data = await _read(r)
            if r.status != 200:
                raise Failed(f"the endpoint answered {r.status}")
        return answer(data, {w.id for w in workers})

    def _use(self, verdict: Verdict, ctx: RouteContext, outcome: str) -> None:
        worker, reason = verdict
        self.stats.last = {"outcome": outcome, "worker": worker, "reason": reason,
                           "at": round(time.time(), 3)}
        if self.cfg.mode == "autonomous":
            ctx.prefer = worker
            ctx.prefer_reason = reason if outcome == "decided" else f"{reason} (cached)"
            ctx.decided_by = STRATEGY
        else:
            ctx.advice = worker
            ctx.add_header(ADVICE, worker)
            log.info("ai_advice", worker=worker, reason=reason, cached=outcome == "cached")

    def _fell_back(self, ctx: RouteContext, outcome: str, why: str) -> None:
        self.stats.count(outcome)
        self.stats.last = {"outcome": outcome, "why": why, "at": round(time.time(), 3)}
        ctx.note = header_text(f"ai_routing fell back ({outcome}: {why})")
        # a dead decider fails every request alike: said once per change, then at debug
        said = log.debug if outcome == self._last_fallback else log.warning
        said("ai_fallback", outcome=outcome, why=why, model=ctx.model)
        self._last_fallback = outcome

    def view(self) -> dict[str, Any]:
        return {"in_flight": self.inflight, "cached_decisions": len(self.cache)}


async def _read(r: aiohttp.ClientResponse) -> bytes:
    parts: list[bytes] = []
    size = 0
    while size <= _REPLY_LIMIT and (chunk := await r.content.read(65536)):
        parts.append(chunk)
        size += len(chunk)
    if size > _REPLY_LIMIT:
        raise Failed(f"the reply is over {_REPLY_LIMIT} bytes")
    return b"".join(parts)
