"""A real controller with real workers (mock backend) and a real router, on loopback."""

from __future__ import annotations

import asyncio
import signal

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from tests.conftest import free_port, run_eldric, until
from tests.fakes import ollama as fake_ollama

MSG = [{"role": "user", "content": "hi"}]


async def _get(s, url):
    async with s.get(url) as r:
        return r.status, await r.json()


def controller(tmp_path, **flags):
    return run_eldric("controller", tmp_path, port=0, bind="127.0.0.1", **flags)


async def test_an_advertised_url_without_a_port_does_not_name_the_database(tmp_path):
    """The state file is named for the role and its configured port, never taken from
    the advertised URL (which had crashed the controller with a sqlite error)."""
    async with controller(tmp_path, advertise_url="https://ctl.example.com") as c:
        async with aiohttp.ClientSession() as s:
            status, _ = await _get(s, c["controller"] + "/api/v1/workers")
    assert status == 200
    assert [p.name for p in (tmp_path / "data").glob("*.db")] == ["controller-0.db"]


async def test_a_database_named_for_the_advertised_port_is_taken_over(tmp_path):
    """Before state files were named for the configured port, they were named for the
    advertised URL's: a controller behind a proxy (advertised :443, bound elsewhere) must
    find its registry again, not start on an empty one."""
    port = free_port()
    async with run_eldric("controller", tmp_path, port=port, bind="127.0.0.1", cluster_key="ck",
                          advertise_url="https://ctl.example.com:443"):
        async with aiohttp.ClientSession() as s:
            async with s.post(f"http://127.0.0.1:{port}/api/v1/workers/register",
                              headers={"Authorization": "Bearer ck"},
                              json={"worker_type": "inference", "url": "http://10.0.0.9:8890",
                                    "id": "wrk-kept"}) as r:
                assert r.status == 200
    data = tmp_path / "data"
    for f in data.glob(f"controller-{port}.db*"):  # as the old naming had left it
        f.rename(data / f.name.replace(f"-{port}.db", "-443.db"))
    assert not list(data.glob(f"controller-{port}.db"))
    async with run_eldric("controller", tmp_path, port=port, bind="127.0.0.1", cluster_key="ck",
                          advertise_url="https://ctl.example.com:443"):
        async with aiohttp.ClientSession() as s:
            _, listing = await _get(s, f"http://127.0.0.1:{port}/api/v1/workers")
    assert [w["id"] for w in listing["workers"]] == ["wrk-kept"]
    assert (data / f"controller-{port}.db").exists() and not (data / "controller-443.db").exists()


async def test_workers_register_heartbeat_go_offline_and_expire(tmp_path):
    async with controller(tmp_path, worker_timeout=400, worker_expiry=1200) as c:
        base = c["controller"]
        async with aiohttp.ClientSession() as s:
            async with run_eldric("worker", tmp_path / "w", port=0, bind="127.0.0.1",
                                  backend="mock", controller=base, heartbeat_interval=100):
                _, listing = await until(lambda: _listing(s, base))
                (w,) = listing["workers"]
                assert w["id"].startswith("wrk-") and w["worker_type"] == "inference"
                assert w["status"] == "healthy" and w["models"] == ["eldric-mock"]
                assert w["backend"]["type"] == "mock"
                first_beat = w["last_heartbeat"]
                await asyncio.sleep(0.3)
                _, again = await _get(s, f"{base}/api/v1/workers/{w['id']}")
                assert again["last_heartbeat"] > first_beat  # heartbeats arrive
            # The worker stopped: offline after --worker-timeout, gone after --worker-expiry.
            await until(lambda: _status_is(s, base, w["id"], "offline"))
            await until(lambda: _status_is(s, base, w["id"], None), timeout=3)


async def _listing(s, base):
    status, body = await _get(s, f"{base}/api/v1/workers")
    return (status, body) if body["workers"] else None


async def _status_is(s, base, wid, want):
    status, body = await _get(s, f"{base}/api/v1/workers/{wid}")
    if want is None:
        return status == 404
    return status == 200 and body["status"] == want


async def test_reregister_keeps_id_and_unknown_heartbeat_is_404(tmp_path):
    async with controller(tmp_path) as c:
        base = c["controller"]
        async with aiohttp.ClientSession() as s:
            info = {"worker_type": "cloud", "url": "http://127.0.0.1:9", "models": ["gpt-4o"]}
            async with s.post(base + "/api/v1/workers/register", json=info) as r:
                wid = (await r.json())["id"]
            assert wid.startswith("cld-")
            async with s.post(base + "/api/v1/workers/register",
                              json={**info, "id": wid, "models": ["gpt-4o", "o3"]}) as r:
                assert (await r.json())["id"] == wid
            _, rec = await _get(s, f"{base}/api/v1/workers/{wid}")
            assert rec["models"] == ["gpt-4o", "o3"]
            async with s.post(base + "/api/v1/workers/wrk-nope/heartbeat",
                              json={"status": "healthy", "load": {}}) as r:
                assert r.status == 404
                assert (await r.json())["error"]["code"] == "worker_not_found"


@pytest.mark.parametrize("body,param", [
    (b"{", None),
    (b'{"url": "http://x"}', "worker_type"),
    (b'{"worker_type": "gpu", "url": "http://x"}', "worker_type"),
    (b'{"worker_type": "inference", "url": "ftp://x"}', "url"),
    (b'{"worker_type": "inference", "url": "http://x", "models": "m"}', "models"),
])
async def test_bad_registration_bodies_are_400(tmp_path, body, param):
    async with controller(tmp_path) as c:
        async with aiohttp.ClientSession() as s:
            async with s.post(c["controller"] + "/api/v1/workers/register", data=body) as r:
                assert r.status == 400
                err = (await r.json())["error"]
    assert err["type"] == "invalid_request_error" and err["param"] == param


async def test_cluster_and_admin_keys(tmp_path):
    async with controller(tmp_path, cluster_key="ck", admin_key="ak") as c:
        base = c["controller"]
        info = {"worker_type": "inference", "url": "http://127.0.0.1:9"}
        async with aiohttp.ClientSession() as s:
            async with s.post(base + "/api/v1/workers/register", json=info) as r:
                assert r.status == 401
            async with s.post(base + "/api/v1/workers/register", json=info,
                              headers={"X-API-Key": "wrong"}) as r:
                assert r.status == 401
            async with s.post(base + "/api/v1/workers/register", json=info,
                              headers={"Authorization": "Bearer ck"}) as r:
                wid = (await r.json())["id"]
            async with s.post(f"{base}/api/v1/workers/{wid}/heartbeat",
                              json={"status": "degraded", "load": {"cpu_percent": 5}}) as r:
                assert r.status == 401
            async with s.post(f"{base}/api/v1/workers/{wid}/heartbeat",
                              json={"status": "degraded", "load": {"cpu_percent": 5}},
                              headers={"X-API-Key": "ck"}) as r:
                assert r.status == 200
            async with s.delete(f"{base}/api/v1/workers/{wid}",
                                headers={"X-API-Key": "ck"}) as r:
                assert r.status == 401  # the cluster key is not the admin key
            async with s.post(base + "/api/v1/router/config", json={"strategy": "random"}) as r:
                assert r.status == 401
            async with s.delete(f"{base}/api/v1/workers/{wid}",
                                headers={"Authorization": "Bearer ak"}) as r:
                assert r.status == 200
            assert (await _get(s, f"{base}/api/v1/workers/{wid}"))[0] == 404
        # A real worker with the cluster key joins.
        async with run_eldric("worker", tmp_path / "w", port=0, bind="127.0.0.1",
                              backend="mock", controller=base, api_key="ck",
                              heartbeat_interval=100):
            async with aiohttp.ClientSession() as s:
                await until(lambda: _listing(s, base))


async def test_filters_discover_and_model_coverage(tmp_path):
    async with controller(tmp_path) as c:
        base = c["controller"]
        async with aiohttp.ClientSession() as s:
            for body in ({"worker_type": "inference", "url": "http://a:1", "models": ["llama", "qwen"]},
                         {"worker_type": "inference", "url": "http://b:1", "models": ["llama"],
                          "status": "degraded"},
                         {"worker_type": "data", "url": "http://c:1"}):
                async with s.post(base + "/api/v1/workers/register", json=body) as r:
                    assert r.status == 200
            _, inf = await _get(s, base + "/api/v1/workers?type=inference")
            assert len(inf["workers"]) == 2
            _, deg = await _get(s, base + "/api/v1/workers?status=degraded")
            assert [w["url"] for w in deg["workers"]] == ["http://b:1"]
            _, qwen = await _get(s, base + "/api/v1/workers?model=qwen")
            assert [w["url"] for w in qwen["workers"]] == ["http://a:1"]
            assert (await _get(s, base + "/api/v1/workers?status=sleepy"))[0] == 400
            async with s.post(base + "/api/v1/workers/discover",
                              json={"worker_type": "data"}) as r:
                assert [w["url"] for w in (await r.json())["workers"]] == ["http://c:1"]
            _, models = await _get(s, base + "/api/v1/models")
    by_id = {m["id"]: m for m in models["models"]}
    assert by_id["llama"]["coverage_percent"] == 100.0 and len(by_id["llama"]["workers"]) == 2
    assert by_id["qwen"]["coverage_percent"] == 50.0


async def test_router_config_round_trip_and_validation(tmp_path):
    async with controller(tmp_path) as c:
        base = c["controller"]
        async with aiohttp.ClientSession() as s:
            async with s.post(base + "/api/v1/router/config", json={"strategy": "best"}) as r:
                assert r.status == 400 and (await r.json())["error"]["param"] == "strategy"
            async with s.post(base + "/api/v1/router/config",
                              json={"strategy": "least_connections"}) as r:
                assert r.status == 200
            assert (await _get(s, base + "/api/v1/router/config"))[1] == {
                "strategy": "least_connections"}
            _, listing = await _get(s, base + "/api/v1/workers")
            assert listing["router_config"] == {"strategy": "least_connections"}


async def test_router_routes_to_a_worker_that_registered_after_it_started(tmp_path):
    async with controller(tmp_path) as c:
        base = c["controller"]
        async with aiohttp.ClientSession() as s:
            async with s.post(base + "/api/v1/router/config", json={"strategy": "round_robin"}):
                pass
            async with run_eldric("router", tmp_path / "r", port=0, bind="127.0.0.1",
                                  controller=base, sync_interval=100) as r:
                router = r["router"]
                async with s.post(router + "/v1/chat/completions",
                                  json={"model": "eldric-mock", "messages": MSG}) as resp:
                    assert resp.status == 404  # nobody serves it yet
                async with run_eldric("worker", tmp_path / "w", port=0, bind="127.0.0.1",
                                      backend="mock", controller=base, heartbeat_interval=100):
                    async def served():
                        async with s.post(router + "/v1/chat/completions",
                                          json={"model": "eldric-mock", "messages": MSG}) as resp:
                            return resp if resp.status == 200 else None
                    resp = await until(served)
                    assert resp.headers["X-Eldric-Worker"].startswith("wrk-")
                    assert resp.headers["X-Eldric-Strategy"] == "round_robin"


def test_sigkill_and_restart_keeps_the_registry(eldric_proc, tmp_path):
    import json
    import urllib.request

    port = free_port()
    args = ("--role", "controller", "--port", str(port), "--bind", "127.0.0.1",
            "--data-dir", str(tmp_path))
    proc = eldric_proc(*args)
    base = f"http://127.0.0.1:{port}"
    proc.wait_http(base + "/health")
    req = urllib.request.Request(base + "/api/v1/workers/register", data=json.dumps(
        {"worker_type": "inference", "url": "http://127.0.0.1:9", "models": ["m"]}).encode(),
        headers={"Content-Type": "application/json"})
    wid = json.loads(urllib.request.urlopen(req).read())["id"]
    req = urllib.request.Request(base + "/api/v1/router/config",
                                 data=b'{"strategy": "random"}')
    urllib.request.urlopen(req).read()
    proc.p.send_signal(signal.SIGKILL)
    proc.p.wait(5)
    proc2 = eldric_proc(*args)
    proc2.wait_http(base + "/health")
    listing = json.loads(urllib.request.urlopen(base + "/api/v1/workers").read())
    assert [w["id"] for w in listing["workers"]] == [wid]
    assert listing["router_config"] == {"strategy": "random"}


async def test_open_control_plane_warning(eldric_proc, tmp_path):
    port = free_port()
    proc = eldric_proc("--role", "controller", "--port", str(port), "--bind", "0.0.0.0",
                       "--data-dir", str(tmp_path))
    proc.wait_http(f"http://127.0.0.1:{port}/health")
    assert "control_plane_open" in proc.stop()
    proc = eldric_proc("--role", "controller", "--port", str(port), "--bind", "0.0.0.0",
                       "--data-dir", str(tmp_path), "--cluster-key", "k", "--admin-key", "a")
    proc.wait_http(f"http://127.0.0.1:{port}/health")
    out = proc.stop()
    assert "control_plane_open" not in out and "controller_ready" in out


async def test_heartbeats_a_failed_flush_did_not_write_are_written_by_the_next(tmp_path):
    """The disk failing once loses no heartbeat: what the failed flush held is kept dirty
    and written by the next flush."""
    from eldric.roles.controller.registry import Registry
    from eldric.store.sqlite import Store
    from eldric.wire.cluster import Heartbeat, Load, WorkerInfo

    store = Store(str(tmp_path / "c.db"), ["workers", "settings"])
    await store.open()
    try:
        reg = Registry(store)
        rec = await reg.register(WorkerInfo(worker_type="inference", url="http://w:1"))
        assert reg.heartbeat(rec.id, Heartbeat(status="degraded", load=Load(),
                                               models=["m"], active_requests=3))
        real_write = store.write

        async def failing_write(*args, **kwargs):  # type: ignore[no-untyped-def]
            raise OSError("disk full")

        store.write = failing_write  # type: ignore[method-assign]
        with pytest.raises(OSError):
            await reg.flush()
        store.write = real_write  # type: ignore[method-assign]
        await reg.flush()
        again = Registry(store)
        await again.load()
        assert again.workers[rec.id].status == "degraded"
        assert again.workers[rec.id].models == ["m"]
    finally:
        await store.close()


async def test_heartbeats_carry_the_backend_state(tmp_path):
    """A worker that registered while its backend was down (an embedded model still
    loading) shows the backend healthy once a heartbeat says so."""
    async with controller(tmp_path) as c:
        base = c["controller"]
        async with aiohttp.ClientSession() as s:
            info = {"worker_type": "inference", "url": "http://127.0.0.1:9", "status": "unhealthy",
                    "backend": {"type": "embedded", "url": "http://127.0.0.1:7", "healthy": False}}
            async with s.post(base + "/api/v1/workers/register", json=info) as r:
                wid = (await r.json())["id"]
            beat = {"status": "healthy", "load": {}, "models": ["SmolLM2-135M-Instruct"],
                    "backend": {"type": "embedded", "url": "http://127.0.0.1:7", "healthy": True}}
            async with s.post(f"{base}/api/v1/workers/{wid}/heartbeat", json=beat) as r:
                assert r.status == 200
            _, rec = await _get(s, f"{base}/api/v1/workers/{wid}")
            assert rec["backend"] == beat["backend"] and rec["status"] == "healthy"
            # A member that sends no backend (an older one) keeps what it registered with.
            async with s.post(f"{base}/api/v1/workers/{wid}/heartbeat",
                              json={"status": "healthy", "load": {}}) as r:
                assert r.status == 200
            _, rec = await _get(s, f"{base}/api/v1/workers/{wid}")
            assert rec["backend"]["healthy"] is True


async def test_a_real_worker_heartbeats_its_backend_coming_up(tmp_path):
    """The worker's backend is down when it registers and comes up later: the controller
    (and so its dashboard) follows."""
    port = free_port()
    async with controller(tmp_path) as c:
        base = c["controller"]
        async with run_eldric("worker", tmp_path / "w", port=0, bind="127.0.0.1",
                              backend="ollama", backend_url=f"http://127.0.0.1:{port}",
                              controller=base, heartbeat_interval=100, health_interval=100):
            async with aiohttp.ClientSession() as s:
                rec = (await until(lambda: _listing(s, base)))[1]["workers"][0]
                assert rec["backend"]["healthy"] is False
                server = TestServer(fake_ollama.make_app(), host="127.0.0.1", port=port)
                await server.start_server()
                try:
                    async def backend_up():
                        _, body = await _get(s, f"{base}/api/v1/workers/{rec['id']}")
                        return body["backend"]["healthy"] and body["status"] == "healthy"
                    await until(backend_up)
                finally:
                    await server.close()


async def test_deregister_marks_offline_keeps_the_record_and_needs_the_key(tmp_path):
    async with controller(tmp_path, cluster_key="ck") as c:
        base = c["controller"]
        key = {"Authorization": "Bearer ck"}
        async with aiohttp.ClientSession() as s:
            info = {"worker_type": "inference", "url": "http://127.0.0.1:9", "models": ["m"]}
            async with s.post(base + "/api/v1/workers/register", json=info, headers=key) as r:
                wid = (await r.json())["id"]
            async with s.post(f"{base}/api/v1/workers/{wid}/deregister") as r:
                assert r.status == 401
                assert (await r.json())["error"]["code"] == "invalid_api_key"
            async with s.post(f"{base}/api/v1/workers/wrk-nope/deregister", headers=key) as r:
                assert r.status == 404
                assert (await r.json())["error"]["code"] == "worker_not_found"
            async with s.post(f"{base}/api/v1/workers/{wid}/deregister", headers=key) as r:
                assert r.status == 200 and (await r.json()) == {"id": wid, "status": "offline"}
            _, rec = await _get(s, f"{base}/api/v1/workers/{wid}")
            assert rec["status"] == "offline" and rec["models"] == ["m"]
            _, models = await _get(s, base + "/api/v1/models")
            assert models["models"] == []  # offline serves nothing
            async with s.post(base + "/api/v1/workers/register", json={**info, "id": wid},
                              headers=key) as r:
                assert (await r.json())["id"] == wid
            _, rec = await _get(s, f"{base}/api/v1/workers/{wid}")
            assert rec["status"] == "healthy"


async def test_the_worker_list_long_polls_on_the_registry_version(tmp_path):
    async with controller(tmp_path) as c:
        base = c["controller"]
        async with aiohttp.ClientSession() as s:
            _, first = await _get(s, base + "/api/v1/workers")
            v0 = first["version"]
            assert isinstance(v0, str) and v0
            # Nothing changes: held for the wait, then answered with the same version.
            started = asyncio.get_running_loop().time()
            _, same = await _get(s, f"{base}/api/v1/workers?since={v0}&wait=300")
            assert asyncio.get_running_loop().time() - started >= 0.25
            assert same["version"] == v0
            # A stale version is answered at once.
            started = asyncio.get_running_loop().time()
            _, now = await _get(s, f"{base}/api/v1/workers?since=old-1&wait=5000")
            assert asyncio.get_running_loop().time() - started < 1 and now["version"] == v0

            async def waiter(since):  # type: ignore[no-untyped-def]
                return await _get(s, f"{base}/api/v1/workers?since={since}&wait=10000")

            # Each change a router acts on answers every waiter at once, with a new version.
            info = {"worker_type": "inference", "url": "http://127.0.0.1:9", "models": ["m"]}
            held = [asyncio.create_task(waiter(v0)) for _ in range(3)]
            await asyncio.sleep(0.1)
            assert not any(t.done() for t in held)
            async with s.post(base + "/api/v1/workers/register", json=info) as r:
                wid = (await r.json())["id"]
            results = await asyncio.wait_for(asyncio.gather(*held), 2)
            v1 = results[0][1]["version"]
            assert v1 != v0 and all(b["version"] == v1 for _, b in results)
            assert [w["id"] for w in results[0][1]["workers"]] == [wid]

            # A heartbeat that only reports load does not wake anyone; new models do.
            held = asyncio.create_task(waiter(v1))
            async with s.post(f"{base}/api/v1/workers/{wid}/heartbeat",
                              json={"status": "healthy", "load": {"cpu_percent": 50},
                                    "models": ["m"]}) as r:
                assert r.status == 200
            await asyncio.sleep(0.2)
            assert not held.done()
            async with s.post(f"{base}/api/v1/workers/{wid}/heartbeat",
                              json={"status": "healthy", "load": {}, "models": ["m", "n"]}):
                pass
            _, body = await asyncio.wait_for(held, 2)
            v2 = body["version"]
            assert v2 != v1
            for change in (
                    s.post(base + "/api/v1/router/config", json={"strategy": "random"}),
                    s.post(f"{base}/api/v1/workers/{wid}/deregister"),
                    s.delete(f"{base}/api/v1/workers/{wid}")):
                held = asyncio.create_task(waiter(v2))
                await asyncio.sleep(0.05)
                async with change as r:
                    assert r.status == 200
                _, body = await asyncio.wait_for(held, 2)
                assert body["version"] != v2
                v2 = body["version"]
            for bad in ("abc", "-1", "999999"):
                status, body = await _get(s, f"{base}/api/v1/workers?since={v2}&wait={bad}")
                assert status == 400 and body["error"]["param"] == "wait"


async def test_a_held_long_poll_does_not_hold_up_the_controllers_stop(tmp_path):
    cm = controller(tmp_path)
    urls = await cm.__aenter__()
    base = urls["controller"]
    async with aiohttp.ClientSession() as s:
        _, first = await _get(s, base + "/api/v1/workers")
        held = asyncio.create_task(
            _get(s, f"{base}/api/v1/workers?since={first['version']}&wait=50000"))
        await asyncio.sleep(0.1)
        started = asyncio.get_running_loop().time()
        await cm.__aexit__(None, None, None)
        assert asyncio.get_running_loop().time() - started < 2
        status, body = await asyncio.wait_for(held, 1)
    assert status == 200 and body["version"] == first["version"]
