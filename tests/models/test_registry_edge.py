"""The registry on the edge, the role that faces the internet: like the edge's own admin
API (/api/v1/clients), it is closed without --admin-key (it was open to anyone: upload,
delete, download), and a client's API key is not the admin key."""

from __future__ import annotations

import aiohttp

from tests.conftest import run_eldric
from tests.models.gguf_file import small_model
from tests.models.registry_helpers import API, auth, upload_raw

DATA = small_model(data=10_000)


def _edge(tmp_path, **flags):  # type: ignore[no-untyped-def]
    return run_eldric("edge", tmp_path, no_tls=True, http_port=0, bind="127.0.0.1",
                      routers="http://127.0.0.1:9", api_key=["sk-client"],
                      registry_dir=str(tmp_path / "reg"), **flags)


async def test_an_edge_without_an_admin_key_keeps_its_registry_closed(tmp_path):
    async with _edge(tmp_path) as urls, aiohttp.ClientSession() as s:
        e = urls["edge"]
        for key in ("sk-client", "anything"):
            status, body = await upload_raw(s, e, DATA, key=key, name="m")
            assert (status, body["error"]["code"]) == (401, "invalid_api_key"), body
        async with s.post(f"{e}{API}/upload?name=m", data=DATA) as r:
            assert r.status == 401
        for method, path in (("GET", API), ("GET", f"{API}/m"), ("GET", f"{API}/m/download"),
                             ("DELETE", f"{API}/m")):
            async with s.request(method, e + path, headers=auth("sk-client")) as r:
                assert r.status == 401, (method, path, r.status)
        assert not list((tmp_path / "reg").glob("*/meta.json"))


async def test_an_edge_with_an_admin_key_takes_only_that_key(tmp_path):
    async with _edge(tmp_path, admin_key="adm") as urls, aiohttp.ClientSession() as s:
        e = urls["edge"]
        status, _ = await upload_raw(s, e, DATA, key="sk-client", name="m")
        assert status == 401
        status, model = await upload_raw(s, e, DATA, key="adm", name="m")
        assert status == 201, model
        async with s.get(f"{e}{API}/m/download", headers=auth("adm")) as r:
            assert await r.read() == DATA
