"""A member's life at the controller (eldric.cluster.membership): it leaves on a clean
stop, within a bound, and a controller that refuses it is logged for what it is."""

from __future__ import annotations

import asyncio
import json
import signal
import time

import aiohttp

from tests.conftest import free_port, run_eldric, until, url_of
from tests.fakes import controller as fake_controller
from tests.fakes.controller import STATE


def controller(tmp_path, **flags):
    return run_eldric("controller", tmp_path / "ctl", port=0, bind="127.0.0.1", **flags)


async def _record(s: aiohttp.ClientSession, base: str, wid: str | None = None) -> dict | None:
    """The one worker the controller lists (or the one named), None if it has none."""
    async with s.get(f"{base}/api/v1/workers") as r:
        workers = (await r.json())["workers"]
    found = [w for w in workers if wid is None or w["id"] == wid]
    return found[0] if found else None


async def _healthy(s, base):  # type: ignore[no-untyped-def]
    rec = await _record(s, base)
    return rec if rec and rec["status"] == "healthy" else None


async def test_a_clean_stop_is_offline_at_once_and_a_restart_comes_back_as_itself(tmp_path):
    port = free_port()  # the id file is named for the port: the restart finds it
    async with controller(tmp_path, cluster_key="ck") as c:
        base = c["controller"]
        flags = dict(port=port, bind="127.0.0.1", backend="mock", controller=base,
                     api_key="ck", heartbeat_interval=100)
        async with aiohttp.ClientSession() as s:
            async with run_eldric("worker", tmp_path / "w", **flags) as w:
                wid = (await until(lambda: _healthy(s, base)))["id"]
                await until(lambda: _knows_its_id(s, w["worker"], wid))
            # No waiting for --worker-timeout (90 s): the worker said so as it stopped.
            rec = await _record(s, base, wid)
            assert rec is not None and rec["status"] == "offline"
            async with run_eldric("worker", tmp_path / "w", **flags):
                back = await until(lambda: _healthy(s, base))
            assert back["id"] == wid
            async with s.get(f"{base}/api/v1/workers") as r:
                assert len((await r.json())["workers"]) == 1


async def test_sigterm_deregisters_a_worker_process(tmp_path, eldric_proc):
    async with controller(tmp_path, cluster_key="ck") as c:
        base = c["controller"]
        port = free_port()
        proc = eldric_proc("--role", "worker", "--backend", "mock", "--port", str(port),
                           "--bind", "127.0.0.1", "--controller", base, "--api-key", "ck",
                           "--heartbeat-interval", "200", "--data-dir", str(tmp_path / "w"))
        async with aiohttp.ClientSession() as s:
            wid = (await until(lambda: _healthy(s, base), timeout=20))["id"]
            await until(lambda: _knows_its_id(s, f"http://127.0.0.1:{port}", wid))
            proc.p.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(proc.p.wait, 15)
            assert code == 0, proc.output()
            rec = await _record(s, base, wid)
    assert rec is not None and rec["status"] == "offline", proc.output()
    assert "deregistered" in proc.output(), proc.output()


async def test_a_controller_that_does_not_answer_delays_the_stop_by_a_second_at_most(
        aiohttp_server, tmp_path):
    server = await aiohttp_server(fake_controller.make_app())
    st = server.app[STATE]
    st.deregister_delay = 3.0  # it takes the request and says nothing
    async with run_eldric("worker", tmp_path, port=0, bind="127.0.0.1", backend="mock",
                          controller=url_of(server), heartbeat_interval=50):
        await until(lambda: st.heartbeats)
        started = time.monotonic()
    took = time.monotonic() - started
    assert st.deregistrations == [st.registrations[0]["id"]]
    assert took < 1.8, f"stopping took {took:.2f}s"


async def test_an_unreachable_controller_does_not_delay_the_stop(tmp_path):
    """Registered, then the controller died: leaving fails fast and quietly."""
    async with controller(tmp_path) as c:
        base = c["controller"]
        cm = run_eldric("worker", tmp_path / "w", port=0, bind="127.0.0.1", backend="mock",
                        controller=base, heartbeat_interval=50)
        await cm.__aenter__()
        async with aiohttp.ClientSession() as s:
            await until(lambda: _healthy(s, base))
    started = time.monotonic()
    await cm.__aexit__(None, None, None)
    assert time.monotonic() - started < 1.5


async def _knows_its_id(s, url, wid):  # type: ignore[no-untyped-def]
    async with s.get(url + "/health") as r:
        return (await r.json())["worker_id"] == wid


def _lines(output: str) -> list[dict]:
    out = []
    for line in output.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


async def test_refused_keys_and_controller_errors_are_logged_as_such(aiohttp_server, eldric_proc,
                                                                     tmp_path):
    server = await aiohttp_server(fake_controller.make_app())
    st = server.app[STATE]

    def err(message: str, type_: str, code: str | None) -> bytes:
        return json.dumps({"error": {"message": message, "type": type_, "param": None,
                                     "code": code}}).encode()

    st.register_replies = [
        (401, err("missing cluster key", "authentication_error", "invalid_api_key"),
         "application/json"),
        (403, err("this key may not register", "permission_error", None), "application/json"),
        (500, err("the registry is read-only", "api_error", "internal_error"),
         "application/json"),
        (502, b"<html><body><h1>502 Bad Gateway</h1></body></html>", "text/html"),
    ]
    proc = eldric_proc("--role", "worker", "--backend", "mock", "--port", "0",
                       "--bind", "127.0.0.1", "--controller", url_of(server),
                       "--heartbeat-interval", "50", "--log-format", "json",
                       "--data-dir", str(tmp_path))
    await until(lambda: st.heartbeats, timeout=20)  # kept trying, then joined
    lines = _lines(await asyncio.to_thread(proc.stop))

    refused = [x for x in lines if x.get("event") == "controller_refused_key"]
    assert [x["status"] for x in refused] == [401, 403], refused
    for x in refused:
        assert x["level"] == "warning"
        assert "--api-key" in x["advice"] and "ELDRIC_WORKER_API_KEY" in x["advice"]
        assert "--cluster-key" in x["advice"]
    errors = {x["status"]: x for x in lines if x.get("event") == "controller_error"}
    assert errors[500]["message"] == "the registry is read-only"
    assert "message" not in errors[502]  # not OpenAI-shaped: no body in the log
    assert not [x for x in lines if x.get("event") == "controller_unreachable"]
    text = json.dumps(lines)
    assert "<html>" not in text and "b'" not in text and 'b\\"' not in text


async def test_a_wrong_key_says_so(aiohttp_server, eldric_proc, tmp_path):
    server = await aiohttp_server(fake_controller.make_app(cluster_key="right"))
    st = server.app[STATE]
    proc = eldric_proc("--role", "worker", "--backend", "mock", "--port", "0",
                       "--bind", "127.0.0.1", "--controller", url_of(server), "--api-key",
                       "wrong", "--heartbeat-interval", "50", "--log-format", "json",
                       "--data-dir", str(tmp_path))
    await until(lambda: st.refused >= 3, timeout=20)
    lines = _lines(await asyncio.to_thread(proc.stop))
    refused = [x for x in lines if x.get("event") == "controller_refused_key"]
    assert len(refused) == 1, refused  # once, not once per retry
    assert "is not the controller's --cluster-key" in refused[0]["advice"]
    assert "wrong" not in json.dumps(lines)  # the key itself is never logged
