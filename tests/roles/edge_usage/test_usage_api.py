"""GET /api/v1/usage and /api/v1/usage/requests on a real edge in front of a real worker
(the mock backend, which states its usage): totals, group_by, CSV, a client's own view,
bad parameters, the store lost and back mid-run, the request log."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shutil

import aiohttp
import pytest

from tests.conftest import metric, until
from tests.roles.edge_usage import helpers

ADMIN = {"Authorization": "Bearer adm"}
MSG = [{"role": "user", "content": "hi"}]
EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "..", "examples", "plugins")


@contextlib.asynccontextmanager
async def cluster(tmp_path, **edge_flags):
    """worker (mock) <- router <- edge, keys required, the admin key "adm"."""
    async with helpers.cluster(tmp_path, require_api_key=True, admin_key="adm",
                               **edge_flags) as (edge, _):
        yield edge


async def register(s, edge, name) -> str:
    async with s.post(edge + "/api/v1/clients/register", json={"name": name},
                      headers=ADMIN) as r:
        assert r.status == 201, await r.text()
        return (await r.json())["api_key"]


async def chat(s, edge, key, *, stream=False, model="eldric-mock", content="hi") -> dict:
    """One chat completion; its usage as the client saw it (asked for when streamed)."""
    body = {"model": model, "messages": [{"role": "user", "content": content}]}
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    async with s.post(edge + "/v1/chat/completions", json=body,
                      headers={"Authorization": f"Bearer {key}"}) as r:
        assert r.status == 200, await r.text()
        if not stream:
            return (await r.json())["usage"]
        usage = None
        async for line in r.content:
            if line.startswith(b"data: {") and b'"usage":{' in line:
                usage = json.loads(line[6:])["usage"]
        assert usage is not None
        return usage


async def get(s, url, headers=ADMIN, **params):
    async with s.get(url, params=params, headers=headers) as r:
        body = await r.text()
        return r.status, r.headers.get("Content-Type", ""), body


async def usage(s, edge, headers=ADMIN, **params) -> dict:
    status, _, body = await get(s, edge + "/api/v1/usage", headers, **params)
    assert status == 200, body
    return json.loads(body)


async def counted(s, edge, n: int) -> None:
    """Until the edge has counted n requests, as /api/v1/usage says (it includes what
    waits for the next write): the public view, not the edge's insides."""
    async def enough() -> bool:
        return (await usage(s, edge))["totals"]["requests"] >= n
    await until(enough)


async def test_totals_group_by_csv_and_self_view(tmp_path):
    async with cluster(tmp_path) as edge, aiohttp.ClientSession() as s:
        alice, bob = await register(s, edge, "alice"), await register(s, edge, "bob")
        seen = {"alice": [0, 0], "bob": [0, 0]}
        for name, key, stream in (("alice", alice, False), ("alice", alice, True),
                                  ("alice", alice, False), ("bob", bob, True)):
            u = await chat(s, edge, key, stream=stream, content="hello there " * 3)
            seen[name][0] += u["prompt_tokens"]
            seen[name][1] += u["completion_tokens"]
        # the last reply reaches the client a moment before the edge counts it
        await counted(s, edge, 4)
        got = await usage(s, edge, group_by="client")
        assert got["group_by"] == "client" and got["dropped"] == 0
        rows = {r["client"]: r for r in got["rows"]}
        assert set(rows) == {"alice", "bob"}
        for name, (p, c) in seen.items():
            assert (rows[name]["prompt_tokens"], rows[name]["completion_tokens"]) == (p, c)
        assert rows["alice"]["requests"] == 3 and rows["alice"]["errors"] == 0
        assert set(rows["alice"]) == {"client", "requests", "errors", "prompt_tokens",
                                      "completion_tokens", "cached_tokens", "cost",
                                      "estimated_requests"}
        assert got["totals"]["requests"] == 4
        assert got["totals"]["prompt_tokens"] == seen["alice"][0] + seen["bob"][0]
        # eldric-mock has no price: counted in tokens, listed, cost null
        assert got["unpriced_models"] == ["eldric-mock"] and got["totals"]["cost"] is None
        two = await usage(s, edge, group_by="day,model")
        assert [(set(r) >= {"day", "model"}, r["requests"]) for r in two["rows"]] == [(True, 4)]
        assert "client" not in two["rows"][0]
        assert (await usage(s, edge, group_by="backend"))["rows"][0]["backend"] != ""
        assert (await usage(s, edge, model="nope"))["totals"]["requests"] == 0
        # CSV
        status, ctype, text = await get(s, edge + "/api/v1/usage",
                                        {**ADMIN, "Accept": "text/csv"}, group_by="client")
        assert status == 200 and ctype.startswith("text/csv")
        table = list(csv.DictReader(io.StringIO(text)))
        assert [(r["client"], int(r["requests"]), r["cost"]) for r in table] == [
            ("alice", 3, ""), ("bob", 1, "")]
        # a client's own key: its own rows only; another's name refused
        mine = await usage(s, edge, {"Authorization": f"Bearer {bob}"}, group_by="client")
        assert [r["client"] for r in mine["rows"]] == ["bob"]
        status, _, body = await get(s, edge + "/api/v1/usage",
                                    {"Authorization": f"Bearer {bob}"}, client="alice")
        assert status == 403 and '"forbidden_client"' in body
        for headers in ({}, {"Authorization": "Bearer sk-wrong"}):
            status, _, body = await get(s, edge + "/api/v1/usage", headers)
            assert status == 401 and '"invalid_api_key"' in body


@pytest.mark.parametrize("params,param", [
    ({"group_by": "week"}, "group_by"), ({"group_by": "day,day"}, "group_by"),
    ({"from": "yesterday"}, "from"), ({"to": "2026-13-01"}, "to"),
    ({"from": "2026-12-02", "to": "2026-12-01"}, "from"),
    ({"from": "2020-01-01", "to": "2026-12-01"}, "from"),
    ({"client": ""}, "client"), ({"groupby": "day"}, "groupby")])
async def test_bad_parameters_are_400_naming_them(tmp_path, params, param):
    async with cluster(tmp_path) as edge, aiohttp.ClientSession() as s:
        status, _, body = await get(s, edge + "/api/v1/usage", **params)
        assert status == 400, body
        assert json.loads(body)["error"]["param"] == param


async def test_days_from_dates_and_date_times_in_utc(tmp_path):
    async with cluster(tmp_path) as edge, aiohttp.ClientSession() as s:
        got = await usage(s, edge, **{"from": "2026-11-30T23:00:00-02:00",
                                      "to": "2026-12-03T01:00:00Z"})
        assert (got["from"], got["to"], got["group_by"]) == ("2026-12-01", "2026-12-03", "day")
        assert got["rows"] == [] and got["totals"]["requests"] == 0
        assert got["totals"]["cost"] == 0 and got["dropped"] == 0


async def test_counts_survive_a_restart_and_the_store_lost_mid_run(tmp_path):
    """The usage file replaced by a directory mid-run (every open fails): requests go on,
    the flush is refused and kept, the API says 503 rather than a wrong total; the
    file back, every request is counted once. Then a restart: the shutdown flush kept
    the last ones."""
    data = tmp_path / "data"
    flags = dict(data_dir=str(data), usage_flush_interval=100)
    async with cluster(tmp_path, **flags) as edge, aiohttp.ClientSession() as s:
        key = await register(s, edge, "app")
        for _ in range(3):
            await chat(s, edge, key)
        await until(lambda: _written(data) == 3, timeout=10)
        db = str(data / "usage-0.db")
        os.rename(db, db + ".away")
        os.mkdir(db)
        for i in range(4):
            await chat(s, edge, key, stream=bool(i % 2))
        status, _, body = await get(s, edge + "/api/v1/usage")
        assert status == 503 and '"store_unavailable"' in body
        await until(lambda: _health(s, edge, "unwritable: "), timeout=10)
        os.rmdir(db)
        os.rename(db + ".away", db)
        await until(lambda: _written(data) == 7, timeout=10)
        assert (await usage(s, edge))["totals"]["requests"] == 7
        assert await _health(s, edge, "ok")
        await chat(s, edge, key)
    async with cluster(tmp_path, data_dir=str(data), usage_flush_interval=60_000) as edge, \
            aiohttp.ClientSession() as s:
        assert (await usage(s, edge))["totals"]["requests"] == 8
        assert _written(data) == 8  # written at the last shutdown, not now


async def _health(s, edge, prefix) -> bool:
    async with s.get(edge + "/health") as r:
        state = (await r.json()).get("usage_store") or ""
        return r.status == 200 and state.startswith(prefix)


def _written(data) -> int:
    import sqlite3
    try:
        db = sqlite3.connect(f"file:{data / 'usage-0.db'}?mode=ro", uri=True)
        try:
            return db.execute("SELECT COALESCE(SUM(requests), 0) FROM usage").fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error:
        return -1


async def test_drops_past_the_buffer_are_counted(tmp_path):
    """Store down, a buffer of 2 buckets: two clients fit, the third client's requests
    are dropped and counted (metric, the API), never queued without bound."""
    data = tmp_path / "data"
    async with cluster(tmp_path, data_dir=str(data), usage_flush_interval=100,
                       usage_buffer=2) as edge, aiohttp.ClientSession() as s:
        keys = [await register(s, edge, n) for n in ("a", "b", "c")]
        await chat(s, edge, keys[0])
        await until(lambda: _written(data) == 1, timeout=10)
        db = str(data / "usage-0.db")
        os.rename(db, db + ".away")
        os.mkdir(db)
        for key in keys:
            for _ in range(2):
                await chat(s, edge, key)
        assert await metric(edge, "eldric_edge_usage_dropped_total", ssl=False) == 2
        os.rmdir(db)
        os.rename(db + ".away", db)
        await until(lambda: _written(data) == 5, timeout=10)
        got = await usage(s, edge, group_by="client")
        assert got["dropped"] == 2
        assert {r["client"]: r["requests"] for r in got["rows"]} == {"a": 3, "b": 2}


async def test_farm_edges_share_one_total_and_survive_redis_restarting(tmp_path):
    from tests.conftest import free_port, redis_argv, start_redis

    port = free_port()
    argv = redis_argv(tmp_path, port, persist=True)
    redis = start_redis(argv, port)
    url = f"redis://127.0.0.1:{port}/0"
    farm = dict(mode="farm", redis_url=url, usage_flush_interval=100, api_key="sk-static")
    try:
        async with cluster(tmp_path / "1", **farm) as one, \
                cluster(tmp_path / "2", **farm) as two, aiohttp.ClientSession() as s:
            key = await register(s, one, "app")
            for edge in (one, two, one):
                await chat(s, edge, key)
            await until(lambda: _total(s, two, 3), timeout=10)
            redis.terminate()
            redis.wait(10)
            await chat(s, two, "sk-static")  # a static key still works while Redis is down
            redis = start_redis(argv, port)
            await until(lambda: _total(s, one, 4), timeout=15)
            got = await usage(s, two, group_by="client")
            assert {r["client"]: r["requests"] for r in got["rows"]} == {"app": 3, "key-1": 1}
    finally:
        redis.terminate()
        redis.wait(10)


async def _total(s, edge, n) -> bool:
    async with s.get(edge + "/api/v1/usage", headers=ADMIN) as r:
        return r.status == 200 and (await r.json())["totals"]["requests"] == n


async def test_request_log_rows_and_bodies_redacted_by_the_pii_filter(tmp_path):
    plugins = tmp_path / "plugins"
    shutil.copytree(os.path.join(EXAMPLES, "pii-redact"), plugins / "pii-redact")
    async with cluster(tmp_path, request_log="sqlite", request_log_bodies=True,
                       plugins_dir=str(plugins)) as edge, aiohttp.ClientSession() as s:
        async with s.post(edge + "/api/v1/plugins/pii-redact/enable", headers=ADMIN) as r:
            assert r.status == 200, await r.text()
        key = await register(s, edge, "app")

        async def running():
            async with s.get(edge + "/api/v1/plugins", headers=ADMIN) as r:
                return any(p["id"] == "pii-redact" and p.get("state") == "running"
                           for p in (await r.json())["plugins"])
        await until(running, timeout=15)
        await chat(s, edge, key, content="write to bob.smith@example.com")
        await chat(s, edge, key, stream=True)
        async def logged():  # a stream is counted a moment after its last byte
            status, _, body = await get(s, edge + "/api/v1/usage/requests")
            assert status == 200, body
            return len(json.loads(body)["requests"]) == 2 and body
        body = await until(logged)
        rows = json.loads(body)["requests"]
        assert [(r["client"], r["stream"], r["status"]) for r in rows] == [
            ("app", True, 200), ("app", False, 200)]
        assert "bob.smith@example.com" not in body and "[email]" in rows[1]["request_body"]
        assert rows[1]["reply_body"] is not None and rows[0]["prompt_tokens"] > 0
        whole = json.loads(rows[1]["reply_body"])["choices"][0]["message"]["content"]
        # the streamed reply kept as one whole chat completion, the same text
        streamed = json.loads(rows[0]["reply_body"])
        assert streamed["choices"][0]["message"]["content"] == whole
        assert whole.startswith("The quick brown fox")
        status, _, _ = await get(s, edge + "/api/v1/usage/requests", {})
        assert status == 401
        status, _, body = await get(s, edge + "/api/v1/usage/requests", limit="0")
        assert status == 400 and '"limit"' in body


async def test_usage_off_has_no_store_and_says_so(tmp_path):
    async with cluster(tmp_path, usage="off") as edge, aiohttp.ClientSession() as s:
        key = await register(s, edge, "app")
        await chat(s, edge, key)
        status, _, body = await get(s, edge + "/api/v1/usage")
        assert status == 404 and '"usage_off"' in body
        async with s.get(edge + "/health") as r:
            assert (await r.json()).get("usage_store") is None
    assert not list((tmp_path / "e" / "data").glob("usage-*.db"))


async def test_request_log_off_keeps_no_bodies_and_is_404(tmp_path):
    async with cluster(tmp_path) as edge, aiohttp.ClientSession() as s:
        status, _, body = await get(s, edge + "/api/v1/usage/requests")
        assert status == 404 and '"request_log_off"' in body
    async with cluster(tmp_path / "2", request_log="sqlite") as edge, \
            aiohttp.ClientSession() as s:
        key = await register(s, edge, "app")
        await chat(s, edge, key, content="my secret prompt")
        status, _, body = await get(s, edge + "/api/v1/usage/requests")
        assert status == 200 and "secret" not in body
        (row,) = json.loads(body)["requests"]
        assert row["request_body"] is None and row["reply_body"] is None


async def test_reads_while_flushing_never_count_twice(tmp_path):
    """60 requests from 3 clients, some streamed, while the API is read over and over
    and the store flushes every 20 ms: every read sees a total that only grows and
    never passes what was sent; the last one is exact (the tokens the clients saw)."""
    import asyncio

    async with cluster(tmp_path, usage_flush_interval=20) as edge, \
            aiohttp.ClientSession() as s:
        keys = [await register(s, edge, n) for n in ("a", "b", "c")]
        sent = {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0}
        done = asyncio.Event()

        async def traffic(key, n):
            for i in range(n):
                u = await chat(s, edge, key, stream=i % 3 == 0, content="x " * (i + 1))
                sent["requests"] += 1
                sent["prompt_tokens"] += u["prompt_tokens"]
                sent["completion_tokens"] += u["completion_tokens"]

        async def reads():
            seen = []
            while not done.is_set():
                got = (await usage(s, edge))["totals"]
                assert got["requests"] <= 60
                seen.append(got["requests"])
                await asyncio.sleep(0.005)
            return seen

        reader = asyncio.create_task(reads())
        await asyncio.gather(*(traffic(k, 20) for k in keys))
        done.set()
        seen = await reader
        assert seen == sorted(seen) and len(seen) > 5
        await until(lambda: _total(s, edge, 60))  # the last stream, counted after its end
        totals = (await usage(s, edge))["totals"]
        assert {k: totals[k] for k in sent} == sent


async def test_out_of_range_dates_and_odd_limits_are_400s_not_500s(tmp_path):
    """Dates a day from the calendar's ends (the UTC shift or the 30 days before `to`
    went past year 1 or 9999: OverflowError, a 500) and a limit isdigit() likes but
    int() does not ('²')."""
    async with cluster(tmp_path, request_log="sqlite") as edge, aiohttp.ClientSession() as s:
        for params, param in (({"to": "0001-01-01"}, "to"),
                              ({"from": "0001-01-01T00:30:00+01:00"}, "from"),
                              ({"to": "9999-12-31T23:00:00-05:00"}, "to"),
                              ({"to": "9999-12-31"}, "to")):
            for path in ("/api/v1/usage", "/api/v1/usage/requests"):
                status, _, body = await get(s, edge + path, **params)
                assert status == 400, (path, params, body)
                assert json.loads(body)["error"]["param"] == param
        for limit in ("²", "١٠٠٠٠"):
            status, _, body = await get(s, edge + "/api/v1/usage/requests", limit=limit)
            assert status == 400 and json.loads(body)["error"]["param"] == "limit", body
        got = await usage(s, edge, **{"from": "0001-02-01", "to": "0001-02-03"})
        assert got["rows"] == []  # the calendar's edge itself is a fine question


async def test_csv_names_are_quoted_and_never_formulas(tmp_path):
    """Model names are the clients' own: commas and quotes survive the CSV, and one a
    spreadsheet would run ('=…', '+…', '-…', '@…') is written as text."""
    names = ['=HYPERLINK("http://x","a,b")', '+1+1', '-2', '@SUM(A1)', 'plain,"quoted"']
    async with cluster(tmp_path) as edge, aiohttp.ClientSession() as s:
        key = await register(s, edge, "team")
        for name in names:  # no worker serves them: each is a counted error
            async with s.post(edge + "/v1/chat/completions",
                              json={"model": name, "messages": MSG},
                              headers={"Authorization": f"Bearer {key}"}) as r:
                assert r.status == 404, await r.text()
        await counted(s, edge, len(names))
        status, _, text = await get(s, edge + "/api/v1/usage",
                                    {**ADMIN, "Accept": "text/csv"}, group_by="model")
        assert status == 200
        got = {r["model"]: r for r in csv.DictReader(io.StringIO(text))}
        assert set(got) == {"'" + n for n in names[:4]} | {names[4]}, text
        assert all(r["errors"] == "1" for r in got.values())
        # the JSON is the names as they are
        assert {r["model"] for r in (await usage(s, edge, group_by="model"))["rows"]} == set(
            names)
