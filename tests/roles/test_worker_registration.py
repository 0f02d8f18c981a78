"""Registration and heartbeats against a fake controller, including it being down."""

from __future__ import annotations

import asyncio

from tests.conftest import free_port, run_eldric, until, url_of
from tests.fakes import controller as fake_controller
from tests.fakes.controller import STATE


async def test_registers_heartbeats_and_keeps_its_id(fake_controller_server, tmp_path):
    st = fake_controller_server.app[STATE]
    flags = dict(backend="mock", port=0, bind="127.0.0.1", controller=url_of(fake_controller_server),
                 heartbeat_interval=50, tags="gpu,fast", advertise_url="http://10.1.2.3:8890")
    async with run_eldric("worker", tmp_path, **flags):
        await until(lambda: len(st.heartbeats) >= 2)
    first = st.registrations[0]
    assert "id" in first and first["id"].startswith("wrk-assigned")  # controller assigned it
    assert first["worker_type"] == "inference"
    assert first["url"] == "http://10.1.2.3:8890"
    assert first["backend"]["type"] == "mock" and first["backend"]["healthy"] is True
    assert first["models"] == ["eldric-mock"]
    assert first["tags"] == ["gpu", "fast"]
    assert set(first["load"]) == {"cpu_percent", "memory_percent", "gpu_percent",
                                  "gpu_memory_percent", "active_requests", "max_concurrency"}
    wid, beat = st.heartbeats[0]
    assert wid == first["id"]
    assert beat["status"] == "healthy" and beat["models"] == ["eldric-mock"]
    assert beat["backend"]["type"] == "mock" and beat["backend"]["healthy"] is True
    assert "load" in beat and "active_requests" in beat

    # A restarted worker (same data dir, same port) comes back with the same id.
    st.workers.clear()
    async with run_eldric("worker", tmp_path, **flags):
        await until(lambda: len(st.registrations) >= 2)
    assert st.registrations[1]["id"] == first["id"]


async def test_reregisters_after_404_on_heartbeat(fake_controller_server, tmp_path):
    st = fake_controller_server.app[STATE]
    async with run_eldric("worker", tmp_path, backend="mock", port=0, bind="127.0.0.1",
                          controller=url_of(fake_controller_server), heartbeat_interval=50):
        await until(lambda: len(st.heartbeats) >= 1)
        st.workers.clear()  # the controller restarted and forgot everyone
        await until(lambda: len(st.registrations) >= 2)
        assert st.registrations[1]["id"] == st.registrations[0]["id"]
        n = len(st.heartbeats)
        await until(lambda: len(st.heartbeats) > n)


async def test_controller_down_then_up(aiohttp_server, tmp_path):
    port = free_port()
    async with run_eldric("worker", tmp_path, backend="mock", port=0, bind="127.0.0.1",
                          controller=f"http://127.0.0.1:{port}", heartbeat_interval=100) as urls:
        import aiohttp

        async with aiohttp.ClientSession() as s:
            # The worker keeps serving while the controller is unreachable.
            async with s.post(urls["worker"] + "/v1/chat/completions",
                              json={"model": "eldric-mock",
                                    "messages": [{"role": "user", "content": "hi"}]}) as r:
                assert r.status == 200
            async with s.get(urls["worker"] + "/health") as r:
                assert r.status == 200
        await asyncio.sleep(0.3)
        server = await aiohttp_server(fake_controller.make_app(), port=port)
        st = server.app[STATE]
        await until(lambda: len(st.heartbeats) >= 1)  # retried with backoff, then joined
        await server.close()


async def test_cluster_key_is_sent(aiohttp_server, tmp_path):
    server = await aiohttp_server(fake_controller.make_app(cluster_key="k-cluster"))
    st = server.app[STATE]
    async with run_eldric("worker", tmp_path, backend="mock", port=0, bind="127.0.0.1",
                          controller=url_of(server), heartbeat_interval=50,
                          api_key="k-cluster"):
        await until(lambda: len(st.heartbeats) >= 1)


async def test_wrong_cluster_key_never_registers_but_keeps_serving(aiohttp_server, tmp_path):
    server = await aiohttp_server(fake_controller.make_app(cluster_key="k-cluster"))
    st = server.app[STATE]
    async with run_eldric("worker", tmp_path, backend="mock", port=0, bind="127.0.0.1",
                          controller=url_of(server), heartbeat_interval=50,
                          api_key="wrong") as urls:
        import aiohttp

        await until(lambda: st.refused >= 2)  # it did try (and tries again)
        async with aiohttp.ClientSession() as s:
            async with s.get(urls["worker"] + "/health") as r:
                assert r.status == 200
    assert st.registrations == []


async def test_state_files_are_named_for_the_port_and_claimed_per_process(tmp_path):
    """--port 0: the id file is worker-0.id on every run (nothing piles up); a second
    port-0 worker sharing the data dir while the first runs gets worker-0-2.id, not the
    first one's identity."""
    import aiohttp

    flags = dict(backend="mock", port=0, bind="127.0.0.1")

    async def worker_id(url):
        async with aiohttp.ClientSession() as s, s.get(url + "/health") as r:
            return (await r.json())["worker_id"]

    async with run_eldric("worker", tmp_path, **flags) as a, \
            run_eldric("worker", tmp_path, **flags) as b:
        first, second = await worker_id(a["worker"]), await worker_id(b["worker"])
    assert first != second
    data = tmp_path / "data"
    ids = sorted(p.name for p in data.glob("*.id"))
    assert ids == ["worker-0-2.id", "worker-0.id"]
    assert (data / "worker-0.id").read_text().strip() == first
    for _ in range(2):  # run again, alone: the same file, the same id, no new files
        async with run_eldric("worker", tmp_path, **flags) as a:
            assert await worker_id(a["worker"]) == first
    assert sorted(p.name for p in data.glob("*.id")) == ids
