"""The budgets themselves (usage/budgets.py), in process and in a real Redis: what a
reservation takes, what refuses, what settle gives back, and overshoot under concurrency."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from eldric.errors import EldricError, RateLimited
from eldric.roles.edge.clients import Client, RedisClients
from eldric.roles.edge.farm import Farm
from eldric.roles.edge.limits import RedisLimiter
from eldric.roles.edge.usage.budgets import REMAINING, Budgets, Hold
from eldric.roles.edge.usage.budgets_redis import RedisBudgets
from eldric.roles.edge.usage.caps import Period
from eldric.roles.edge.usage.record import Tokens
from tests.conftest import until


def per_million(model: str, tokens: Tokens) -> float | None:
    """$1 per million prompt tokens, $2 per million completion; "free-*" unpriced."""
    if model.startswith("free-"):
        return None
    return (tokens.prompt * 1 + tokens.completion * 2) / 1e6


@contextlib.asynccontextmanager
async def budgets(kind: str, request, window_ms: int = 60_000, default: int = 100):  # type: ignore[no-untyped-def]
    if kind == "local":
        yield Budgets(window_ms, default, per_million)
        return
    import redis.asyncio as aioredis

    r = aioredis.from_url(request.getfixturevalue("redis_url"))
    farm = Farm(RedisClients(r, {}), RedisLimiter(r, window_ms), window_ms, shared=True)
    try:
        yield Budgets(window_ms, default, per_million, farm, RedisBudgets(r, window_ms))
    finally:
        await r.aclose()


KINDS = pytest.mark.parametrize("kind", ["local", "redis"])


async def test_no_client_or_no_budget_holds_nothing():
    b = Budgets(60_000, 100, per_million)
    for client in (None, Client(name="free", rpm=5)):
        hold = await b.reserve(client, "gpt-4o", 50)
        assert hold == Hold() and not hold.headers
        await b.settle(hold, Tokens(10, 10), 0.1)  # nothing to settle: no error
    assert not b.local.spent


async def test_allowed_models_are_globs():
    b = Budgets(60_000, 100)
    c = Client(name="a", allowed_models=["gpt-4o*", "llama-3.?-8b"])
    await b.reserve(c, "gpt-4o-mini", 1)
    await b.reserve(c, "llama-3.1-8b", 1)
    for model in ("gpt-5", "llama-3.1-70b", ""):
        with pytest.raises(EldricError) as err:
            await b.reserve(c, model, 1)
        assert (err.value.status, err.value.code, err.value.param) == (403, "model_not_allowed",
                                                                       "model")
    with pytest.raises(EldricError):  # an empty list allows nothing
        await b.reserve(Client(name="none", allowed_models=[]), "gpt-4o", 1)


@KINDS
async def test_tokens_per_day_refuse_once_spent_and_settle_gives_back(kind, request):
    async with budgets(kind, request) as b:
        c = Client(name=f"day-{kind}", max_tokens_per_day=1000)
        # 300 reserved each (max_tokens 250 + the prompt's 50): 0, 300, 600, 900 < 1000
        holds = [await b.reserve(c, "m", 250, prompt=50) for _ in range(4)]
        assert [h.headers[REMAINING] for h in holds] == [
            "tokens_per_day=700", "tokens_per_day=400", "tokens_per_day=100",
            "tokens_per_day=0"]
        with pytest.raises(RateLimited) as err:
            await b.reserve(c, "m", 250, prompt=50)
        e = err.value
        assert e.code == "budget_exceeded" and "tokens_per_day of 1000 tokens" in e.message
        assert e.headers[REMAINING] == "tokens_per_day=0"
        assert abs(int(e.headers["Retry-After"]) - Period.now().day_left) <= 2  # midnight UTC
        for h in holds[:3]:  # each used 60 of its 300: 1200 -> 480
            await b.settle(h, Tokens(prompt=50, completion=10), None)
        hold = await b.reserve(c, "m", 250, prompt=50)
        assert hold.headers[REMAINING] == "tokens_per_day=220"
        await b.settle(hold, Tokens(prompt=50, completion=10), None)
        await b.settle(hold, Tokens(prompt=50, completion=10), None)  # twice: once
        assert (await b.reserve(c, "m", 0)).headers[REMAINING] == "tokens_per_day=460"


async def test_a_client_gone_while_redis_is_asked_leaves_no_reservation(request):
    """The request is cancelled (its client left) after Redis ran the reserve script but
    before its answer came: the reservation is given back when it comes (it stayed
    counted until the day's end, 300 of the 1000)."""
    async with budgets("redis", request) as b:
        assert b.shared is not None
        c = Client(name="gone", max_tokens_per_day=1000)
        ran, answer = asyncio.Event(), asyncio.Event()
        script = b.shared.reserve

        async def slow(*args, **kw):  # type: ignore[no-untyped-def]
            verdict = await script(*args, **kw)  # taken in Redis
            ran.set()
            await answer.wait()  # ... and its answer still on the way
            return verdict

        b.shared.reserve = slow  # type: ignore[method-assign]
        asking = asyncio.create_task(b.reserve(c, "m", 250, prompt=50))
        await ran.wait()
        asking.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asking
        answer.set()
        b.shared.reserve = script  # type: ignore[method-assign]

        async def given_back() -> bool:
            return (await b.usage([c]))["gone"]["tokens_today"] == 0
        await until(given_back)


@KINDS
async def test_tpm_slides(kind, request):
    async with budgets(kind, request, window_ms=1000) as b:
        c = Client(name=f"tpm-{kind}", tpm=100)
        await b.reserve(c, "m", 60)
        await b.reserve(c, "m", 60)  # 60 < 100: let through, 120 counted
        with pytest.raises(RateLimited) as err:
            await b.reserve(c, "m", 60)
        assert err.value.code == "token_rate_limit"
        assert err.value.headers["Retry-After"] == "1"  # the first one leaves within 1 s
        await asyncio.sleep(1.1)
        assert (await b.reserve(c, "m", 60)).headers[REMAINING] == "tpm=40"


@KINDS
async def test_cost_per_day_and_month_priced_only(kind, request):
    async with budgets(kind, request, default=1000) as b:
        c = Client(name=f"cost-{kind}", max_cost_per_day=0.005, max_cost_per_month=0.05)
        # the reservation's priced cost: 1000 prompt at $1/M + 1000 completion at $2/M
        hold = await b.reserve(c, "gpt", None, prompt=1000)
        assert hold.cost == pytest.approx(0.003)
        assert hold.headers[REMAINING] == "cost_per_day=0.002, cost_per_month=0.047"
        await b.reserve(c, "gpt", None, prompt=1000)  # 0.003 < 0.005: through
        with pytest.raises(RateLimited) as err:
            await b.reserve(c, "gpt", None, prompt=1000)
        assert err.value.code == "budget_exceeded" and "cost_per_day" in err.value.message
        # an unpriced model is counted in tokens only: the cost budgets do not stop it
        free = await b.reserve(c, "free-llama", 10)
        assert free.cost is None
        await b.settle(hold, Tokens(prompt=1000, completion=0), 0.001)  # 0.006 -> 0.004
        again = await b.reserve(c, "gpt", 0, prompt=1000)
        assert again.headers[REMAINING] == "cost_per_day=0, cost_per_month=0.045"


@KINDS
async def test_twenty_concurrent_at_the_boundary_overshoot_at_most_one(kind, request):
    """A budget of 1000 with 900 spent: of 20 requests of 300 at once, one passes."""
    async with budgets(kind, request) as b:
        c = Client(name=f"edge-{kind}", max_tokens_per_day=1000)
        for _ in range(3):
            await b.reserve(c, "m", 300)
        results = await asyncio.gather(*(b.reserve(c, "m", 300) for _ in range(20)),
                                       return_exceptions=True)
        passed = [r for r in results if isinstance(r, Hold)]
        assert len(passed) == 1
        assert all(isinstance(r, RateLimited) for r in results if r not in passed)
        # spent: 1200 = the budget + less than one reservation
        assert passed[0].headers[REMAINING] == "tokens_per_day=0"


async def test_two_edges_share_one_budget_in_redis(redis_url):
    import redis.asyncio as aioredis

    edges = []
    for _ in range(2):
        r = aioredis.from_url(redis_url)
        farm = Farm(RedisClients(r, {}), RedisLimiter(r, 60_000), 60_000, shared=True)
        edges.append((r, Budgets(60_000, 100, per_million, farm, RedisBudgets(r, 60_000))))
    c = Client(name="shared", max_tokens_per_day=1000, tpm=10_000)
    try:
        results = await asyncio.gather(*(edges[i % 2][1].reserve(c, "m", 100)
                                         for i in range(20)), return_exceptions=True)
        holds = [r for r in results if isinstance(r, Hold)]
        assert len(holds) == 10  # 0..900 < 1000, across both
        assert all(h.member and h.local is None for h in holds)  # counted in Redis
        assert all(r.code == "budget_exceeded" for r in results if r not in holds)
    finally:
        for r, _ in edges:
            await r.aclose()


async def test_redis_scripts_run_again_count_once(redis_url):
    """A script whose reply was lost is run again (Farm._shared): the same member takes
    its reservation once, and its correction once."""
    import redis.asyncio as aioredis

    r = aioredis.from_url(redis_url)
    rb = RedisBudgets(r, 60_000)
    c = Client(name="again", max_tokens_per_day=1000)
    from eldric.roles.edge.usage.caps import Caps

    caps, p = Caps.of(c), Period.now()
    try:
        assert caps is not None
        first = await rb.reserve("again", caps, 400, None, p, "m1")
        second = await rb.reserve("again", caps, 400, None, p, "m1")
        assert first.remaining == second.remaining == {"tokens_per_day": 600}
        await rb.settle("again", "m1", p.day, p.month, 100, None)
        await rb.settle("again", "m1", p.day, p.month, 100, None)
        assert (await rb.reserve("again", caps, 0, None, p, "m2")).remaining == \
            {"tokens_per_day": 900}
    finally:
        await r.aclose()


async def test_redis_down_falls_back_to_this_edges_counts(tmp_path):
    """Nothing listens: the farm is degraded, budgets still hold, per edge."""
    import redis.asyncio as aioredis

    from tests.conftest import free_port

    r = aioredis.from_url(f"redis://127.0.0.1:{free_port()}/0")
    farm = Farm(RedisClients(r, {}), RedisLimiter(r, 60_000), 60_000, shared=True)
    b = Budgets(60_000, 100, per_million, farm, RedisBudgets(r, 60_000))
    c = Client(name="d", max_tokens_per_day=250)
    try:
        holds = [await b.reserve(c, "m", 100) for _ in range(3)]
        assert farm.degraded and all(h.local is not None and not h.member for h in holds)
        with pytest.raises(RateLimited):
            await b.reserve(c, "m", 100)
        await b.settle(holds[0], Tokens(0, 0), None)  # settled where it was taken
        await b.reserve(c, "m", 100)
    finally:
        await r.aclose()
