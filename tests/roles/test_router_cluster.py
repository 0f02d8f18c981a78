"""The router in a cluster: it registers and heartbeats at the controller like a worker
(type "router", never routed to) saying which strategy it really runs, and it follows the
controller's registry closely enough that a new worker is routable within ~2 s."""

from __future__ import annotations

import asyncio

import aiohttp
import msgspec

from tests.conftest import free_port, run_eldric, until, url_of
from tests.fakes import controller as fake_controller
from tests.fakes import worker as fake_worker
from tests.fakes.controller import STATE

MSG = [{"role": "user", "content": "hi"}]


class OldWorkerList(msgspec.Struct):
    """The controller's list as routers before router registration decoded it: worker
    types from a closed list, so one unknown type fails the whole sync."""

    workers: list[dict[str, object]] = []

    def __post_init__(self) -> None:
        old_types = {"inference", "cloud", "data", "science", "training", "media", "comm"}
        for w in self.workers:
            if w["worker_type"] not in old_types:
                raise msgspec.ValidationError(f"Invalid enum value {w['worker_type']!r}")
        self.workers = [msgspec.convert(w, type=_Old) for w in self.workers]  # type: ignore[assignment]


class _Old(msgspec.Struct):
    id: str


async def _get(s, url):  # type: ignore[no-untyped-def]
    async with s.get(url) as r:
        return r.status, await r.json()


async def _of_type(s, base, worker_type):  # type: ignore[no-untyped-def]
    _, body = await _get(s, f"{base}/api/v1/workers?type={worker_type}")
    return {w["id"]: w for w in body["workers"]}


async def _served(s, router):  # type: ignore[no-untyped-def]
    async with s.post(router + "/v1/chat/completions",
                      json={"model": "eldric-mock", "messages": MSG}) as r:
        return r if r.status == 200 else None


async def test_routers_register_report_their_strategy_and_are_never_routed_to(tmp_path):
    async with run_eldric("controller", tmp_path / "c", port=0, bind="127.0.0.1",
                          cluster_key="ck", admin_key="ak") as c:
        base = c["controller"]
        async with aiohttp.ClientSession() as s:
            async with s.post(base + "/api/v1/router/config", json={"strategy": "round_robin"},
                              headers={"Authorization": "Bearer ak"}) as r:
                assert r.status == 200
            member = dict(bind="127.0.0.1", controller=base, api_key="ck",
                          heartbeat_interval=100)
            port_a = free_port()
            async with run_eldric("worker", tmp_path / "w", port=0, backend="mock", **member), \
                    run_eldric("router", tmp_path / "a", port=port_a, sync_interval=30000,
                               admin_key="ra", **member) as a, \
                    run_eldric("router", tmp_path / "b", port=0, strategy="least_connections",
                               sync_interval=30000, **member) as b:
                (wid,) = await until(lambda: _of_type(s, base, "inference"))

                async def both_report():
                    routers = await _of_type(s, base, "router")
                    if len(routers) == 2 and all(
                            r["router"]["healthy_workers"] == 1 and r["models"] for r in routers.values()):
                        return routers
                    return None
                routers = await until(both_report)
                by_url = {r["url"]: r for r in routers.values()}
                ra, rb = by_url[a["router"]], by_url[b["router"]]
                assert ra["id"].startswith("rtr-") and rb["id"].startswith("rtr-")
                assert ra["worker_type"] == "router" and ra["status"] == "healthy"
                assert ra["router"] == {"strategy": "round_robin", "strategy_source": "controller",
                                        "workers": 1, "healthy_workers": 1}
                assert rb["router"]["strategy"] == "least_connections"
                assert rb["router"]["strategy_source"] == "config"  # the cluster's is ignored
                assert ra["models"] == ["eldric-mock"] and ra["version"]

                # A strategy changed at the router is reported with its source.
                async with s.post(a["router"] + "/api/v1/config", json={"strategy": "random"},
                                  headers={"Authorization": "Bearer ra"}) as r:
                    assert r.status == 200

                async def runtime():
                    rec = (await _of_type(s, base, "router"))[ra["id"]]
                    return rec["router"]["strategy_source"] == "runtime" and rec
                assert (await until(runtime))["router"]["strategy"] == "random"

                # Routers are never workers: not in coverage, not in a router's pool.
                _, models = await _get(s, base + "/api/v1/models")
                assert models["models"] == [{"id": "eldric-mock", "workers": [wid],
                                             "coverage_percent": 100.0}]
                _, pool = await _get(s, a["router"] + "/api/v1/workers")
                assert [w["id"] for w in pool["workers"]] == [wid]
                # The plain list and discovery hold workers only, so a router of the
                # version before this one (strict about worker types) still reads it.
                async with s.get(base + "/api/v1/workers") as r:
                    raw = await r.read()
                listed = msgspec.json.decode(raw, type=OldWorkerList)
                assert [w.id for w in listed.workers] == [wid]
                async with s.post(base + "/api/v1/workers/discover",
                                  json={"model": "eldric-mock"}) as r:
                    assert [w["id"] for w in (await r.json())["workers"]] == [wid]
                for _ in range(6):
                    resp = await _served(s, a["router"])
                    assert resp is not None and resp.headers["X-Eldric-Worker"] == wid
            # Stopped cleanly: offline at once, and a restart comes back as itself.
            assert (await _of_type(s, base, "router"))[ra["id"]]["status"] == "offline"
            async with run_eldric("router", tmp_path / "a", port=port_a, sync_interval=30000,
                                  **member):
                async def back():
                    rec = (await _of_type(s, base, "router")).get(ra["id"])
                    return rec is not None and rec["status"] == "healthy"
                await until(back)
            assert len(await _of_type(s, base, "router")) == 2


async def test_a_new_worker_is_routable_within_two_seconds(tmp_path):
    """The router's sync interval is 30 s; it follows the controller's registry instead."""
    async with run_eldric("controller", tmp_path / "c", port=0, bind="127.0.0.1") as c:
        base = c["controller"]
        async with run_eldric("router", tmp_path / "r", port=0, bind="127.0.0.1",
                              controller=base, sync_interval=30000) as r:
            router = r["router"]
            async with aiohttp.ClientSession() as s:
                async with s.post(router + "/v1/chat/completions",
                                  json={"model": "eldric-mock", "messages": MSG}) as resp:
                    assert resp.status == 404  # nobody serves it yet
                await asyncio.sleep(0.3)  # the router's long-poll is held by now
                async with run_eldric("worker", tmp_path / "w", port=0, bind="127.0.0.1",
                                      backend="mock", controller=base,
                                      heartbeat_interval=30000):
                    resp = await until(lambda: _served(s, router), timeout=2.5)
                    assert resp.headers["X-Eldric-Worker"].startswith("wrk-")
                    wid = resp.headers["X-Eldric-Worker"]

                # Gone from the registry (a clean stop: offline): gone from the router too.
                async def unsynced():
                    _, pool = await _get(s, router + "/api/v1/workers")
                    return wid not in {w["id"] for w in pool["workers"]}
                await until(unsynced, timeout=2.5)


async def test_a_controller_that_does_not_hold_the_request_is_not_polled_in_a_loop(
        aiohttp_server, tmp_path):
    """A controller that sends a version but answers at once (it ignores ?wait=, or it is
    stopping) is asked again only after a pause; one that sends no version is asked every
    --sync-interval (the fall-back)."""
    ctl = await aiohttp_server(fake_controller.make_app())
    st = ctl.app[STATE]
    st.version = "v1"
    async with run_eldric("router", tmp_path, port=0, bind="127.0.0.1", controller=url_of(ctl),
                          sync_interval=30000):
        await asyncio.sleep(1.0)
        assert 1 <= st.list_calls <= 3, st.list_calls
    st.version, st.list_calls = None, 0
    async with run_eldric("router", tmp_path, port=0, bind="127.0.0.1", controller=url_of(ctl),
                          sync_interval=300):
        await asyncio.sleep(1.0)
        assert 3 <= st.list_calls <= 5, st.list_calls


async def test_a_router_started_before_its_controller_finds_it_in_seconds(tmp_path):
    """Unreachable controller: retried with backoff, not only every --sync-interval."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    async with run_eldric("router", tmp_path / "r", port=0, bind="127.0.0.1", controller=base,
                          sync_interval=30000) as r:
        await asyncio.sleep(0.5)
        async with run_eldric("controller", tmp_path / "c", port=port, bind="127.0.0.1"), \
                run_eldric("worker", tmp_path / "w", port=0, bind="127.0.0.1", backend="mock",
                           controller=base, heartbeat_interval=30000):
            async with aiohttp.ClientSession() as s:
                await until(lambda: _served(s, r["router"]), timeout=5)



async def test_a_model_new_on_a_known_worker_is_routable_at_once(aiohttp_server, tmp_path):
    """A model pulled onto a worker the router knows: the worker's heartbeat tells the
    controller, the router's long-poll sees the worker's models changed and checks the
    worker at once, not at its next health check (30 s here)."""
    fake = await aiohttp_server(fake_worker.make_app("w1", ["old"]))
    async with run_eldric("controller", tmp_path / "c", port=0, bind="127.0.0.1") as c:
        base = c["controller"]
        async with aiohttp.ClientSession() as s:
            async with s.post(base + "/api/v1/workers/register", json={
                    "worker_type": "inference", "url": url_of(fake), "models": ["old"]}) as r:
                wid = (await r.json())["id"]
            async with run_eldric("router", tmp_path / "r", port=0, bind="127.0.0.1",
                                  controller=base, health_interval=30000) as r:
                router = r["router"]

                async def models():
                    _, listed = await _get(s, router + "/v1/models")
                    return {m["id"] for m in listed["data"]}
                await until(lambda: _has(models, "old"), timeout=5)
                fake.app[fake_worker.KNOBS].models = ["old", "new"]
                await asyncio.sleep(0.3)  # the router's long-poll is held by now
                async with s.post(f"{base}/api/v1/workers/{wid}/heartbeat", json={
                        "status": "healthy", "load": {}, "models": ["old", "new"]}) as hb:
                    assert hb.status == 200
                await until(lambda: _has(models, "new"), timeout=2.5)


async def _has(models, name):  # type: ignore[no-untyped-def]
    return name in await models()
