"""Changing a client's settings: both stores' update(), and PATCH /api/v1/clients/{name}
with the register endpoint taking the same settings."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from eldric.roles.edge.clients import StaticClient
from tests.roles.test_edge_clients import store
from tests.conftest import run_eldric

ADM = {"Authorization": "Bearer adm"}


@pytest.mark.parametrize("kind", ["local", "redis"])
async def test_update_changes_what_lookup_finds(kind, tmp_path, request):
    async with store(kind, tmp_path, request) as clients:
        created, key = await clients.create("app", "", None, tpm=100, scopes=["inference"])
        assert created.tpm == 100
        changed = await clients.update("app", {"tpm": None, "max_cost_per_day": 2.5,
                                               "description": "moved"})
        assert (changed.tpm, changed.max_cost_per_day, changed.description) == (None, 2.5, "moved")
        found = await clients.lookup(key)
        assert (found.tpm, found.max_cost_per_day, found.key_hash) == \
            (None, 2.5, created.key_hash)
        with pytest.raises(KeyError):
            await clients.update("nobody", {"rpm": 1})
        with pytest.raises(StaticClient):
            await clients.update("ops", {"rpm": 1})
        await clients.revoke("app")
        with pytest.raises(KeyError):  # a revoked client is not brought back
            await clients.update("app", {"rpm": 1})
        assert await clients.lookup(key) is None


async def test_redis_updates_from_two_edges_lose_neither(tmp_path, request):
    async with store("redis", tmp_path, request) as one, \
            store("redis", tmp_path, request) as two:
        _, key = await one.create("both", "", None)
        await asyncio.gather(*(c.update("both", {f: v}) for c, f, v in (
            (one, "tpm", 7), (two, "max_tokens_per_day", 9), (one, "rpm", 3),
            (two, "allowed_models", ["a*"]))))
        got = await one.lookup(key)
        assert (got.tpm, got.max_tokens_per_day, got.rpm, got.allowed_models) == (7, 9, 3, ["a*"])


async def _json(r: aiohttp.ClientResponse) -> tuple[int, dict]:
    return r.status, json.loads(await r.read())


async def test_register_and_patch_over_http(tmp_path):
    async with run_eldric("edge", tmp_path, no_tls=True, http_port=0, bind="127.0.0.1",
                          routers="http://127.0.0.1:9", admin_key="adm",
                          api_key="sk-static") as e:
        url = e["edge"] + "/api/v1/clients"
        async with aiohttp.ClientSession() as s:
            async with s.post(url + "/register", headers=ADM, json={
                    "name": "team", "tpm": 1000, "max_tokens_per_day": 50_000,
                    "max_cost_per_month": 20, "allowed_models": ["gpt-4o*"]}) as r:
                status, created = await _json(r)
            assert status == 201 and created["api_key"].startswith("sk-eldric-")
            assert (created["tpm"], created["max_cost_per_month"]) == (1000, 20)
            for bad, param in (({"name": "x", "tpm": 0}, "tpm"),
                               ({"name": "x", "max_cost_per_day": -1}, "max_cost_per_day"),
                               ({"name": "x", "allowed_models": "gpt*"}, "allowed_models"),
                               ({"name": "x", "scopes": ["inference", "root"]}, "scopes"),
                               ({"name": "x", "tmp": 5}, None)):
                async with s.post(url + "/register", headers=ADM, json=bad) as r:
                    status, err = await _json(r)
                assert status == 400 and err["error"]["param"] == param, bad
            assert "'root'" in (await _json(await s.post(url + "/register", headers=ADM, json={
                "name": "x", "scopes": ["root"]})))[1]["error"]["message"]
            async with s.patch(url + "/team", headers=ADM, json={
                    "tpm": None, "rpm": 5, "scopes": ["inference", "register"],
                    "description": "team a"}) as r:
                status, changed = await _json(r)
            assert status == 200
            assert (changed["tpm"], changed["rpm"], changed["scopes"], changed["description"],
                    changed["max_tokens_per_day"]) == (None, 5, ["inference", "register"],
                                                       "team a", 50_000)
            assert "api_key" not in changed and "key_hash" not in changed
            async with s.get(url, headers=ADM) as r:
                listed = {c["name"]: c for c in (await r.json())["clients"]}
            assert listed["team"]["rpm"] == 5 and listed["team"]["tpm"] is None
            cases = [("team", {"tpm": 0}, None, 400, "invalid_request"),
                     ("team", {"scopes": ["nope"]}, None, 400, "unknown_scope"),
                     ("team", {}, None, 400, "invalid_request"),
                     ("team", {"name": "other"}, None, 400, "invalid_request"),
                     ("nobody", {"rpm": 1}, None, 404, "client_not_found"),
                     ("key-1", {"rpm": 1}, None, 400, "static_client"),
                     ("team", {"rpm": 1}, {"Authorization": "Bearer no"}, 401, None)]
            for name, body, headers, want, code in cases:
                async with s.patch(f"{url}/{name}", json=body, headers=headers or ADM) as r:
                    status, err = await _json(r)
                assert status == want, (name, body)
                if code:
                    assert err["error"]["code"] == code, (name, body)
            async with s.patch(url + "/team", headers=ADM, data=b"{") as r:
                assert r.status == 400
