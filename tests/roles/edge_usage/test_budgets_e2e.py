"""Budgets on a real edge in front of a real router and worker (the mock backend, which
honours max_tokens and reports usage): a boundary under 20 concurrent requests, tpm, cost
per day with a priced model, allowed_models, the update endpoint, --usage off, and two
farm edges on a real Redis sharing one budget.

Every request here asks for 8 tokens of "hi": the edge reserves 13 (max_tokens 8 plus
its estimate of the prompt, 5: one word and a message's 4 template tokens) and the mock
uses 10 (its prompt count 2, and 8)."""

from __future__ import annotations

import asyncio
import contextlib
import json

import aiohttp

from tests.conftest import metric, run_eldric, until
from tests.roles.edge_usage.helpers import metrics

ADM = {"Authorization": "Bearer adm"}
ASK = {"model": "eldric-mock", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
RESERVED, USED = 13, 10
REMAINING = "X-Eldric-Budget-Remaining"


@contextlib.asynccontextmanager
async def cluster(tmp_path, *, edges=1, worker_flags=None, **edge_flags):
    """worker (mock) <- router <- `edges` edges with an admin key: their URLs."""
    async with run_eldric("worker", tmp_path / "w", port=0, bind="127.0.0.1", backend="mock",
                          **(worker_flags or {})) as w, \
            run_eldric("router", tmp_path / "r", port=0, bind="127.0.0.1",
                       workers=w["worker"], health_interval=1000) as r:
        flags = dict(no_tls=True, http_port=0, bind="127.0.0.1", routers=r["router"],
                     health_interval=1000, admin_key="adm", global_rpm=0, per_ip_rpm=0,
                     per_key_rpm=0)
        flags.update(edge_flags)
        async with contextlib.AsyncExitStack() as stack:
            urls = [(await stack.enter_async_context(
                run_eldric("edge", tmp_path / f"e{i}", **flags)))["edge"] for i in range(edges)]
            yield urls


async def register(s: aiohttp.ClientSession, edge: str, name: str, **budgets) -> str:
    async with s.post(edge + "/api/v1/clients/register", headers=ADM,
                      json={"name": name, **budgets}) as r:
        assert r.status == 201, await r.text()
        return (await r.json())["api_key"]


async def ask(s: aiohttp.ClientSession, edge: str, key: str, *, stream=False,
              path="/v1/chat/completions", body=None) -> tuple[int, dict, dict | str]:
    body = dict(body or ASK, **({"stream": True} if stream else {}))
    async with s.post(edge + path, json=body, headers={"Authorization": f"Bearer {key}"}) as r:
        text = await r.text()
        got = text if stream and r.status == 200 else json.loads(text)
        return r.status, dict(r.headers), got


async def clients(s: aiohttp.ClientSession, edge: str) -> dict[str, dict]:
    async with s.get(edge + "/api/v1/clients", headers=ADM) as r:
        return {c["name"]: c for c in (await r.json())["clients"]}


def code(reply) -> str:  # type: ignore[no-untyped-def]
    return reply[2]["error"]["code"]


async def test_twenty_at_once_at_the_boundary_overshoot_by_at_most_one(tmp_path):
    """100 tokens a day, 20 requests of 13 reserved at once (the mock's replies take
    160 ms, so all are reserved before any settles): 8 pass (0, 13, … 91 < 100), the
    12 others are refused; settled, they used 80, so two more pass, then none."""
    async with cluster(tmp_path, worker_flags={"mock_token_delay": "20ms"}) as (edge,):
        async with aiohttp.ClientSession() as s:
            key = await register(s, edge, "boundary", max_tokens_per_day=100)
            replies = await asyncio.gather(*(ask(s, edge, key, stream=i % 2 == 0)
                                             for i in range(20)))
            ok = [r for r in replies if r[0] == 200]
            refused = [r for r in replies if r[0] != 200]
            assert len(ok) == 8 and 8 * RESERVED <= 100 + RESERVED
            assert all(r[0] == 429 and code(r) == "budget_exceeded" for r in refused)
            assert all(REMAINING in r[1] for r in replies)  # every reply to the client
            assert all(r[1][REMAINING] == "tokens_per_day=0" for r in refused)
            assert all(int(r[1]["Retry-After"]) > 0 for r in refused)
            assert all("data: [DONE]" in r[2] for r in ok if isinstance(r[2], str))
            then = [await ask(s, edge, key) for _ in range(3)]
            assert [r[0] for r in then] == [200, 200, 429]
            assert then[0][1][REMAINING] == f"tokens_per_day={100 - 8 * USED - RESERVED}"
        counted = await metrics(edge)
        refusals = await metric(edge, 'eldric_edge_budget_refused_total{kind="tokens_per_day"}')
    assert refusals == 12 + 1
    used = sum(v for k, v in counted.items() if k[0] == "eldric_edge_tokens_total"
               and k[1] == "boundary" and k[3] in ("prompt", "completion"))
    assert used == 10 * USED <= 100 + RESERVED


async def test_a_negative_max_tokens_reserves_the_default_not_a_credit(tmp_path):
    """max_tokens -100000 (a router and the mock take it): reserved as the default
    (1024), not as -100000 tokens, which made the budget 100095 tokens roomier while the
    request was in flight, so any number of concurrent requests passed."""
    async with cluster(tmp_path, worker_flags={"mock_token_delay": "20ms"}) as (edge,):
        async with aiohttp.ClientSession() as s:
            key = await register(s, edge, "neg", max_tokens_per_day=100)
            body = {**ASK, "max_tokens": -100_000}
            slow = asyncio.create_task(ask(s, edge, key, body={**ASK, "max_tokens": 40}))
            await asyncio.sleep(0.2)  # 45 reserved and in flight
            neg = await ask(s, edge, key, body=body)
            assert neg[0] == 200 and neg[1][REMAINING] == "tokens_per_day=0"
            assert (await slow)[0] == 200
            # settled: what each used, no reservation left over
            assert (await clients(s, edge))["neg"]["usage"]["tokens_today"] < 100
            assert (await ask(s, edge, key))[1][REMAINING] != "tokens_per_day=0"


async def test_the_largest_of_the_named_maxima_is_reserved(tmp_path):
    """max_tokens 8 and max_completion_tokens 500: a backend may honour either (OpenAI
    the latter), so 505 is reserved, not 13."""
    async with cluster(tmp_path) as (edge,), aiohttp.ClientSession() as s:
        key = await register(s, edge, "both", max_tokens_per_day=1000)
        got = await ask(s, edge, key, body={**ASK, "max_completion_tokens": 500})
        assert got[0] == 200 and got[1][REMAINING] == f"tokens_per_day={1000 - 505}"


async def test_tpm_refuses_until_the_window_slides(tmp_path):
    async with cluster(tmp_path, rate_window="2s") as (edge,):
        async with aiohttp.ClientSession() as s:
            key = await register(s, edge, "rate", tpm=30)
            got = [await ask(s, edge, key) for _ in range(4)]  # 0, 10, 20 < 30; then 30
            assert [r[0] for r in got] == [200, 200, 200, 429]
            assert code(got[3]) == "token_rate_limit" and got[3][1][REMAINING] == "tpm=0"
            assert 1 <= int(got[3][1]["Retry-After"]) <= 2
            await asyncio.sleep(2.2)
            again = await ask(s, edge, key)
            assert again[0] == 200 and again[1][REMAINING] == f"tpm={30 - RESERVED}"


async def test_cost_per_day_with_a_priced_model(tmp_path):
    """eldric-mock priced at $1000 / $2000 per million: a request reserves
    5 * 0.001 + 8 * 0.002 = $0.021 and costs 2 * 0.001 + 8 * 0.002 = $0.018."""
    prices = json.dumps({"eldric-mock": {"input": 1000, "output": 2000}})
    async with cluster(tmp_path, usage_prices=prices) as (edge,):
        async with aiohttp.ClientSession() as s:
            key = await register(s, edge, "spender", max_cost_per_day=0.05)
            got = [await ask(s, edge, key, stream=i == 1) for i in range(4)]
            assert [r[0] for r in got] == [200, 200, 200, 429]  # 0, .018, .036 < .05
            assert got[0][1][REMAINING] == "cost_per_day=0.029"
            assert code(got[3]) == "budget_exceeded" and "cost_per_day" in \
                got[3][2]["error"]["message"]
            await register(s, edge, "unlimited")
            listed = await clients(s, edge)
        counted = await metrics(edge)
    spent = listed["spender"]["usage"]
    assert spent["tokens_today"] == 3 * USED and listed["unlimited"]["usage"] is None
    assert abs(spent["cost_today"] - 0.054) < 1e-9 and abs(spent["cost_month"] - 0.054) < 1e-9
    assert abs(counted[("eldric_edge_cost_total", "spender", "eldric-mock", "")] - 0.054) < 1e-9


async def test_allowed_models_and_the_update_endpoint(tmp_path):
    async with cluster(tmp_path) as (edge,):
        async with aiohttp.ClientSession() as s:
            key = await register(s, edge, "team", allowed_models=["gpt-4o*"])
            for path in ("/v1/chat/completions", "/v1/messages"):
                refused = await ask(s, edge, key, path=path)
                assert refused[0] == 403 and code(refused) == "model_not_allowed", path
            patch = edge + "/api/v1/clients/team"
            async with s.patch(patch, headers=ADM, json={"allowed_models": ["eldric-*"],
                                                         "max_tokens_per_day": 15}) as r:
                assert r.status == 200
            got = [await ask(s, edge, key) for _ in range(3)]  # 0, 10 < 15; then 20
            assert [r[0] for r in got] == [200, 200, 429]
            async with s.patch(patch, headers=ADM, json={"max_tokens_per_day": None}) as r:
                assert r.status == 200
            lifted = await ask(s, edge, key)
            assert lifted[0] == 200 and REMAINING not in lifted[1]  # no budget left to show
        assert await metric(edge, 'eldric_edge_budget_refused_total{kind="model"}') == 2


async def test_usage_off_counts_nothing_but_keeps_allowed_models(tmp_path):
    async with cluster(tmp_path, usage="off") as (edge,):
        async with aiohttp.ClientSession() as s:
            key = await register(s, edge, "off", tpm=1, allowed_models=["eldric-*"])
            got = [await ask(s, edge, key) for _ in range(3)]
            assert [r[0] for r in got] == [200] * 3 and REMAINING not in got[0][1]
            other = await register(s, edge, "other", allowed_models=["gpt-*"])
            refused = await ask(s, edge, other)
            assert refused[0] == 403 and code(refused) == "model_not_allowed"


async def test_two_farm_edges_share_one_budget(tmp_path, redis_url):
    async with cluster(tmp_path, edges=2, mode="farm", redis_url=redis_url,
                       worker_flags={"mock_token_delay": "20ms"}) as (ea, eb):
        async with aiohttp.ClientSession() as s:
            key = await register(s, ea, "farmed", max_tokens_per_day=100)
            replies = await asyncio.gather(*(ask(s, ea if i % 2 else eb, key)
                                             for i in range(20)))
            assert [r[0] for r in replies].count(200) == 8  # one budget across both
            assert all(code(r) == "budget_exceeded" for r in replies if r[0] != 200)
            then = [await ask(s, eb if i % 2 else ea, key) for i in range(3)]
            assert [r[0] for r in then] == [200, 200, 429]  # settled in Redis: 80 used
            async with s.patch(eb + "/api/v1/clients/farmed", headers=ADM,
                               json={"max_tokens_per_day": 1000}) as r:
                assert r.status == 200
            assert (await ask(s, ea, key))[0] == 200  # changed on B, honoured on A
            listed = await clients(s, eb)
    assert listed["farmed"]["usage"] == {"tokens_today": 11 * USED, "cost_today": 0.0,
                                         "cost_month": 0.0}  # eldric-mock has no price


async def test_farm_budgets_fall_back_per_edge_while_redis_is_away(tmp_path):
    """Redis killed under a farm edge: a static client's budget still holds, counted by
    this edge alone; /health says degraded. Redis back (its file kept): the shared count
    resumes where it was."""
    import signal

    from tests.conftest import free_port, redis_argv, start_redis
    from tests.roles.edge_usage.budget_cluster import edge_with_file

    port = free_port()
    argv = redis_argv(tmp_path, port, persist=True)
    redis_proc = start_redis(argv, port)
    section = {"auth": {"api_keys": {"sk-ops": "ops"},
                        "clients": {"ops": {"max_tokens_per_day": 30}}}}
    try:
        async with run_eldric("worker", tmp_path / "w", port=0, bind="127.0.0.1",
                              backend="mock") as w, \
                edge_with_file(tmp_path / "e", section, routers=w["worker"], mode="farm",
                               redis_url=f"redis://127.0.0.1:{port}/0", global_rpm=0,
                               per_ip_rpm=0, per_key_rpm=0) as edge:
            async with aiohttp.ClientSession() as s:
                assert (await ask(s, edge, "sk-ops"))[0] == 200  # 10 of 30, in Redis
                redis_proc.send_signal(signal.SIGKILL)
                redis_proc.wait(5)
                got = [await ask(s, edge, "sk-ops") for _ in range(4)]  # 0, 10, 20; 30
                assert [r[0] for r in got] == [200, 200, 200, 429]
                assert code(got[3]) == "budget_exceeded"
                async with s.get(edge + "/health") as r:
                    assert (await r.json())["status"] == "degraded"
                redis_proc = start_redis(argv, port)
                await until(lambda: _store_ok(s, edge), timeout=20)
                back = [await ask(s, edge, "sk-ops") for _ in range(3)]  # 10, 20; 30
                assert [r[0] for r in back] == [200, 200, 429]
    finally:
        redis_proc.kill()
        redis_proc.wait(5)


async def _store_ok(s: aiohttp.ClientSession, edge: str) -> bool:
    async with s.get(edge + "/health") as r:
        return (await r.json())["shared_store"] == "ok"


async def test_a_standalone_edge_keeps_its_counts_across_a_restart(tmp_path):
    """The day's count survives the edge's restart (edge.db): 20 of 30 used before, one
    more passes after, then none (without the kept count three would pass)."""
    async with run_eldric("worker", tmp_path / "w", port=0, bind="127.0.0.1",
                          backend="mock") as w:
        flags = dict(no_tls=True, http_port=0, bind="127.0.0.1", routers=w["worker"],
                     admin_key="adm", global_rpm=0, per_ip_rpm=0, per_key_rpm=0)
        async with run_eldric("edge", tmp_path / "e", **flags) as e, \
                aiohttp.ClientSession() as s:
            key = await register(s, e["edge"], "kept", max_tokens_per_day=30)
            assert [(await ask(s, e["edge"], key))[0] for _ in range(2)] == [200, 200]
        async with run_eldric("edge", tmp_path / "e", **flags) as e, \
                aiohttp.ClientSession() as s:
            assert [(await ask(s, e["edge"], key))[0] for _ in range(2)] == [200, 429]
            assert (await clients(s, e["edge"]))["kept"]["usage"]["tokens_today"] == 3 * USED


async def test_a_failed_request_gives_its_reservation_back_and_says_what_is_left(tmp_path):
    """No router answers: the 503 carries X-Eldric-Budget-Remaining too, and the
    reservation it held is given back (a failure used nothing)."""
    from tests.conftest import free_port

    async with run_eldric("edge", tmp_path, no_tls=True, http_port=0, bind="127.0.0.1",
                          routers=f"http://127.0.0.1:{free_port()}", admin_key="adm",
                          health_interval=60_000) as e, aiohttp.ClientSession() as s:
        edge = e["edge"]
        key = await register(s, edge, "unlucky", max_tokens_per_day=100)
        for _ in range(3):
            failed = await ask(s, edge, key)
            assert failed[0] == 503 and failed[1][REMAINING] == f"tokens_per_day={100 - RESERVED}"
        assert (await clients(s, edge))["unlucky"]["usage"]["tokens_today"] == 0
