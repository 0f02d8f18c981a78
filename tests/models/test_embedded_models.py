"""The embedded backend's models (eldric.roles.worker.embedded_models) with llama.cpp
stood in for: which model loads when, the least recently used unloaded once idle, what a
request waiting for a load is told, a file that cannot load, and files appearing and
going. The real llama.cpp serving several models: tests/models/test_embedded_real.py."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path
from types import SimpleNamespace as NS

import pytest

from eldric.bus import UpstreamState
from eldric.errors import ModelNotFound, UpstreamUnavailable
from eldric.roles.worker import embedded
from eldric.roles.worker.backends import KINDS
from eldric.roles.worker.config import WorkerConfig
from eldric.roles.worker.embedded import Launch
from eldric.roles.worker.embedded_models import EmbeddedModels, ModelLoading
from eldric.roles.worker.state import WorkerState
from eldric.stream import Target, Timeouts
from eldric.sysload import HostLoad
from tests.conftest import until

GGUF = b"GGUF" + b"\0" * 60


class Llama:
    """Stands in for xllamacpp.Server: records starts and stops; a start of a model in
    `slow` blocks until released; one in `broken` raises as xllamacpp does."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.stopped: list[str] = []
        self.slow: dict[str, threading.Event] = {}
        self.broken: set[str] = set()
        self.port = 40000

    def start(self, launch: Launch) -> NS:
        if launch.model_id in self.slow:
            self.slow[launch.model_id].wait(10)
        if launch.model_id in self.broken:
            raise RuntimeError("failed to load model")
        self.started.append(launch.model_id)
        self.port += 1
        llama = self

        class Server:
            listening_address = f"http://127.0.0.1:{self.port}/"

            def __del__(self) -> None:
                llama.stopped.append(launch.model_id)

        return Server()


@pytest.fixture
def llama(monkeypatch):
    fake = Llama()
    monkeypatch.setattr(embedded, "start_server", fake.start)
    return fake


def _dir(tmp_path: Path, *names: str) -> Path:
    d = tmp_path / "models"
    d.mkdir(exist_ok=True)
    for n in names:
        (d / n).write_bytes(GGUF)
    return d


def _models(tmp_path: Path, *names: str, max_loaded: int = 1, wait: float = 2.0) -> EmbeddedModels:
    start = tmp_path / "Start-Q4_K_M.gguf"
    start.write_bytes(GGUF)
    up = UpstreamState(id="backend:embedded", url="", role="worker")
    current: list[Target] = []
    m = EmbeddedModels(Launch(model=str(start), model_id="Start", ctx=512, parallel=1,
                              threads=1),
                       _dir(tmp_path, *names), max_loaded=max_loaded, wait=wait,
                       pooling="auto", on_current=current.append,
                       target_of=lambda url: Target(state=up, base_url=url))
    m.current_targets = current  # type: ignore[attr-defined]
    return m


async def _use(m: EmbeddedModels, name: str | None) -> str:
    async with m.using(name) as target:
        return target.base_url


async def test_the_start_model_and_every_gguf_in_the_directory_are_served(tmp_path, llama):
    m = _models(tmp_path, "Second-Q8_0.gguf", "Third.gguf")
    assert m.names() == ["Second", "Start", "Third"]
    await m.start()
    assert [(s.id, s.loaded) for s in m.listed("embedded")] == [
        ("Second", False), ("Start", True), ("Third", False)]
    second = await _use(m, "Second")
    assert llama.started == ["Start", "Second"] and "Start" in llama.stopped  # max 1
    assert [s.id for s in m.listed("x") if s.loaded] == ["Second"]
    assert await _use(m, None) == second  # a path that names no model: the last one
    assert m.current_targets[-1].base_url == second  # type: ignore[attr-defined]
    local = {lm.name: lm for lm in m.local()}
    assert local["Second"].loaded and not local["Start"].loaded
    assert local["Third"].path == str(tmp_path / "models" / "Third.gguf")
    await m.stop()
    assert sorted(llama.stopped) == ["Second", "Start"]


async def test_the_least_recently_used_goes_first(tmp_path, llama):
    m = _models(tmp_path, "A.gguf", "B.gguf", max_loaded=2)
    await m.start()
    await _use(m, "A")  # Start, A loaded
    await _use(m, "Start")  # A now the least recently used
    await _use(m, "B")
    assert llama.stopped == ["A"]
    assert {s.id for s in m.listed("x") if s.loaded} == {"Start", "B"}
    await m.stop()


async def test_a_busy_model_is_unloaded_only_once_idle(tmp_path, llama):
    m = _models(tmp_path, "Second.gguf", wait=0.2)
    await m.start()
    async with m.using("Start"):  # a request in flight
        with pytest.raises(ModelLoading) as err:
            await _use(m, "Second")
        progress = json.loads(err.value.body())["error"]["progress"]
        assert progress["model"] == "Second" and progress["state"] == "waiting"
        assert llama.stopped == []
    await asyncio.wait_for(_use(m, "Second"), 2)  # once it is done, the load goes on
    assert llama.stopped == ["Start"]
    await m.stop()


async def test_a_request_for_a_loading_model_waits_then_gets_503_with_progress(tmp_path, llama):
    gate = llama.slow["Second"] = threading.Event()
    m = _models(tmp_path, "Second.gguf", wait=0.2)
    await m.start()
    t0 = time.monotonic()
    with pytest.raises(ModelLoading) as err:
        await _use(m, "Second")
    assert 0.2 <= time.monotonic() - t0 < 1.5  # waited the bound, no more
    assert err.value.status == 503 and err.value.code == "model_loading"
    retry = int(err.value.headers["Retry-After"])
    assert 1 <= retry <= 60
    body = json.loads(err.value.body())["error"]
    assert body["code"] == "model_loading" and body["type"] == "api_error"
    assert body["progress"]["state"] == "loading" and body["progress"]["size_bytes"] == len(GGUF)
    assert body["progress"]["waited_ms"] >= 200
    assert "estimated_percent" in body["progress"]  # the start model's load timed it
    # a second request joins the same load: one start of Second, not two
    waiting = asyncio.create_task(_use(m, "Second"))
    await asyncio.sleep(0.05)
    gate.set()
    await asyncio.wait_for(waiting, 5)
    assert llama.started == ["Start", "Second"]
    await m.stop()


async def test_a_model_that_cannot_load_is_503_model_load_failed_until_its_file_changes(
        tmp_path, llama):
    llama.broken.add("Bad")
    m = _models(tmp_path, "Bad.gguf", max_loaded=2)
    await m.start()
    for _ in range(2):
        with pytest.raises(UpstreamUnavailable) as err:
            await _use(m, "Bad")
        assert err.value.code == "model_load_failed" and "Bad.gguf" in err.value.message
    assert llama.started == ["Start"]  # the second request did not try again
    llama.broken.clear()
    (tmp_path / "models" / "Bad.gguf").write_bytes(GGUF + b"fixed")  # replaced
    await _use(m, "Bad")
    assert llama.started == ["Start", "Bad"]
    await m.stop()


async def test_a_file_that_is_not_gguf_unloads_nothing(tmp_path, llama):
    m = _models(tmp_path)
    (tmp_path / "models" / "Junk.gguf").write_bytes(b"<html>not found</html>")
    await m.start()
    with pytest.raises(UpstreamUnavailable) as err:
        await _use(m, "Junk")
    assert err.value.code == "model_load_failed" and "not a GGUF file" in err.value.message
    assert llama.stopped == [] and await _use(m, "Start")  # still loaded
    await m.stop()


async def test_new_files_are_served_at_once_and_removed_ones_unloaded(tmp_path, llama):
    m = _models(tmp_path, max_loaded=2)
    await m.start()
    with pytest.raises(ModelNotFound) as err:
        await _use(m, "Later")
    assert err.value.status == 404 and "Start" in err.value.message
    (tmp_path / "models" / "Later-Q4_0.gguf").write_bytes(GGUF)
    await _use(m, "Later")  # an unknown name reads the directory again
    (tmp_path / "models" / "Later-Q4_0.gguf").unlink()
    assert m.rescan() == ["Start"]
    await asyncio.sleep(0.05)
    assert llama.stopped == ["Later"] and [s.id for s in m.listed("x")] == ["Start"]
    await m.stop()


async def test_the_start_model_inside_the_directory_is_one_model(tmp_path, llama):
    """--model in --models-dir with --model-id: served by that id only, not twice."""
    d = _dir(tmp_path, "Mine-Q4_K_M.gguf", "Other.gguf")
    up = UpstreamState(id="backend:embedded", url="", role="worker")
    m = EmbeddedModels(Launch(model=str(d / "Mine-Q4_K_M.gguf"), model_id="mine", ctx=512,
                              parallel=1, threads=1),
                       d, max_loaded=1, wait=1, pooling="auto", on_current=lambda t: None,
                       target_of=lambda url: Target(state=up, base_url=url))
    assert m.names() == ["Other", "mine"]


async def test_the_worker_state_refresh_is_what_installs_call(tmp_path, llama):
    """WorkerState.refresh(): the model operations' call after an install or a delete;
    the list routers see (upstream.models) changes at once."""
    cfg = WorkerConfig(backend="embedded")
    st = WorkerState(cfg=cfg, kind=KINDS["embedded"],
                     upstream=UpstreamState(id="backend:embedded", url="", role="worker"),
                     timeouts=Timeouts.from_config(cfg), host=HostLoad())
    assert st.refresh() == []  # not embedded-with-models: the backend's own list, as it was
    st.models = _models(tmp_path)
    assert st.refresh() == ["Start"] and st.upstream.models == ["Start"]
    (tmp_path / "models" / "New-Q4_K_M.gguf").write_bytes(GGUF)
    assert st.refresh() == ["New", "Start"] and st.upstream.models == ["New", "Start"]


async def test_a_model_just_loaded_serves_its_waiters_before_it_can_be_unloaded(tmp_path, llama):
    """Two requests for two other models at once, one model in memory: each is served by
    its own load, without the second load unloading the first before its request ran."""
    m = _models(tmp_path, "B.gguf", "C.gguf", wait=5)
    await m.start()
    await asyncio.wait_for(asyncio.gather(_use(m, "B"), _use(m, "C")), 10)
    assert llama.started == ["Start", "B", "C"]
    await m.stop()


async def test_a_model_loaded_for_nobody_is_kept_only_briefly(tmp_path, llama, monkeypatch):
    from eldric.roles.worker import embedded_models

    monkeypatch.setattr(embedded_models, "_KEEP", 0.3)
    gate = llama.slow["B"] = threading.Event()
    m = _models(tmp_path, "B.gguf", "C.gguf", wait=0.1)
    await m.start()
    with pytest.raises(ModelLoading):
        await _use(m, "B")  # the client gave up; B goes on loading
    gate.set()
    await until(lambda: m._loaded("B"))
    m.wait = 5
    t0 = time.monotonic()
    await _use(m, "C")
    assert 0.1 < time.monotonic() - t0 < 2 and llama.started == ["Start", "B", "C"]
    await m.stop()
