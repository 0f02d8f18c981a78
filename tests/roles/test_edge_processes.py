"""An edge of several processes (--processes): what must be exact stays exact.

Rate limits, created clients and budgets are kept in the farm's Redis when the edge runs
more than one process (each process would count apart otherwise); an edge that has them
and no Redis is refused at start-up, naming what to do."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import aiohttp

from tests.conftest import free_port, run_eldric

CHAT = {"model": "eldric-mock", "messages": [{"role": "user", "content": "hi"}]}


def _edge_argv(port: int, routers: str, *extra: str) -> list[str]:
    return ["--role", "edge", "--processes", "2", "--no-tls", "--http-port", str(port),
            "--bind", "127.0.0.1", "--routers", routers, "--health-interval", "60000",
            *extra]


def test_several_processes_without_redis_refuse_what_must_be_exact(tmp_path):
    routers = f"http://127.0.0.1:{free_port()}"

    def run(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "eldric",
                               *_edge_argv(free_port(), routers, "--api-key", "k",
                                           "--data-dir", str(tmp_path), *extra)],
                              capture_output=True, text=True, timeout=60,
                              stdin=subprocess.DEVNULL)

    cfg = tmp_path / "edge.json"
    cfg.write_text('{"edge": {"auth": {"clients": {"team": {"tpm": 1000}}}}}')
    for extra, named in ((("--global-rpm", "20"), "--global-rpm"),
                         (("--global-rpm", "0", "--per-ip-rpm", "0", "--per-key-rpm", "0",
                           "--config", str(cfg)), "client team's limits")):
        out = run(*extra)
        assert out.returncode == 2, out.stderr
        last = out.stderr.strip().splitlines()[-1]
        assert last.startswith("eldric: ") and "--processes 2" in last
        assert named in last and "--redis-url" in last
        assert "Traceback" not in out.stderr


async def _through(url: str, n: int) -> list[int]:
    """n requests at once, each on a connection of its own (so the kernel spreads them
    over the processes sharing the port)."""
    async def one(_i: int) -> int:
        conn = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=conn) as s, \
                s.post(url + "/v1/chat/completions", json=CHAT,
                       headers={"Authorization": "Bearer k"}) as r:
            await r.read()
            return r.status
    return list(await asyncio.gather(*(one(i) for i in range(n))))


async def _up(url: str, want: int, proc, timeout: float = 30) -> dict:
    """The edge's /api/v1/health once all `want` processes answer in it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    async with aiohttp.ClientSession() as s:
        while True:
            if proc.p.poll() is not None:
                raise AssertionError(f"the edge exited {proc.p.returncode}: {proc.output()}")
            try:
                async with s.get(url + "/api/v1/health") as r:
                    body = await r.json()
                    if r.status == 200 and len(body.get("processes", [])) == want:
                        return body
            except aiohttp.ClientError:
                pass
            if loop.time() > deadline:
                raise AssertionError(f"not {want} processes up within {timeout}s")
            await asyncio.sleep(0.1)


async def test_n_processes_enforce_one_limit_exactly(tmp_path, redis_url, eldric_proc):
    async with run_eldric("worker", tmp_path / "w", port=0, bind="127.0.0.1",
                          backend="mock") as w:
        port = free_port()
        edge = eldric_proc(*_edge_argv(port, w["worker"], "--api-key", "k", "--mode", "farm",
                                       "--redis-url", redis_url, "--global-rpm", "20",
                                       "--per-ip-rpm", "1000", "--per-key-rpm", "1000"))
        url = f"http://127.0.0.1:{port}"
        health = await _up(url, 2, edge)
        assert len({p["pid"] for p in health["processes"]}) == 2
        statuses = await _through(url, 40)
    # one global limit of 20 across both processes: exactly 20 through, 20 refused
    assert statuses.count(200) == 20 and statuses.count(429) == 20, statuses


async def test_several_processes_with_nothing_to_share_need_no_redis(tmp_path, eldric_proc):
    async with run_eldric("worker", tmp_path / "w", port=0, bind="127.0.0.1",
                          backend="mock") as w:
        port = free_port()
        edge = eldric_proc(*_edge_argv(port, w["worker"], "--api-key", "k", "--global-rpm",
                                       "0", "--per-ip-rpm", "0", "--per-key-rpm", "0",
                                       "--admin-key", "adm"))
        url = f"http://127.0.0.1:{port}"
        await _up(url, 2, edge)
        assert await _through(url, 20) == [200] * 20
        adm = {"Authorization": "Bearer adm"}
        async with aiohttp.ClientSession() as s:
            # a client's limits would be counted apart by each process: refused, named
            for body in ({"name": "a", "rpm": 10}, {"name": "b", "max_cost_per_day": 1.5}):
                async with s.post(url + "/api/v1/clients/register", json=body,
                                  headers=adm) as r:
                    assert r.status == 400
                    err = (await r.json())["error"]
                    assert err["code"] == "limits_need_farm" and err["param"] in body
            async with s.post(url + "/api/v1/clients/register", json={"name": "c"},
                              headers=adm) as r:
                assert r.status == 201
            async with s.patch(url + "/api/v1/clients/c", json={"tpm": 100},
                               headers=adm) as r:
                assert r.status == 400
                assert (await r.json())["error"]["code"] == "limits_need_farm"
            async with s.patch(url + "/api/v1/clients/c", json={"description": "x"},
                               headers=adm) as r:
                assert r.status == 200
