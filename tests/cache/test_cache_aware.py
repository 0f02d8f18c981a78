"""The cache_aware strategy through a real router in front of fake workers on loopback."""

from __future__ import annotations

import asyncio
import json
import re

import aiohttp
import pytest

from eldric import registry
from eldric.cli import load_config
from eldric.errors import ConfigError
from tests.conftest import free_port, run_eldric, until, url_of
from tests.fakes import worker as fake_worker
from tests.fakes.worker import KNOBS

SYSTEM = "You are the assistant of a bicycle repair shop. Answer briefly. " * 30


@pytest.fixture
def workers(aiohttp_server):
    async def start(name):
        server = await aiohttp_server(fake_worker.make_app(name, ["m1"]), port=free_port())
        return url_of(server), server.app[KNOBS]

    return start


def router(tmp_path, urls, **flags):
    return run_eldric("router", tmp_path, port=0, bind="127.0.0.1", workers=",".join(urls),
                      **flags)


def turns(system: str, topic: str, n: int) -> list[list[dict]]:
    """The messages of each turn of one conversation (each turn repeats the last)."""
    msgs = [{"role": "system", "content": system}]
    out = []
    for i in range(n):
        msgs = [*msgs, {"role": "user", "content": f"{topic}: question {i}"}]
        out.append(msgs)
        msgs = [*msgs, {"role": "assistant", "content": f"answer {i} about {topic}"}]
    return out


async def ask(s, base, messages, headers=None, **extra):
    async with s.post(base + "/v1/chat/completions", headers=headers or {},
                      json={"model": "m1", "messages": messages, **extra}) as r:
        assert r.status == 200, await r.text()
        return r.headers.copy()


async def metric(s, base, name):
    async with s.get(base + "/metrics") as r:
        text = await r.text()
    m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


async def test_a_conversation_stays_where_its_prefix_went(workers, tmp_path):
    (ua, _), (ub, _) = await workers("a"), await workers("b")
    async with router(tmp_path, [ua, ub], strategy="cache_aware") as urls:
        base = urls["router"]
        async with aiohttp.ClientSession() as s:
            seen = [await ask(s, base, m) for m in turns(SYSTEM, "brakes", 6)]
            other = [await ask(s, base, m) for m in turns("Be a poet. " * 50, "rain", 3)]
            hits = await metric(s, base, 'eldric_cache_aware_rankings_total{outcome="hit"}')
    first = seen[0]
    assert first["X-Eldric-Strategy"] == "cache_aware"
    assert first["X-Eldric-Route-Reason"].startswith(
        "cache_aware: nothing cached for this model yet; least_connections")
    where = first["X-Eldric-Worker"]
    assert [h["X-Eldric-Worker"] for h in seen] == [where] * 6
    for h in seen[1:]:
        rate = float(re.match(r"cache_aware: prefix match (\S+) on ", h["X-Eldric-Route-Reason"])[1])
        assert rate > 0.9 and h["X-Eldric-Route-Reason"].endswith(f" on {where}")
    # another system prompt shares nothing: a miss, the fallback decides; then it sticks
    assert re.match(r"cache_aware: prefix match 0\.0\d <= 0\.3; least_connections",
                    other[0]["X-Eldric-Route-Reason"])  # "system: " is all it shares
    assert len({h["X-Eldric-Worker"] for h in other}) == 1
    assert hits == 5 + 2


async def test_below_the_threshold_the_fallback_strategy_decides(workers, tmp_path):
    (ua, _), (ub, _) = await workers("a"), await workers("b")
    async with router(tmp_path, [ua, ub], strategy="cache_aware", cache_threshold=0.99,
                      cache_fallback_strategy="round_robin") as urls:
        async with aiohttp.ClientSession() as s:
            seen = [await ask(s, urls["router"], m) for m in turns(SYSTEM[:300], "gears", 4)]
    assert [h["X-Eldric-Worker"] for h in seen[1:]] == [
        seen[i % 2]["X-Eldric-Worker"] for i in range(1, 4)]  # strict rotation
    assert re.fullmatch(r"cache_aware: prefix match 0\.\d\d <= 0\.99; round_robin: next in "
                        r"rotation", seen[2]["X-Eldric-Route-Reason"])


async def test_an_imbalanced_load_goes_to_the_least_loaded(workers, tmp_path):
    (ua, ka), (ub, kb) = await workers("a"), await workers("b")
    async with router(tmp_path, [ua, ub], strategy="cache_aware", balance_abs_threshold=0,
                      balance_rel_threshold=1) as urls:
        base = urls["router"]
        convo = turns(SYSTEM, "chains", 3)
        async with aiohttp.ClientSession() as s:
            where = (await ask(s, base, convo[0]))["X-Eldric-Worker"]
            busy = ka if where == ua else kb
            busy.delay = 1.0
            slow = asyncio.create_task(ask(s, base, convo[1]))  # holds a slot on `where`
            await until(lambda: busy.hits == 2)
            busy.delay = 0
            moved = await ask(s, base, convo[2])
            await slow
            back = await ask(s, base, convo[2])  # balanced again: the prefix decides
    assert moved["X-Eldric-Worker"] != where
    assert moved["X-Eldric-Route-Reason"] == (
        "cache_aware: load imbalanced (1 vs 0 in flight); least loaded")
    assert back["X-Eldric-Route-Reason"].startswith("cache_aware: prefix match")


async def test_runtime_switch_and_the_controller_name_it(workers, tmp_path):
    (ua, _), (ub, _) = await workers("a"), await workers("b")
    async with run_eldric("controller", tmp_path / "c", port=0, bind="127.0.0.1") as c:
        async with aiohttp.ClientSession() as s:
            async with s.post(c["controller"] + "/api/v1/router/config",
                              json={"strategy": "cache_aware"}) as r:
                assert r.status == 200 and (await r.json())["strategy"] == "cache_aware"
            async with router(tmp_path / "r", [ua, ub], controller=c["controller"]) as urls:
                base = urls["router"]
                async with s.get(base + "/api/v1/config") as r:
                    view = await r.json()
                assert (view["strategy"], view["strategy_source"]) == ("cache_aware",
                                                                        "controller")
                h = await ask(s, base, turns(SYSTEM, "tyres", 1)[0])
                assert h["X-Eldric-Strategy"] == "cache_aware"
                async with s.post(base + "/api/v1/config", json={"strategy": "cache_awar"}) as r:
                    assert r.status == 400
                    assert (await r.json())["error"]["code"] == "invalid_strategy"


async def test_the_tree_is_cut_back_on_its_timer(workers, tmp_path):
    (ua, _), (ub, _) = await workers("a"), await workers("b")
    async with router(tmp_path, [ua, ub], strategy="cache_aware", cache_tree_max_chars=2000,
                      cache_eviction_interval=100) as urls:
        base = urls["router"]
        async with aiohttp.ClientSession() as s:
            for i in range(8):  # 8 different ~3k-char prompts
                await ask(s, base, [{"role": "user", "content": f"{i} " + "x" * 3000}])

            async def bounded():
                v = await metric(s, base, "eldric_cache_tree_chars")
                return v is not None and 0 < v <= 2 * 2000
            await until(bounded)


@pytest.mark.parametrize("key, value", [
    ("fallback_strategy", "cache_aware"),  # not itself
    ("cache_threshold", 1.5),
    ("balance_rel_threshold", 0.5),
    ("tree_max_chars", 10),
    ("session_key", "X Session"),  # not a header name
    ("max_sessions", 0),
])
def test_bad_settings_are_refused_at_start_naming_the_key(tmp_path, key, value):
    path = tmp_path / "eldric.json"
    path.write_text(json.dumps({"router": {"cache_aware": {key: value}}}))
    with pytest.raises(ConfigError) as info:
        load_config(registry.resolve("router"), {}, {}, str(path))
    assert f"`$.router.cache_aware.{key}`: must be" in str(info.value)


def test_a_bad_flag_is_refused_naming_it():
    with pytest.raises(ConfigError) as info:
        load_config(registry.resolve("router"), {"cache_threshold": "2"}, {})
    assert str(info.value).startswith("--cache-threshold: must be a number from 0 to 1")
