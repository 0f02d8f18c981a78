"""Cluster management through the edge: a worker's registration, heartbeat and the
pipeline calls reach a real controller with the cluster key, under the edge's key, scope
and rate limits, and the controller learns who contributed the worker."""

from __future__ import annotations

import contextlib

import aiohttp

from tests.conftest import run_eldric
from tests.roles.tunnel.kit import PLAIN, WORKER, auth, edge

WORKER_INFO = {"worker_type": "inference", "url": "http://10.1.2.3:8890", "models": ["m"],
               "contributed_by": "someone else"}  # the edge's word wins


@contextlib.asynccontextmanager
async def relaying(tmp_path, **flags):  # type: ignore[no-untyped-def]
    """A controller (cluster key "ck") and an edge relaying to it: (controller, edge)."""
    async with run_eldric("controller", tmp_path / "c", port=0, bind="127.0.0.1",
                          cluster_key="ck") as c, \
            edge(tmp_path, controller=c["controller"], **flags) as url:
        yield c["controller"], url


async def test_a_worker_registers_and_beats_through_the_edge(tmp_path):
    async with relaying(tmp_path, cluster_key="ck") as (ctl, url), aiohttp.ClientSession() as s:
        async with s.post(url + "/api/v1/workers/register", json=WORKER_INFO,
                          headers=auth(WORKER)) as r:
            assert r.status == 200, await r.text()
            assert "X-RateLimit-Limit" in r.headers  # the edge's limits apply
            wid = (await r.json())["id"]
        async with s.post(f"{url}/api/v1/workers/{wid}/heartbeat", headers=auth(WORKER),
                          json={"status": "healthy", "load": {}}) as r:
            assert r.status == 200, await r.text()
        async with s.get(ctl + "/api/v1/workers", headers=auth("ck")) as r:
            (w,) = (await r.json())["workers"]
        assert w["id"] == wid and w["contributed_by"] == "home"
        async with s.post(url + "/api/v1/workers/discover", json={}, headers=auth(WORKER)) as r:
            assert r.status == 200, await r.text()
        # the controller has no pipeline API (yet): its own 404 comes back
        async with s.get(url + "/api/v1/pipeline/status", headers=auth(WORKER)) as r:
            assert r.status == 404
        async with s.post(url + "/api/v1/pipeline/deploy", json={}, headers=auth(WORKER)) as r:
            assert r.status == 404
        async with s.post(f"{url}/api/v1/workers/{wid}/deregister", headers=auth(WORKER)) as r:
            assert r.status == 200 and (await r.json())["status"] == "offline"


async def test_a_plain_key_cannot_register_a_worker(tmp_path):
    async with relaying(tmp_path, cluster_key="ck") as (ctl, url), aiohttp.ClientSession() as s:
        async with s.post(url + "/api/v1/workers/register", json=WORKER_INFO,
                          headers=auth(PLAIN)) as r:
            assert r.status == 403
            error = (await r.json())["error"]
            assert error["code"] == "scope_required" and error["param"] == "register"
        async with s.get(ctl + "/api/v1/workers", headers=auth("ck")) as r:
            assert (await r.json())["workers"] == []


async def test_without_a_cluster_key_the_controller_refuses_what_the_edge_relays(tmp_path):
    """The caller's edge key never goes on to the controller: only --cluster-key does."""
    async with relaying(tmp_path) as (_, url), aiohttp.ClientSession() as s:
        async with s.post(url + "/api/v1/workers/register", json=WORKER_INFO,
                          headers=auth(WORKER)) as r:
            assert r.status == 401


async def test_an_edge_without_a_controller_says_so(tmp_path):
    async with edge(tmp_path) as url, aiohttp.ClientSession() as s:
        async with s.post(url + "/api/v1/workers/register", json=WORKER_INFO,
                          headers=auth(WORKER)) as r:
            assert r.status == 503 and (await r.json())["error"]["code"] == "no_controller"


async def test_an_unreachable_controller_is_a_503(tmp_path):
    from tests.conftest import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    async with edge(tmp_path, controller=dead) as url, aiohttp.ClientSession() as s:
        async with s.post(url + "/api/v1/workers/register", json=WORKER_INFO,
                          headers=auth(WORKER)) as r:
            assert r.status == 503 and "X-RateLimit-Limit" in r.headers


async def test_a_client_cannot_beat_stop_or_take_over_another_clients_worker(tmp_path):
    """Two owners with the register scope: "lab" may not heartbeat, deregister or
    register again (with its own URL) the worker "home" contributed; a header naming
    "home" that "lab" sends itself is replaced by the edge. The operator (the cluster
    key, directly) still may."""
    from tests.roles.tunnel.kit import OTHER

    async with relaying(tmp_path, cluster_key="ck") as (ctl, url), aiohttp.ClientSession() as s:
        async with s.post(url + "/api/v1/workers/register", json=WORKER_INFO,
                          headers=auth(WORKER)) as r:
            wid = (await r.json())["id"]
        lab = {**auth(OTHER), "X-Eldric-Edge-Client": "home"}  # eldric.wire.cluster's
        calls = [(f"/api/v1/workers/{wid}/heartbeat", {"status": "unhealthy", "load": {}}),
                 (f"/api/v1/workers/{wid}/deregister", None),
                 ("/api/v1/workers/register",
                  {**WORKER_INFO, "id": wid, "url": "http://10.6.6.6:1"})]
        for path, body in calls:
            async with s.post(url + path, json=body, headers=lab) as r:
                assert r.status == 403, (path, await r.text())
                assert (await r.json())["error"]["code"] == "worker_forbidden"
        async with s.get(f"{ctl}/api/v1/workers/{wid}", headers=auth("ck")) as r:
            w = await r.json()
        assert w["status"] == "healthy" and w["url"] == WORKER_INFO["url"]
        assert w["contributed_by"] == "home"
        # its owner still may, and so may the operator without an edge
        async with s.post(f"{url}/api/v1/workers/{wid}/heartbeat", headers=auth(WORKER),
                          json={"status": "healthy", "load": {}}) as r:
            assert r.status == 200, await r.text()
        async with s.post(f"{ctl}/api/v1/workers/{wid}/deregister", headers=auth("ck")) as r:
            assert r.status == 200, await r.text()
        # a new worker of "lab"'s is its own
        async with s.post(url + "/api/v1/workers/register", headers=auth(OTHER),
                          json={**WORKER_INFO, "url": "http://10.6.6.6:1"}) as r:
            assert r.status == 200, await r.text()
            lab_wid = (await r.json())["id"]
        async with s.post(f"{url}/api/v1/workers/{lab_wid}/heartbeat", headers=auth(OTHER),
                          json={"status": "healthy", "load": {}}) as r:
            assert r.status == 200, await r.text()
