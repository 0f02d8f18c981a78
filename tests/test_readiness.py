""""ready" means a request would succeed: the banner waits for the roles' readiness hooks
(a backend answering, a healthy worker at the router, a healthy router at the edge), says
what is missing after --ready-timeout, and says "ready" when it comes."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from eldric import readiness
from eldric.readiness import Readiness
from eldric.registry import Role
from tests.conftest import free_port, until
from tests.fakes import openai_server
from tests.test_quickstart import NO_KEYS


async def test_a_cluster_whose_backend_comes_late(eldric_proc, tmp_path, aiohttp_server):
    """The quick start (`--role all`, on free ports), its worker fronting a vLLM that is not
    up yet: the banner says what each role waits for, after the timeout that they are not
    ready, then (the backend started) "ready", and the first request after it succeeds."""
    ports = {r: free_port() for r in ("backend", "controller", "worker", "router", "edge")}
    url = {r: f"http://127.0.0.1:{p}" for r, p in ports.items()}
    config = {
        "ready_timeout_ms": 1000,
        "controller": {"port": ports["controller"]},
        "worker": {"port": ports["worker"], "backend": "vllm", "backend_url": url["backend"],
                   "controller_url": url["controller"]},
        "router": {"port": ports["router"], "workers": [{"url": url["worker"]}],
                   "controller_url": url["controller"]},
        "edge": {"http_port": ports["edge"], "router_urls": [url["router"]]},
    }
    path = tmp_path / "cluster.json"
    path.write_text(json.dumps(config))
    proc = eldric_proc("--role", "all", "--config", str(path),
                       env={"XDG_DATA_HOME": str(tmp_path), **NO_KEYS})

    waiting = await until(lambda: _section(proc.output(), "not ready yet; waiting for:"), 15)
    assert f"its vllm backend at {url['backend']}" in waiting["worker"]
    assert waiting["router"].startswith(f"a healthy worker ({url['worker']}: ")
    assert waiting["edge"].startswith(f"a healthy router ({url['router']}: ")
    assert "controller" not in waiting
    late = await until(lambda: _section(proc.output(), "not ready after 1 s; still waiting for:"), 10)
    assert set(late) == {"worker", "router", "edge"}
    assert "ready:" not in proc.output()

    backend = await aiohttp_server(openai_server.make_app(), port=ports["backend"])
    model = openai_server.MODELS[0]
    await until(lambda: "ready:" in proc.output(), 15)
    async with aiohttp.ClientSession() as http:  # at once, no retry: ready means ready
        async with http.post(url["edge"] + "/v1/chat/completions", json={
                "model": model, "messages": [{"role": "user", "content": "hi"}]}) as r:
            assert r.status == 200, await r.text()
            assert (await r.json())["model"] == model
    out = proc.stop()
    ready = out.split("ready:", 1)[1]
    assert f"worker      {url['worker']}" in ready and f"edge        {url['edge']}" in ready
    await backend.close()


def _section(out: str, heading: str) -> dict[str, str] | None:
    """The indented `role  text` lines under a banner heading, or None before it."""
    if heading not in out:
        return None
    rows: dict[str, str] = {}
    for line in out.split(heading, 1)[1].splitlines()[1:]:
        if not line.startswith("  "):
            break
        name, _, why = line.strip().partition(" ")
        rows[name] = why.strip()
    return rows


# ---------------------------------------------------------------- the watcher itself


def _role(name: str, hook) -> Role:  # type: ignore[no-untyped-def]
    return Role(name=name, port=0, config=object, build=lambda app, cfg: None,  # type: ignore[arg-type]
                waiting_for=hook)


async def test_watch_reports_at_once_then_when_ready():
    calls = {"n": 0}

    async def loading(app):  # ready on its third look
        calls["n"] += 1
        return None if calls["n"] >= 3 else "the model to load"

    reports: list[Readiness] = []
    apps = [(_role("worker", loading), None), (_role("controller", None), None),
            (_role("router", lambda app: None), None)]
    await asyncio.wait_for(readiness.watch(apps, {"worker": "u"}, reports.append, 30), 5)
    assert [r.waiting for r in reports] == [{"worker": "the model to load"}, {}]
    assert reports[-1].ready and not reports[-1].timed_out


async def test_watch_says_what_is_not_ready_after_the_timeout(monkeypatch):
    monkeypatch.setattr(readiness, "EVERY_AFTER_TIMEOUT", 0.05)
    monkeypatch.setattr(readiness, "ROUND_TIMEOUT", 0.1)
    state = {"broken": True}

    def broken(app):
        if state["broken"]:
            raise RuntimeError("no state yet")
        return None

    async def silent(app):
        if state["broken"]:
            await asyncio.sleep(10)

    reports: list[Readiness] = []
    task = asyncio.create_task(readiness.watch(
        [(_role("a", broken), None), (_role("b", silent), None)], {}, reports.append, 0.3))
    await until(lambda: len(reports) == 2, 5)
    first, late = reports
    assert not first.timed_out and late.timed_out and late.elapsed >= 0.3
    assert late.waiting == {"a": "its readiness check failed: RuntimeError: no state yet",
                            "b": "its readiness check did not answer within 0.1 s"}
    state["broken"] = False  # still watched after the timeout: "ready" comes when it is
    await asyncio.wait_for(task, 5)
    assert reports[-1].ready and reports[-1].timed_out and len(reports) == 3


@pytest.mark.parametrize("hooks", [[], [None]])
async def test_no_hook_means_ready_at_once(hooks):
    reports: list[Readiness] = []
    await readiness.watch([(_role("x", h), None) for h in hooks], {}, reports.append, 1)
    assert [r.ready for r in reports] == [True]
