"""What a key may do: scopes given to a client at creation (validated) or to a key from
the configuration (auth.clients.NAME.scopes), and what each scope opens."""

from __future__ import annotations

import aiohttp
import pytest

from eldric.errors import ConfigError
from tests.roles.tunnel.kit import ADMIN, auth, edge


async def _create(s, url, **body):  # type: ignore[no-untyped-def]
    async with s.post(url + "/api/v1/clients/register", json={"name": "gpu-box", **body},
                      headers=auth(ADMIN)) as r:
        return r.status, await r.json()


async def test_a_client_is_created_with_scopes_and_its_key_opens_a_tunnel(tmp_path):
    async with edge(tmp_path) as url, aiohttp.ClientSession() as s:
        status, made = await _create(s, url, scopes=["register", "inference"])
        assert status == 201 and made["scopes"] == ["register", "inference"]
        async with s.post(url + "/api/v1/tunnel/connect", json={},
                          headers=auth(made["api_key"])) as r:
            assert r.status == 200
        async with s.get(url + "/api/v1/clients", headers=auth(ADMIN)) as r:
            by_name = {c["name"]: c for c in (await r.json())["clients"]}
        assert by_name["gpu-box"]["scopes"] == ["register", "inference"]
        assert by_name["plain"]["scopes"] == ["inference"]  # a key given none
        assert by_name["router"]["scopes"] == ["cluster"]  # auth.clients.router.scopes


async def test_a_client_made_without_scopes_may_only_infer(tmp_path):
    async with edge(tmp_path) as url, aiohttp.ClientSession() as s:
        status, made = await _create(s, url)
        assert status == 201 and made["scopes"] == ["inference"]
        async with s.post(url + "/api/v1/tunnel/connect", json={},
                          headers=auth(made["api_key"])) as r:
            assert r.status == 403 and (await r.json())["error"]["code"] == "scope_required"


@pytest.mark.parametrize("scopes", [["admin"], ["inference", "root"], "register"])
async def test_unknown_scopes_are_refused(tmp_path, scopes):
    async with edge(tmp_path) as url, aiohttp.ClientSession() as s:
        status, body = await _create(s, url, scopes=scopes)
        assert status == 400 and body["error"]["param"] == "scopes"


@pytest.mark.parametrize("scopes", [{"nobody": ["register"]}, {"plain": ["sudo"]}])
async def test_bad_configured_scopes_stop_the_start(tmp_path, monkeypatch, scopes):
    from tests.roles.tunnel import kit

    monkeypatch.setattr(kit, "SCOPES", scopes)
    with pytest.raises(ConfigError, match="auth.clients"):
        async with edge(tmp_path):
            pass
