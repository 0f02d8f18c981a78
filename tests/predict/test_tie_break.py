"""load_based breaks a tie with the forecast: of two workers reporting the same load, the
one fewer requests are expected to reach goes first, and the reason says so. A real
router, fake workers that report their load, requests from a real client."""

from __future__ import annotations

import aiohttp
import pytest

from tests.conftest import free_port, run_eldric, until, url_of
from tests.fakes import worker as fake_worker

MSG = [{"role": "user", "content": "hi"}]
BROKEN = "broken by the forecast"


@pytest.fixture
def workers(aiohttp_server):
    async def start(name, models, cpu):
        server = await aiohttp_server(fake_worker.make_app(name, models, cpu), port=free_port())
        return url_of(server)

    return start


async def _ask(s, base, model):
    async with s.post(base + "/v1/chat/completions",
                      json={"model": model, "messages": MSG}) as r:
        assert r.status == 200
        await r.read()
        return r.headers["X-Eldric-Worker"], r.headers["X-Eldric-Route-Reason"]


async def _warm(base: str, predicting: bool = True) -> None:
    """The same traffic until the forecast has a few samples of both models."""
    async with aiohttp.ClientSession() as s:
        async def ready():
            await _interleaved(base, 5)
            if not predicting:
                return True
            async with s.get(base + "/api/v1/predict") as r:
                models = (await r.json())["models"]
            return len(models) == 2 and min(m["samples"] for m in models) >= 5

        await until(ready, timeout=10)


async def _interleaved(base: str, rounds: int) -> list[tuple[str, str]]:
    """One m2, then two m1, one request at a time (nothing in flight when one is ranked:
    the scores tie); where each m1 went and why. Two, so that the rotation, which every
    ranking moves on, shows: with one, m1 would always meet the same turn."""
    out = []
    async with aiohttp.ClientSession() as s:
        for _ in range(rounds):
            await _ask(s, base, "m2")
            out.append(await _ask(s, base, "m1"))
            out.append(await _ask(s, base, "m1"))
    return out


def router(tmp_path, urls, **flags):
    return run_eldric("router", tmp_path, port=0, bind="127.0.0.1", workers=",".join(urls),
                      strategy="load_based", predict_interval=100, **flags)


async def _routed(workers, tmp_path, a, b, predicting=True) -> tuple[str, str, list]:
    """Two workers, (name, models, cpu) each, behind a load_based router: their URLs and
    where the m1 requests went (and why) once the forecast is warm."""
    ua, ub = await workers(*a), await workers(*b)
    async with router(tmp_path, [ua, ub], predict=predicting) as urls:
        await _warm(urls["router"], predicting)
        return ua, ub, await _interleaved(urls["router"], 20)


async def test_a_tie_goes_to_the_worker_the_forecast_expects_less_of(workers, tmp_path):
    # both report 50 % CPU; only `both` serves m2, whose traffic the forecast expects
    both, only, seq = await _routed(workers, tmp_path, ("both", ["m1", "m2"], 50.0),
                                    ("only", ["m1"], 50.0))
    assert [w for w, _ in seq] == [only] * 40
    assert all(BROKEN in why and f"at {only}" in why for _, why in seq), seq[-1]


async def test_without_the_forecast_the_tie_rotates(workers, tmp_path):
    """The same cluster with forecasting off: the old rotation (what the test above
    would see without the tie-break)."""
    both, only, seq = await _routed(workers, tmp_path, ("both", ["m1", "m2"], 50.0),
                                    ("only", ["m1"], 50.0), predicting=False)
    assert {w for w, _ in seq} == {both, only}
    assert not any(BROKEN in why for _, why in seq)


async def test_a_real_difference_in_load_is_not_a_tie(workers, tmp_path):
    both, _, seq = await _routed(workers, tmp_path, ("both", ["m1", "m2"], 10.0),
                                 ("only", ["m1"], 90.0))
    assert [w for w, _ in seq] == [both] * 40  # the load decides, not the forecast
    assert not any(BROKEN in why for _, why in seq)


async def test_equal_expectations_leave_the_rotation(workers, tmp_path):
    a, b, seq = await _routed(workers, tmp_path, ("a", ["m1", "m2"], 50.0),
                              ("b", ["m1", "m2"], 50.0))
    assert {w for w, _ in seq} == {a, b}
    assert not any(BROKEN in why for _, why in seq)


async def test_load_based_chosen_at_run_time_breaks_ties_too(workers, tmp_path):
    both = await workers("both", ["m1", "m2"], cpu=50.0)
    only = await workers("only", ["m1"], cpu=50.0)
    async with run_eldric("router", tmp_path, port=0, bind="127.0.0.1",
                          workers=f"{both},{only}", strategy="round_robin",
                          predict_interval=100) as urls:
        base = urls["router"]
        await _warm(base)
        async with aiohttp.ClientSession() as s:
            async with s.post(base + "/api/v1/config", json={"strategy": "load_based"}) as r:
                assert r.status == 200
        seq = await _interleaved(base, 10)
    assert [w for w, _ in seq] == [only] * 20
    assert all(BROKEN in why for _, why in seq)
