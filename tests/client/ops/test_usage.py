"""`eldric usage` against a real edge, router and worker (the mock backend, which states
its usage): the table by client, model, day, backend and day,model with its TOTAL line; --csv with
the grouped columns; --json as the API answers; --client; a client's own key; and the
refusals as one line (a bad --by is click's usage error, never a request)."""

from __future__ import annotations

import csv
import io
import json
import time

import aiohttp

from tests.client.ops.cli import eldric, rows
from tests.conftest import free_port, until
from tests.roles.edge_usage.test_spend_page import ask, register

ADMIN = "adm-spend-page"  # test_spend_page's register() sends it
HDR = {"Authorization": f"Bearer {ADMIN}"}
PRICE = json.dumps({"eldric-mock": {"input": 1000.0, "output": 2000.0}})


async def test_usage_table_csv_json(tmp_path):
    from tests.conftest import run_eldric

    async with run_eldric("worker", tmp_path / "w", port=0, bind="127.0.0.1",
                          backend="mock") as w, \
            run_eldric("edge", tmp_path / "e", no_tls=True, http_port=0, bind="127.0.0.1",
                       routers=w["worker"], health_interval=100, admin_key=ADMIN,
                       global_rpm=0, per_ip_rpm=0, per_key_rpm=0, usage_flush_interval=200,
                       usage_prices=PRICE) as e:
        edge = e["edge"].rstrip("/")
        admin = ("--url", edge, "--admin-key", ADMIN)
        async with aiohttp.ClientSession() as s:
            alice, bob = await register(s, edge, "alice"), await register(s, edge, "bob")
            used = {"alice": 0, "bob": 0}
            for key, name, n in ((alice, "alice", 4), (alice, "alice", 6), (bob, "bob", 3)):
                status, usage = await ask(s, edge, key, n)
                assert status == 200
                used[name] += usage["prompt_tokens"] + usage["completion_tokens"]

            async def counted() -> bool:
                async with s.get(f"{edge}/api/v1/usage", headers=HDR) as r:
                    return (await r.json())["totals"]["requests"] == 3
            await until(counted, timeout=10)

            by_client = await eldric(tmp_path, "usage", "--by", "client", *admin)
            by_model = await eldric(tmp_path, "usage", "--by", "model", *admin)
            by_day_model = await eldric(tmp_path, "usage", "--by", "day,model", *admin)
            by_backend = await eldric(tmp_path, "usage", "--by", "backend", *admin)
            as_csv = await eldric(tmp_path, "usage", "--by", "client", "--csv", *admin)
            as_json = await eldric(tmp_path, "usage", "--by", "client", "--json", *admin)
            only_bob = await eldric(tmp_path, "usage", "--by", "client", "--client", "bob",
                                    *admin)
            own = await eldric(tmp_path, "usage", "--by", "client", "--url", edge,
                               "--admin-key", bob)
            other = await eldric(tmp_path, "usage", "--client", "alice", "--url", edge,
                                 "--admin-key", bob)
            empty = await eldric(tmp_path, "usage", "--from", "2020-01-01", "--to",
                                 "2020-01-02", *admin)
            bad_param = await eldric(tmp_path, "usage", "--from", "yesterday", *admin)
            wrong = await eldric(tmp_path, "usage", "--url", edge, "--admin-key", "nope")
        bad_by = await eldric(tmp_path, "usage", "--by", "week", *admin)
    down = f"http://127.0.0.1:{free_port()}"
    unreachable = await eldric(tmp_path, "usage", "--url", down)

    table = rows(by_client.out)
    assert by_client.rc == 0
    assert by_client.out.splitlines()[0].split() == [
        "CLIENT", "REQUESTS", "ERRORS", "PROMPT", "COMPLETION", "CACHED", "COST", "ESTIMATED"]
    assert table["alice"][1:3] == ["2", "0"] and table["bob"][1] == "1"
    assert int(table["alice"][3]) + int(table["alice"][4]) == used["alice"]
    assert int(table["alice"][4]) == 10 and table["TOTAL"][1] == "3"
    assert table["alice"][6].startswith("$") and table["bob"][7] == "0"
    assert rows(by_model.out)["eldric-mock"][1] == "3"
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert rows(by_day_model.out)[today][1:3] == ["eldric-mock", "3"]
    # the API groups by backend (the worker that answered) too: so does the CLI
    assert by_backend.rc == 0, by_backend.err
    assert by_backend.out.splitlines()[0].split()[0] == "BACKEND"
    assert rows(by_backend.out)["TOTAL"][1] == "3"

    got = list(csv.DictReader(io.StringIO(as_csv.out)))
    assert as_csv.rc == 0 and [r["client"] for r in got] == ["alice", "bob"]
    assert list(got[0]) == ["client", "requests", "errors", "prompt_tokens",
                            "completion_tokens", "cached_tokens", "cost", "estimated_requests"]
    assert int(got[0]["prompt_tokens"]) + int(got[0]["completion_tokens"]) == used["alice"]
    answer = as_json.json()
    assert answer["totals"]["requests"] == 3 and answer["group_by"] == "client"
    assert float(got[1]["cost"]) == next(r["cost"] for r in answer["rows"]
                                         if r["client"] == "bob")

    assert set(rows(only_bob.out)) == {"bob", "TOTAL"}
    assert set(rows(own.out)) == {"bob", "TOTAL"}  # a client's own key: its own usage
    assert other.one_error().startswith("error: HTTP 403 ")
    assert empty.rc == 0 and empty.out.strip() == "no usage in this period"
    assert bad_param.one_error().startswith("error: HTTP 400 ")
    assert wrong.one_error().startswith("error: HTTP 401 ")
    assert bad_by.rc == 2 and "--by" in bad_by.err and "week" in bad_by.err
    assert unreachable.one_error().startswith(f"error: cannot reach {down}/api/v1/usage")
