"""GET /api/v1/predict through a real router under traffic from real clients, its errors,
the anomaly a traffic step raises (and its counter), and the summary in the heartbeat."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from tests.conftest import free_port, metric, run_eldric, until, url_of
from tests.fakes import worker as fake_worker

MSG = [{"role": "user", "content": "hi"}]


@pytest.fixture
async def worker_url(aiohttp_server):
    server = await aiohttp_server(fake_worker.make_app("w1", ["m1", "m2"]), port=free_port())
    return url_of(server)


def router(tmp_path, url, **flags):
    flags.setdefault("predict_interval", 100)
    return run_eldric("router", tmp_path, port=0, bind="127.0.0.1", workers=url, **flags)


async def _traffic(s: aiohttp.ClientSession, base: str, model: str, rps: float,
                   seconds: float) -> int:
    """Requests at about `rps` for `seconds`, each answered before the next is due."""
    sent, start = 0, time.monotonic()
    while time.monotonic() - start < seconds:
        async with s.post(f"{base}/v1/chat/completions",
                          json={"model": model, "messages": MSG}) as r:
            assert r.status == 200
            await r.read()
        sent += 1
        due = start + sent / rps
        await asyncio.sleep(max(0.0, due - time.monotonic()))
    return sent


async def _predict(s: aiohttp.ClientSession, base: str, query: str = "") -> tuple[int, dict]:
    async with s.get(f"{base}/api/v1/predict{query}") as r:
        return r.status, await r.json()


async def test_the_forecast_follows_the_traffic(worker_url, tmp_path):
    async with router(tmp_path, worker_url, predict_history=20) as urls:
        base = urls["router"]
        async with aiohttp.ClientSession() as s:
            await _traffic(s, base, "m1", rps=40, seconds=2.0)
            status, body = await _predict(s, base)
            assert status == 200
            assert body["forecaster"] == "holt_damped"
            assert body["sample_interval_ms"] == 100 and body["horizon_ms"] == 300_000
            assert body["samples"] >= 10
            (m1,) = [m for m in body["models"] if m["model"] == "m1"]
            assert "m2" not in [m["model"] for m in body["models"]]  # never asked for
            # about 40 requests a second were sent (sampled every 100 ms: 4 a sample)
            assert 10 <= m1["observed_rps"] <= 80, m1
            assert [p["minutes"] for p in m1["forecast"]] == [1, 2, 3, 4, 5]
            for p in m1["forecast"]:
                assert p["low_rps"] <= p["expected_rps"] <= p["high_rps"]
            assert 15 <= m1["forecast"][0]["expected_rps"] <= 70, m1
            assert m1["band"][0] <= m1["band"][1]
            assert "history_rps" not in m1
            assert set(body["router"]) == {"in_flight", "queued"}
            assert body["router"]["queued"]["observed"] == 0

            async def more_than_kept():
                return (await _predict(s, base))[1]["samples"] > 25
            await until(more_than_kept)
            status, one = await _predict(s, base, "?model=m1&history=1")
            assert status == 200 and [m["model"] for m in one["models"]] == ["m1"]
            history = one["models"][0]["history_rps"]
            assert len(history) == 20  # bounded by --predict-history
            assert max(history) > 10


async def test_the_traffic_stopping_is_an_anomaly(worker_url, tmp_path):
    # 30 requests a sample: none at all is far outside counting noise (a Poisson count of
    # 30 has a standard deviation of 5.5), where 3 a sample could be 0 by chance; past the
    # 10 samples of warm-up
    async with router(tmp_path, worker_url, predict_interval=300) as urls:
        base = urls["router"]
        async with aiohttp.ClientSession() as s:
            await _traffic(s, base, "m1", rps=100, seconds=4.5)
            _, body = await _predict(s, base, "?model=m1")
            assert not body["models"][0]["anomaly"]
            # the traffic stops: a step down to nothing
            flagged = await until(lambda: _flagged(s, base), timeout=5)
            assert flagged["observed_rps"] == 0
            series = 'eldric_router_forecast_anomalies_total{model="m1"}'
            assert await metric(base, series) >= 1


async def _flagged(s: aiohttp.ClientSession, base: str) -> dict | None:
    _, body = await _predict(s, base, "?model=m1")
    m1 = body["models"][0]
    return m1 if m1["anomaly"] else None


async def test_bad_queries_are_refused_in_eldrics_shape(worker_url, tmp_path):
    async with router(tmp_path, worker_url) as urls:
        base = urls["router"]
        async with aiohttp.ClientSession() as s:
            status, body = await _predict(s, base, "?model=nope")
            assert status == 404
            assert body["error"]["code"] == "model_not_found"
            assert body["error"]["param"] == "model"
            status, body = await _predict(s, base, "?history=yes-please")
            assert status == 400 and body["error"]["param"] == "history"


async def test_off_says_so(worker_url, tmp_path):
    async with router(tmp_path, worker_url, predict=False) as urls:
        async with aiohttp.ClientSession() as s:
            status, body = await _predict(s, urls["router"])
            assert status == 404 and body["error"]["code"] == "predict_disabled"
            # routing is unchanged without it
            async with s.post(urls["router"] + "/v1/chat/completions",
                              json={"model": "m1", "messages": MSG}) as r:
                assert r.status == 200


async def test_a_bad_setting_is_refused_at_start(worker_url, tmp_path):
    from eldric.errors import ConfigError

    with pytest.raises(ConfigError, match="predict"):
        async with router(tmp_path, worker_url, predict_interval=10):
            pass


async def test_the_heartbeat_carries_the_forecast(worker_url, tmp_path):
    """A router with a controller: its record there holds its busiest models' forecast,
    which the dashboard shows."""
    async with run_eldric("controller", tmp_path, port=0, bind="127.0.0.1") as ctl:
        async with router(tmp_path, worker_url, controller=ctl["controller"],
                          heartbeat_interval=200) as urls:
            async with aiohttp.ClientSession() as s:
                await _traffic(s, urls["router"], "m2", rps=30, seconds=1.5)

                async def reported():
                    async with s.get(ctl["controller"] + "/api/v1/workers?type=router") as r:
                        (rec,) = (await r.json())["workers"]
                    forecast = rec["router"]["forecast"]
                    return forecast if forecast and forecast[0]["expected_rps"] > 5 else None

                (m2, *_) = await until(reported, timeout=5)
                assert m2["model"] == "m2" and m2["minutes"] == 1
                assert m2["low_rps"] <= m2["expected_rps"] <= m2["high_rps"]
