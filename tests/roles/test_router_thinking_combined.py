"""The scorers together on one request (review of issue 16): a session and the AI, a
failed attempt and the prefix tree, a swarm's members and the session/AI; each with
real routers in front of fake workers (and a fake deciding model) on loopback."""

from __future__ import annotations

import json

import aiohttp

from eldric.roles.router.cache.tree import Tree
from tests.cache.test_cache_aware import SYSTEM, ask, router, turns, workers  # noqa: F401
from tests.roles.test_router_ai import cluster, status  # noqa: F401
from tests.swarm.flows import ask as swarm_ask

SID = "X-Session-ID"


def test_forget_undoes_only_what_the_insert_added():
    tree = Tree(1 << 20)
    tree.insert("system: shared prompt. user: one", "a")
    before = (dict(tree.chars), tree.match("system: shared prompt. user: two", {"a"}))
    fresh = tree.insert("system: shared prompt. user: two", "a")
    assert fresh == len("system: shared prompt. user: ")
    assert tree.forget("system: shared prompt. user: two", "a", fresh) == 3
    assert (dict(tree.chars), tree.match("system: shared prompt. user: two", {"a"})) == before
    assert tree.match("system: shared prompt. user: one", {"a"})[0] == 32
    b = tree.insert("system: shared prompt. user: two", "b")
    assert b == 0 and tree.forget("system: shared prompt. user: two", "b", b) > 0
    assert "b" not in tree.chars and tree.match("system: shared prompt", {"b"}) == (0, [])
    assert tree.insert("system: shared prompt. user: one", "a") is None  # held it all


async def test_a_failed_attempt_does_not_teach_the_tree(workers, tmp_path):  # noqa: F811
    """The worker that failed a turn does not hold its prefix: the next turn goes to the
    one that answered, on the strength of a prefix match there."""
    (ua, ka), (ub, kb) = await workers("a"), await workers("b")
    conv = turns(SYSTEM, "brakes", 3)
    async with router(tmp_path, [ua, ub], strategy="cache_aware",
                      cache_fallback_strategy="round_robin") as urls:
        base = urls["router"]
        async with aiohttp.ClientSession() as s:
            first = await ask(s, base, conv[0])
            went = first["X-Eldric-Worker"]
            (ka if went == ua else kb).fail_status = 500  # it fails the next turn
            moved = await ask(s, base, conv[1])
            (ka if went == ua else kb).fail_status = None
            after = await ask(s, base, conv[2])
    other = ub if went == ua else ua
    assert moved["X-Eldric-Worker"] == other
    assert after["X-Eldric-Worker"] == other, after["X-Eldric-Route-Reason"]
    assert after["X-Eldric-Route-Reason"].endswith(f" on {other}")


async def test_a_sessions_worker_is_not_second_guessed_by_the_ai(cluster, tmp_path):  # noqa: F811
    """A new session goes where the AI picks and stays there; while it stays, the AI is
    not asked (its answer could change nothing), and the headers say who decided."""
    (ua, ub), _, (durl, dk) = cluster
    dk.pick = ub
    async with router(tmp_path, [ua, ub], strategy="round_robin", session_key=SID,
                      ai_mode="autonomous", ai_model="router-llm", ai_url=durl) as urls, \
            aiohttp.ClientSession() as s:
        base = urls["router"]
        msg = [{"role": "user", "content": "hi"}]
        seen = [await ask(s, base, msg, {SID: "ann"}) for _ in range(4)]
        st = await status(s, base)
    assert [h["X-Eldric-Worker"] for h in seen] == [ub] * 4
    assert seen[0]["X-Eldric-Strategy"] == "ai_routing"
    assert seen[0]["X-Eldric-Route-Reason"] == dk.reason
    assert [h["X-Eldric-Strategy"] for h in seen[1:]] == ["session"] * 3
    assert [h["X-Eldric-Route-Reason"] for h in seen[1:]] == [f"session: stays on {ub}"] * 3
    assert st["decisions"] == 1  # the first request only


async def test_swarm_members_neither_stick_to_the_session_nor_ask_the_ai(cluster, tmp_path):  # noqa: F811
    (ua, ub), (ka, kb), (durl, dk) = cluster
    dk.pick = ub
    ensemble = {"strategy": "best_of_n", "members": ["m1"] * 4, "judge": "m1"}
    async with router(tmp_path, [ua, ub], strategy="round_robin", session_key=SID,
                      ai_mode="autonomous", ai_model="router-llm", ai_url=durl,
                      ensembles=json.dumps({"four": ensemble})) as urls, \
            aiohttp.ClientSession() as s:
        code, _, body = await swarm_ask(urls["router"], "four", headers={SID: "bea"})
        st = await status(s, urls["router"])
    assert code == 200, body
    assert ka.hits >= 2 and kb.hits >= 2  # spread by the strategy, not one session's
    assert st["decisions"] == 0


async def test_a_body_nested_past_the_decoders_bound_is_no_500(workers, tmp_path):  # noqa: F811
    """The head's decoder skips what it does not read; the scorers decode the whole body
    (here: the session's `user` field), and msgspec's nesting bound is no server error."""
    (ua, _), = [await workers("a")]
    deep = b'{"a":' * 2000 + b'1' + b'}' * 2000
    body = b'{"model": "m1", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}],' \
           b' "metadata": ' + deep + b'}'
    async with router(tmp_path, [ua], strategy="round_robin", session_key="user") as urls:
        async with aiohttp.ClientSession() as s:
            for path in ("/v1/messages", "/v1/chat/completions", "/api/chat"):
                async with s.post(urls["router"] + path, data=body,
                                  headers={"Content-Type": "application/json"}) as r:
                    assert r.status < 500 or r.headers.get("X-Eldric-Worker"), (path, r.status)
                    assert r.headers.get("X-Eldric-Strategy") is not None, path


def test_the_prompt_is_rendered_up_to_its_limit_only():
    """A huge conversation costs the limit's work (cache_aware asks 100k characters),
    not the body's size: the turns past the limit are never rendered."""
    from eldric.roles.router.context import render

    class Untouchable(list):
        def __iter__(self):
            raise AssertionError("rendered past the limit")

    doc = {"system": "S" * 50,
           "messages": [{"role": "user", "content": "u" * 100},
                        {"role": "assistant", "content": Untouchable([{"text": "x"}])}]}
    assert render(doc, 120) == ("system: " + "S" * 50 + "\nuser: " + "u" * 100)[:120]
    assert render({"prompt": "p" * 10, "messages": "not a list"}, 5) == "ppppp"


async def test_the_controller_sets_cache_aware_with_its_fallback(workers, tmp_path):  # noqa: F811
    """The issue's combination, cluster-wide: strategy cache_aware with a
    fallback_strategy, from the controller's router_config (a bad one is a 400 naming it)."""
    from tests.conftest import run_eldric

    (ua, _), (ub, _) = await workers("a"), await workers("b")
    async with run_eldric("controller", tmp_path / "c", port=0, bind="127.0.0.1") as c:
        async with aiohttp.ClientSession() as s:
            url = c["controller"] + "/api/v1/router/config"
            async with s.post(url, json={"strategy": "cache_aware",
                                         "fallback_strategy": "cache_aware"}) as r:
                assert r.status == 400 and (await r.json())["error"]["param"] == \
                    "fallback_strategy"
            async with s.post(url, json={"strategy": "cache_aware",
                                         "fallback_strategy": "round_robin"}) as r:
                assert r.status == 200
                assert (await r.json())["fallback_strategy"] == "round_robin"
            async with router(tmp_path / "r", [ua, ub], controller=c["controller"]) as urls:
                h = await ask(s, urls["router"], turns(SYSTEM, "chains", 1)[0])
    assert h["X-Eldric-Strategy"] == "cache_aware"
    assert h["X-Eldric-Route-Reason"] == \
        "cache_aware: nothing cached for this model yet; round_robin: next in rotation"


async def test_cache_awares_load_based_fallback_breaks_ties_with_the_forecast(aiohttp_server,
                                                                             tmp_path):
    """load_based as cache_aware's fallback is the same load_based: with the forecast."""
    from tests.conftest import run_eldric
    from tests.predict import test_tie_break as tb

    start = tb.workers.__wrapped__(aiohttp_server)
    both = await start("both", ["m1", "m2"], cpu=50.0)
    only = await start("only", ["m1"], cpu=50.0)
    async with run_eldric("router", tmp_path, port=0, bind="127.0.0.1",
                          workers=f"{both},{only}", strategy="cache_aware",
                          cache_fallback_strategy="load_based", cache_threshold=1,
                          predict_interval=100) as urls:
        await tb._warm(urls["router"])
        seq = await tb._interleaved(urls["router"], 10)
    assert [w for w, _ in seq] == [only] * 20
    assert all(tb.BROKEN in why for _, why in seq), seq[-1]
