"""The issue's fleet test: a real controller and three real eldric workers, each on a
fake Ollama (tests/fakes/ollama_models.py). One worker's Ollama fails mid-pull, one
worker is killed mid-pull: the job ends `partial` with the right state per worker; the
killed worker comes back, the retry brings the job to `completed`, and the model's
coverage at the controller goes to 100 %."""

from __future__ import annotations

import signal

import aiohttp

from tests.conftest import free_port, run_eldric, until, url_of
from tests.fakes import ollama as fake_ollama
from tests.fakes.ollama_models import MODELS, Models
from tests.models.fleet import by_worker, controller, finished, get, job, post, up

MODEL = "llama3.2:1b"


async def _listed(s, base, n):  # type: ignore[no-untyped-def]
    _, listing = await get(s, base + "/api/v1/workers?status=healthy")
    return listing["workers"] if len(listing["workers"]) == n else None


async def _coverage(s, base):  # type: ignore[no-untyped-def]
    _, body = await get(s, base + "/api/v1/models")
    return {m["id"]: m["coverage_percent"] for m in body["models"]}


async def test_one_worker_failing_and_one_killed_then_retry(aiohttp_server, tmp_path,
                                                            eldric_proc):
    ok = await aiohttp_server(fake_ollama.make_app(manage=Models()))
    failing = await aiohttp_server(fake_ollama.make_app(manage=Models(fail={MODEL: 1_000_000})))
    stalls = Models(stall={MODEL: 1_000_000})
    killed = await aiohttp_server(fake_ollama.make_app(manage=stalls))
    beat = {"heartbeat_interval": 100}
    async with controller(tmp_path, worker_timeout=1000, cluster_key="ck",
                          admin_key="ak") as c, aiohttp.ClientSession() as s:
        base = c["controller"]
        common = ("--role", "worker", "--backend", "ollama", "--controller", base,
                  "--api-key", "ck", "--bind", "127.0.0.1", "--heartbeat-interval", "100")
        port = free_port()
        victim = ("--port", str(port), "--backend-url", url_of(killed),
                  "--data-dir", str(tmp_path / "victim"))
        async with run_eldric("worker", tmp_path / "a", port=0, bind="127.0.0.1",
                              backend="ollama", backend_url=url_of(ok), controller=base,
                              api_key="ck", **beat), \
                run_eldric("worker", tmp_path / "b", port=0, bind="127.0.0.1",
                           backend="ollama", backend_url=url_of(failing), controller=base,
                           api_key="ck", **beat):
            proc = eldric_proc(*common, *victim)
            workers = await until(lambda: _listed(s, base, 3), timeout=20)
            ids = {w["url"]: w["id"] for w in workers}
            victim_id = ids[f"http://127.0.0.1:{port}"]
            assert all(w["model_ops"]["pull"] == ["ollama"] for w in workers)

            status, accepted = await post(s, base + "/api/v1/models/pull", {"model": MODEL},
                                          key="ak")
            assert status == 202
            jid = accepted["job_id"]
            # The victim is mid-pull (its Ollama stalls after 1 MB): it dies there.
            await until(lambda: _bytes(s, base, jid, victim_id, 1_000_000), timeout=10)
            proc.p.send_signal(signal.SIGKILL)
            proc.p.wait(5)
            j = await finished(s, base, jid, timeout=15)
            t = by_worker(j)
            assert j["state"] == "partial", j
            states = {w: x["state"] for w, x in t.items()}
            assert sorted(states.values()) == ["completed", "failed", "failed"]
            assert t[victim_id]["code"] == "worker_gone"
            (bad,) = [w for w, x in t.items() if x["state"] == "failed" and w != victim_id]
            assert t[bad]["code"] == "backend_error" and t[bad]["percent"] < 100
            (good,) = [w for w, x in t.items() if x["state"] == "completed"]
            assert t[good]["percent"] == 100.0
            assert (await _coverage(s, base))[MODEL] < 100

            # The victim comes back as itself, the failing Ollama is fixed: retry.
            stalls.stall.clear()
            failing.app[MODELS].fail.clear()
            eldric_proc(*common, *victim)
            await until(lambda: _listed(s, base, 3), timeout=20)
            status, again = await post(s, f"{base}/api/v1/models/pull-jobs/{jid}/retry", {},
                                       key="ak")
            assert status == 202 and sorted(again["retried"]) == sorted([bad, victim_id])
            j = await finished(s, base, jid, timeout=15)
            assert j["state"] == "completed", j
            assert all(x["state"] == "completed" for x in j["targets"])
            assert ok.app[MODELS].seen.count(("pull", MODEL)) == 1  # not pulled again
            assert await until(lambda: _full(s, base))


async def _bytes(s, base, jid, wid, at_least):  # type: ignore[no-untyped-def]
    t = by_worker(await job(s, base, jid))[wid]
    return t["completed_bytes"] >= at_least


async def _full(s, base):  # type: ignore[no-untyped-def]
    return (await _coverage(s, base)).get(MODEL) == 100.0


async def test_a_controller_killed_mid_job_finishes_it_after_its_restart(aiohttp_server,
                                                                         tmp_path, eldric_proc):
    """Real workers keep pulling while the controller is down; the restarted controller
    re-attaches to their operations (none is started twice) and the job completes."""
    stalls = Models(stall={MODEL: 1_000_000})
    ollama = await aiohttp_server(fake_ollama.make_app(manage=stalls))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    args = ("--role", "controller", "--port", str(port), "--bind", "127.0.0.1",
            "--data-dir", str(tmp_path / "c"), "--flush-interval", "100")
    async with aiohttp.ClientSession() as s:
        proc = eldric_proc(*args)
        await until(lambda: up(s, base), timeout=15)
        async with run_eldric("worker", tmp_path / "w", port=0, bind="127.0.0.1",
                              backend="ollama", backend_url=url_of(ollama), controller=base,
                              heartbeat_interval=100):
            (w,) = await until(lambda: _listed(s, base, 1), timeout=20)
            _, accepted = await post(s, base + "/api/v1/models/pull", {"model": MODEL})
            jid = accepted["job_id"]
            await until(lambda: _bytes(s, base, jid, w["id"], 1_000_000), timeout=10)
            proc.p.send_signal(signal.SIGKILL)
            proc.p.wait(5)
            eldric_proc(*args)
            await until(lambda: up(s, base), timeout=15)
            stalls.release.set()
            j = await finished(s, base, jid, timeout=15)
    assert j["state"] == "completed", j
    assert stalls.seen.count(("pull", MODEL)) == 1


async def test_show_list_and_delete_through_real_workers(aiohttp_server, tmp_path):
    """The controller's show, a worker's model list and a delete job, against real
    workers (the worker's own model API in front of the fake Ollama)."""
    servers = [await aiohttp_server(fake_ollama.make_app(manage=Models())) for _ in range(2)]
    async with controller(tmp_path, cluster_key="ck") as c, aiohttp.ClientSession() as s:
        base = c["controller"]
        member = {"controller": base, "api_key": "ck", "heartbeat_interval": 100,
                  "port": 0, "bind": "127.0.0.1", "backend": "ollama"}
        async with run_eldric("worker", tmp_path / "a", backend_url=url_of(servers[0]),
                              **member), \
                run_eldric("worker", tmp_path / "b", backend_url=url_of(servers[1]),
                           **member):
            workers = await until(lambda: _listed(s, base, 2), timeout=20)
            _, accepted = await post(s, base + "/api/v1/models/pull", {"model": MODEL})
            assert (await finished(s, base, accepted["job_id"]))["state"] == "completed"
            await until(lambda: _full(s, base))
            status, shown = await post(s, base + "/api/v1/models/show", {"model": MODEL})
            assert status == 200 and "template" in shown  # Ollama's /api/show, relayed
            status, local = await get(s, f"{base}/api/v1/workers/{workers[0]['id']}/models")
            assert status == 200 and local["backend"] == "ollama"
            assert MODEL in [m["name"] for m in local["models"]]
            async with s.delete(f"{base}/api/v1/models/{MODEL}") as r:
                assert r.status == 202
                j = await finished(s, base, (await r.json())["job_id"])
            assert j["kind"] == "delete" and j["state"] == "completed"
            assert len(j["targets"]) == 2

            async def gone():  # type: ignore[no-untyped-def]
                return MODEL not in await _coverage(s, base)
            await until(gone)
    assert all(("delete", MODEL) in srv.app[MODELS].seen for srv in servers)
