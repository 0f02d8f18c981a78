"""`eldric keys` (list, create --rpm, revoke) against a real edge with a real worker
behind it: the key it prints works at once and stops working when revoked."""

from __future__ import annotations

import aiohttp

from tests.client.ops.cli import eldric, rows
from tests.conftest import free_port
from tests.roles.test_edge import _post, cluster

ADMIN = "adm"


async def test_create_list_revoke(tmp_path):
    async with cluster(tmp_path, admin_key=ADMIN, api_key="sk-static") as (edge, _):
        async with aiohttp.ClientSession() as s:
            made = await eldric(tmp_path, "keys", "create", "alice", "--rpm", "50",
                                "--description", "team a", "--url", edge,
                                "--admin-key", ADMIN)
            key = made.out.strip().splitlines()[-1]
            assert made.rc == 0 and made.out.startswith("created alice (50 rpm)")
            assert (await _post(s, edge, key=key))[0] == 200
            as_json = await eldric(tmp_path, "keys", "create", "bob", "--json",
                                   env={"ELDRIC_URL": edge, "ELDRIC_ADMIN_KEY": ADMIN})
            table = await eldric(tmp_path, "keys", "--url", edge, "--admin-key", ADMIN)
            listed = await eldric(tmp_path, "keys", "--json", "--url", edge,
                                  "--admin-key", ADMIN)
            revoked = await eldric(tmp_path, "keys", "revoke", "alice", "--url", edge,
                                   "--admin-key", ADMIN)
            assert (await _post(s, edge, key=key))[0] == 401  # at once
            again = await eldric(tmp_path, "keys", "revoke", "alice", "--url", edge,
                                 "--admin-key", ADMIN)
            static = await eldric(tmp_path, "keys", "revoke", "key-1", "--url", edge,
                                  "--admin-key", ADMIN)
            taken = await eldric(tmp_path, "keys", "create", "bob", "--url", edge,
                                 "--admin-key", ADMIN)
    assert key.startswith("sk-eldric-")
    assert as_json.rc == 0 and as_json.json()["name"] == "bob"
    assert as_json.json()["api_key"].startswith("sk-eldric-")
    got = rows(table.out)
    assert got["alice"][1:3] == ["50", "created"] and got["alice"][-1] == "team a"
    assert got["bob"][1] == "default" and got["key-1"][2] == "config"
    names = {c["name"] for c in listed.json()["clients"]}
    assert {"alice", "bob"} <= names and key not in listed.out
    assert revoked.rc == 0 and revoked.out.strip() == "revoked alice"
    assert again.one_error() == "error: HTTP 404 client_not_found: no client named 'alice'"
    assert static.one_error().startswith("error: HTTP 400 static_client: ")
    assert taken.one_error().startswith("error: HTTP 409 client_exists: ")


async def test_refusals_are_one_line(tmp_path):
    async with cluster(tmp_path, admin_key=ADMIN) as (edge, _):
        keyless = await eldric(tmp_path, "keys", "--url", edge)
        wrong = await eldric(tmp_path, "keys", "create", "x", "--url", edge,
                             "--admin-key", "nope")
        bad_rpm = await eldric(tmp_path, "keys", "create", "x", "--rpm", "0", "--url", edge,
                               "--admin-key", ADMIN)
    async with cluster(tmp_path / "closed", api_key="k") as (closed, _):  # no --admin-key
        no_admin = await eldric(tmp_path, "keys", "--url", closed, "--admin-key", "any")
    assert keyless.one_error().startswith("error: HTTP 401 invalid_api_key: ")
    assert wrong.one_error().startswith("error: HTTP 401 invalid_api_key: ")
    assert bad_rpm.rc == 2 and "--rpm" in bad_rpm.err  # click's usage error, not a request
    assert no_admin.one_error().startswith("error: HTTP 401 invalid_api_key: ")
    down = f"http://127.0.0.1:{free_port()}"
    for args in (("keys",), ("keys", "create", "x"), ("keys", "revoke", "x")):
        ran = await eldric(tmp_path, *args, "--url", down)
        assert ran.one_error().startswith(f"error: cannot reach {down}/api/v1/clients")
