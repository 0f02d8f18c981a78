"""The cluster's vocabulary (eldric.wire.cluster) as each side reads it: the controller takes
only strategies it knows, routers read what an older or newer controller says leniently,
and a member's id and id file follow its type and role."""

from __future__ import annotations

import sqlite3

import aiohttp
import pytest

from tests.conftest import run_eldric, until, url_of
from tests.fakes import controller as fake_controller
from tests.fakes.controller import STATE
from tests.fakes import openai_server as fake_openai


def test_decode_head_is_still_importable_from_the_core():
    """It moved to wire/ (it decodes control-plane bodies too); third-party code that
    imported it from eldric.stream keeps working."""
    from eldric.stream import decode_head as old
    from eldric.wire.head import decode_head

    assert old is decode_head


@pytest.mark.parametrize("body", [b'{"strategy": "best"}', b'{"strategy": 3}', b"{}"])
async def test_an_unknown_strategy_is_invalid_strategy_at_controller_and_router(tmp_path, body):
    async with run_eldric("controller", tmp_path / "c", port=0, bind="127.0.0.1") as c, \
            run_eldric("router", tmp_path / "r", port=0, bind="127.0.0.1",
                       workers="http://127.0.0.1:9") as r:
        async with aiohttp.ClientSession() as s:
            for url in (c["controller"] + "/api/v1/router/config", r["router"] + "/api/v1/config"):
                if body == b"{}" and "router/config" in url:
                    continue  # the controller's settings may leave the strategy unset
                async with s.post(url, data=body) as resp:
                    err = (await resp.json())["error"]
                    assert resp.status == 400, url
                    assert (err["code"], err["param"]) == ("invalid_strategy", "strategy")
                    assert "least_connections" in err["message"]


async def test_a_router_keeps_syncing_when_the_controller_names_an_unknown_strategy(
        aiohttp_server, tmp_path):
    """A newer controller's strategy this router does not know: the router keeps its own
    and its worker list follows the controller as before."""
    backend = await aiohttp_server(fake_openai.make_app())
    ctl = await aiohttp_server(fake_controller.make_app())
    st = ctl.app[STATE]
    st.router_config = {"strategy": "quantum_annealing"}
    st.workers["wrk-a"] = {"id": "wrk-a", "worker_type": "inference",
                           "url": url_of(backend), "models": ["m1"]}
    async with run_eldric("router", tmp_path, port=0, bind="127.0.0.1",
                          controller=url_of(ctl), sync_interval=100) as urls:
        async with aiohttp.ClientSession() as s:
            async def config():
                async with s.get(urls["router"] + "/api/v1/workers") as resp:
                    listed = await resp.json()
                return listed if listed["workers"] else None

            listed = await until(config)
            assert listed["strategy"] == "load_based"  # its own default, kept
            st.router_config = {"strategy": "random"}  # one it knows: applied
            st.workers["wrk-b"] = {"id": "wrk-b", "worker_type": "inference",
                                   "url": url_of(backend), "models": ["m1"]}

            async def applied():
                async with s.get(urls["router"] + "/api/v1/config") as resp:
                    return (await resp.json())["strategy"] == "random"

            await until(applied)


async def test_a_controller_starts_on_stored_settings_it_cannot_read(tmp_path):
    """Settings a newer controller stored (a strategy this one does not know) are dropped
    with a warning, not a controller that cannot start."""
    async with run_eldric("controller", tmp_path, port=0, bind="127.0.0.1") as c:
        async with aiohttp.ClientSession() as s:
            async with s.post(c["controller"] + "/api/v1/router/config",
                              json={"strategy": "random"}) as resp:
                assert resp.status == 200
    (db,) = (tmp_path / "data").glob("controller-*.db")
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE settings SET value = ? WHERE key = 'router'",
                     (b'{"strategy": "quantum_annealing"}',))
    async with run_eldric("controller", tmp_path, port=0, bind="127.0.0.1") as c:
        async with aiohttp.ClientSession() as s:
            async with s.get(c["controller"] + "/api/v1/router/config") as resp:
                assert resp.status == 200 and await resp.json() == {}


async def test_a_cloud_worker_keeps_the_id_it_kept_under_its_old_file_name(tmp_path):
    """The id file is named for the role (cloud-0.id); a cloud worker of an earlier version
    kept it as cld-0.id: that one is taken over, so the worker comes back as itself."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "cld-0.id").write_text("cld-0123456789ab\n")
    async with run_eldric("cloud", tmp_path, port=0, bind="127.0.0.1",
                          backends="nowhere:http://127.0.0.1:9") as urls:
        async with aiohttp.ClientSession() as s:
            async with s.get(urls["cloud"] + "/health") as resp:
                assert (await resp.json())["worker_id"] == "cld-0123456789ab"
    assert sorted(p.name for p in data.glob("*.id")) == ["cloud-0.id"]


async def test_standalone_members_make_ids_of_their_type(tmp_path):
    async with run_eldric("worker", tmp_path / "w", port=0, bind="127.0.0.1",
                          backend="mock") as w:
        async with run_eldric("router", tmp_path / "r", port=0, bind="127.0.0.1",
                              workers=w["worker"]):
            pass
        async with aiohttp.ClientSession() as s:
            async with s.get(w["worker"] + "/health") as resp:
                assert (await resp.json())["worker_id"].startswith("wrk-")
    assert (tmp_path / "r" / "data" / "router-0.id").read_text().startswith("rtr-")
