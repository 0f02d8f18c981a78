"""Session affinity through a real router in front of fake workers on loopback."""

from __future__ import annotations

import asyncio
import time

import aiohttp

from tests.cache.test_cache_aware import ask, metric, router, turns, workers  # noqa: F401
from tests.conftest import until

MSG = [{"role": "user", "content": "hi"}]
SID = "X-Session-ID"


def where(h):
    return h["X-Eldric-Worker"], h["X-Eldric-Route-Reason"]


async def test_a_session_sticks_and_sessions_spread(workers, tmp_path):  # noqa: F811
    (ua, _), (ub, _) = await workers("a"), await workers("b")
    async with router(tmp_path, [ua, ub], strategy="round_robin", session_key=SID) as urls:
        base = urls["router"]
        async with aiohttp.ClientSession() as s:
            one = [await ask(s, base, MSG, {SID: "alice"}) for _ in range(6)]
            many = [await ask(s, base, MSG, {SID: f"user-{i}"}) for i in range(16)]
            again = [await ask(s, base, MSG, {SID: f"user-{i}"}) for i in range(16)]
            plain = [await ask(s, base, MSG) for _ in range(4)]  # no session: the strategy
    w0 = one[0]["X-Eldric-Worker"]
    assert where(one[0]) == (w0, f"session: new, hashed to {w0}")
    assert [where(h) for h in one[1:]] == [(w0, f"session: stays on {w0}")] * 5
    assert {h["X-Eldric-Strategy"] for h in one} == {"session"}
    assert {h["X-Eldric-Worker"] for h in many} == {ua, ub}  # 16 sessions hashed over two
    assert [h["X-Eldric-Worker"] for h in again] == [h["X-Eldric-Worker"] for h in many]
    assert {h["X-Eldric-Strategy"] for h in plain} == {"round_robin"}
    assert len({h["X-Eldric-Worker"] for h in plain}) == 2


async def test_the_body_user_field_names_the_session(workers, tmp_path):  # noqa: F811
    (ua, _), (ub, _) = await workers("a"), await workers("b")
    async with router(tmp_path, [ua, ub], strategy="round_robin", session_key="user") as urls:
        async with aiohttp.ClientSession() as s:
            seen = [await ask(s, urls["router"], MSG, user="bob") for _ in range(4)]
            odd = await ask(s, urls["router"], MSG, user=42)  # not a name: no session
    assert len({h["X-Eldric-Worker"] for h in seen}) == 1
    assert seen[3]["X-Eldric-Route-Reason"].startswith("session: stays on")
    assert odd["X-Eldric-Strategy"] == "round_robin"


async def test_a_session_moves_off_an_unhealthy_worker_and_stays_moved(workers, tmp_path):  # noqa: F811
    (ua, ka), (ub, kb) = await workers("a"), await workers("b")
    async with router(tmp_path, [ua, ub], strategy="round_robin", session_key=SID,
                      health_interval=100) as urls:
        base = urls["router"]
        async with aiohttp.ClientSession() as s:
            w0 = (await ask(s, base, MSG, {SID: "carol"}))["X-Eldric-Worker"]
            sick, other = (ka, ub) if w0 == ua else (kb, ua)
            sick.health_status = 503

            async def out():
                async with s.get(base + "/api/v1/workers") as r:
                    ws = {w["id"]: w for w in (await r.json())["workers"]}
                return not ws[w0]["healthy"]
            await until(out)
            moved = await ask(s, base, MSG, {SID: "carol"})
            sick.health_status = None
            await asyncio.sleep(0.3)  # back in rotation: the session stays where it went
            after = await ask(s, base, MSG, {SID: "carol"})
            moves = await metric(s, base, 'eldric_session_moves_total{reason="unhealthy"}')
    assert where(moved) == (other, f"session: moved from {w0} (unhealthy) to {other}")
    assert where(after) == (other, f"session: stays on {other}")
    assert moves == 1


async def _crowded_move(workers, tmp_path, in_flight: int, why: str, **flags):  # noqa: F811
    """Hold `in_flight` slow requests of a session on its worker, then ask once more: it
    moves for `why` (counted once)."""
    (ua, ka), (ub, kb) = await workers("a"), await workers("b")
    async with router(tmp_path, [ua, ub], session_key=SID, **flags) as urls:
        base = urls["router"]
        async with aiohttp.ClientSession() as s:
            w0 = (await ask(s, base, MSG, {SID: "dave"}))["X-Eldric-Worker"]
            busy = ka if w0 == ua else kb
            busy.delay = 1.0
            slow = [asyncio.create_task(ask(s, base, MSG, {SID: "dave"}))
                    for _ in range(in_flight)]
            await until(lambda: busy.hits == 1 + in_flight)
            moved = await ask(s, base, MSG, {SID: "dave"})
            busy.delay = 0
            await asyncio.gather(*slow)
            moves = await metric(s, base, f'eldric_session_moves_total{{reason="{why}"}}')
    other = ub if w0 == ua else ua
    assert where(moved) == (other, f"session: moved from {w0} ({why}) to {other}")
    assert moves == 1


async def test_a_session_moves_off_a_full_worker(workers, tmp_path):  # noqa: F811
    await _crowded_move(workers, tmp_path, 1, "full", strategy="round_robin",
                        max_concurrency=1)


async def test_a_session_moves_off_an_overloaded_worker(workers, tmp_path):  # noqa: F811
    # 2 in flight there and 0 on the other: over thresholds of 1 and 1x
    await _crowded_move(workers, tmp_path, 2, "imbalanced", strategy="cache_aware",
                        balance_abs_threshold=1, balance_rel_threshold=1)


async def test_a_failed_attempt_moves_the_session(workers, tmp_path):  # noqa: F811
    (ua, ka), (ub, kb) = await workers("a"), await workers("b")
    async with router(tmp_path, [ua, ub], strategy="round_robin", session_key=SID) as urls:
        base = urls["router"]
        async with aiohttp.ClientSession() as s:
            w0 = (await ask(s, base, MSG, {SID: "frank"}))["X-Eldric-Worker"]
            (ka if w0 == ua else kb).fail_status = 500
            moved = await ask(s, base, MSG, {SID: "frank"})
            moves = await metric(s, base, 'eldric_session_moves_total{reason="failed"}')
    assert moved["X-Eldric-Worker"] != w0 and moves == 1


async def test_sessions_expire_and_the_table_is_bounded(workers, tmp_path):  # noqa: F811
    (ua, _), (ub, _) = await workers("a"), await workers("b")
    async with router(tmp_path, [ua, ub], strategy="round_robin", session_key=SID,
                      session_ttl=300, max_sessions=2, cache_eviction_interval=100) as urls:
        base = urls["router"]
        async with aiohttp.ClientSession() as s:
            for name in ("s1", "s2", "s3"):  # s1 is dropped for s3
                await ask(s, base, MSG, {SID: name})
            s1 = await ask(s, base, MSG, {SID: "s1"})
            s3 = await ask(s, base, MSG, {SID: "s3"})
            size = await metric(s, base, "eldric_sessions")
            t0 = time.monotonic()
            await until(lambda: metric_is(s, base, "eldric_sessions", 0))
            waited = time.monotonic() - t0
            late = await ask(s, base, MSG, {SID: "s3"})
    assert s1["X-Eldric-Route-Reason"].startswith("session: new")
    assert s3["X-Eldric-Route-Reason"].startswith("session: stays")
    assert size == 2
    assert waited < 5 and late["X-Eldric-Route-Reason"].startswith("session: new")


async def metric_is(s, base, name, value):
    return await metric(s, base, name) == value
