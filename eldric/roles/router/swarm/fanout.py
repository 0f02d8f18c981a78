"""Asking several members at once, within the swarm's bounds: at most max_concurrent in
flight, a round that waits round_timeout_ms (members still busy then are cancelled and
recorded as timed out), on_member_error skip (a failure is dropped and recorded) or fail
(the first failure cancels the rest and fails the swarm), and min_successful answers
required. Leaving (the client went away: this task is cancelled) cancels every member."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from eldric.roles.router.swarm.strategy import Ask, Result

Call = Callable[[Ask], Awaitable[Result]]


async def fanout(asks: list[Ask], call: Call, *, timeout: float, max_concurrent: int,
                 fail_fast: bool) -> list[Result]:
    """Every ask's Result, in the asks' order (failures and timeouts included)."""
    gate = asyncio.Semaphore(max_concurrent)

    async def one(ask: Ask) -> Result:
        async with gate:
            return await call(ask)

    t0 = time.perf_counter()
    tasks = [asyncio.ensure_future(one(a)) for a in asks]
    results: dict[int, Result] = {}
    try:
        pending = set(tasks)
        deadline = t0 + timeout
        while pending:
            left = deadline - time.perf_counter()
            if left <= 0:
                break
            done, pending = await asyncio.wait(pending, timeout=left,
                                               return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                r = t.result()
                results[tasks.index(t)] = r
                if fail_fast and not r.ok:
                    pending = set()  # the rest are cancelled below
                    break
    finally:
        for t in tasks:
            if not t.done():
                t.cancel()
        if any(not t.done() for t in tasks):
            await asyncio.wait(tasks)  # each closes its upstream connection as it stops
    ms = (time.perf_counter() - t0) * 1000
    out: list[Result] = []
    for i, ask in enumerate(asks):
        got = results.get(i)
        if got is not None:
            out.append(got)
        else:
            timed_out = ms >= timeout * 1000
            r = Result(ask, ok=False, latency_ms=ms,
                       outcome="timeout" if timed_out else "cancelled",
                       error=(f"{ask.member.model}: no answer within {timeout * 1000:g} ms "
                              "(round_timeout_ms)") if timed_out else
                       f"{ask.member.model}: cancelled after another member failed "
                       "(on_member_error: fail)")
            out.append(r)
    return out
