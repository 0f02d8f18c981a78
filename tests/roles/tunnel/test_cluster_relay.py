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
