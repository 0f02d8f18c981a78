"""Static clients (the config's keys) take their rpm, scopes and budgets from
auth.clients; a setting for no such client, or an unknown scope, stops the start."""

from __future__ import annotations

import aiohttp
import pytest

from eldric.errors import ConfigError
from eldric.roles.edge.clients import LocalClients, static_clients
from eldric.roles.edge.config import ClientSettings
from eldric.store.sqlite import Store
from tests.roles.edge_usage.budget_cluster import edge_with_file


def test_settings_apply_to_the_named_static_client():
    clients = static_clients({"sk-a": "ops", "sk-b": "ci"}, {"ops": ClientSettings(
        rpm=5, tpm=100, max_cost_per_day=1.5, allowed_models=["gpt-4o*"],
        scopes=["inference", "register"])})
    by_name = {c.name: c for c in clients.values()}
    ops = by_name["ops"]
    assert (ops.static, ops.rpm, ops.tpm, ops.max_cost_per_day) == (True, 5, 100, 1.5)
    assert ops.allowed_models == ["gpt-4o*"] and ops.may("register")
    ci = by_name["ci"]
    assert (ci.rpm, ci.tpm, ci.allowed_models, ci.scopes) == (None, None, None, None)


def test_a_setting_for_no_client_or_an_unknown_scope_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="'opz' is no client"):
        static_clients({"sk-a": "ops"}, {"opz": ClientSettings(tpm=1)})
    with pytest.raises(ConfigError, match="unknown scope 'admin'"):
        LocalClients(Store(str(tmp_path / "e.db"), ["clients"]), {"sk-a": "ops"},
                     {"ops": ClientSettings(scopes=["admin"])})


async def test_the_config_file_sets_a_static_clients_budgets(tmp_path):
    section = {"auth": {"api_keys": {"sk-ops": "ops"}, "clients": {
        "ops": {"tpm": 1000, "max_tokens_per_day": 5000, "allowed_models": ["eldric-*"],
                "description": "the ops team"}}}}
    async with edge_with_file(tmp_path, section, routers="http://127.0.0.1:9",
                              admin_key="adm") as edge:
        async with aiohttp.ClientSession() as s, s.get(
                edge + "/api/v1/clients", headers={"Authorization": "Bearer adm"}) as r:
            (ops,) = (await r.json())["clients"]
    assert (ops["name"], ops["tpm"], ops["max_tokens_per_day"], ops["description"]) == \
        ("ops", 1000, 5000, "the ops team")
    assert ops["allowed_models"] == ["eldric-*"] and ops["static"]


@pytest.mark.parametrize("bad", [{"tpm": 0}, {"max_cost_per_day": -1}, {"rpmm": 3}])
async def test_bad_settings_stop_the_start(tmp_path, bad):
    section = {"auth": {"api_keys": {"sk-ops": "ops"}, "clients": {"ops": bad}}}
    with pytest.raises(ConfigError, match="auth.clients"):
        async with edge_with_file(tmp_path, section, routers="http://127.0.0.1:9"):
            pass
