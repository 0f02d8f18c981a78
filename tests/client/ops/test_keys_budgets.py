"""`eldric keys create/update` with budgets, against a real edge: what they set is what
the edge enforces, and `none` lifts a limit."""

from __future__ import annotations

import aiohttp

from tests.client.ops.cli import eldric, rows
from tests.roles.test_edge import _post, cluster

ADMIN = "adm"


async def test_create_and_update_budgets(tmp_path):
    async with cluster(tmp_path, admin_key=ADMIN) as (edge, _):
        at = ("--url", edge, "--admin-key", ADMIN)
        made = await eldric(tmp_path, "keys", "create", "team", "--tpm", "1000",
                            "--max-tokens-per-day", "50000", "--max-cost-per-month", "20",
                            "--allow-model", "gpt-4o*", "--allow-model", "llama-*", *at)
        key = made.out.strip().splitlines()[-1]
        listed = await eldric(tmp_path, "keys", *at)
        async with aiohttp.ClientSession() as s:
            refused = await _post(s, edge, key=key)  # eldric-mock is not allowed
            updated = await eldric(tmp_path, "keys", "update", "team", "--tpm", "none",
                                   "--allow-model", "none", "--max-cost-per-day", "1.5",
                                   "--rpm", "30", "--json", *at)
            allowed = await _post(s, edge, key=key)
        unknown = await eldric(tmp_path, "keys", "update", "nobody", "--rpm", "3", *at)
        nothing = await eldric(tmp_path, "keys", "update", "team", *at)
        bad = await eldric(tmp_path, "keys", "update", "team", "--tpm", "0", *at)
    assert made.rc == 0 and key.startswith("sk-eldric-")
    assert rows(listed.out)["team"][4] == \
        "tpm 1000, 50000 tokens/day, $20/month, models gpt-4o*,llama-*"
    assert refused[0] == 403
    got = updated.json()
    assert (got["tpm"], got["allowed_models"], got["max_cost_per_day"], got["rpm"],
            got["max_tokens_per_day"]) == (None, None, 1.5, 30, 50000)
    assert allowed[0] == 200
    assert unknown.one_error() == "error: HTTP 404 client_not_found: no client named 'nobody'"
    assert nothing.rc == 2 and "nothing to change" in nothing.err
    assert bad.rc == 2 and "--tpm" in bad.err
