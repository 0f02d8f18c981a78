"""The swarm's framework: how a request asks for one, the bounds, named ensembles (config
file, flags, POST /api/v1/config, /v1/models), GET /api/v1/swarm and the metrics."""

from __future__ import annotations

import json
import os

import aiohttp
import pytest

from eldric import registry
from eldric.cli import load_config
from tests.conftest import metric, serving
from tests.fakes import scripted
from tests.swarm.flows import Q, ask, router

MODELS = ["m-a", "m-b", "m-c"]


async def test_a_normal_request_is_not_a_swarm(aiohttp_server, tmp_path):
    script = await scripted.serve(aiohttp_server, MODELS)
    async with router(tmp_path, script.url) as urls:
        status, headers, body = await ask(urls["router"], "m-b")
    assert status == 200 and "X-Eldric-Swarm" not in headers and "eldric" not in body
    assert script.order() == ["m-b"]


async def test_plain_swarm_is_the_default_strategy_over_every_model(aiohttp_server, tmp_path):
    script = await scripted.serve(aiohttp_server, MODELS)
    script.on(contains="Candidates:", text='{"index": 0, "reason": "r"}')
    async with router(tmp_path, script.url, swarm_strategy="best_of_n",
                      swarm_max_members=2) as urls:
        status, headers, body = await ask(urls["router"], "swarm")
    assert status == 200, body
    assert headers["X-Eldric-Swarm"] == "best_of_n" and body["eldric"]["swarm"] == "best_of_n"
    answers = [c.model for c in script.calls if "Candidates:" not in c.prompt]
    assert sorted(answers) == ["m-a", "m-b"]  # every distinct model, up to max_members


async def test_the_header_makes_a_normal_request_a_swarm_led_by_its_model(aiohttp_server,
                                                                         tmp_path):
    script = await scripted.serve(aiohttp_server, MODELS)
    async with router(tmp_path, script.url) as urls:
        status, headers, body = await ask(urls["router"], "m-c",
                                          headers={"X-Eldric-Swarm": "synthesize"})
        assert status == 200, body
        # the model asked for leads (it is the synthesis model); members never get the header
        assert [c.model for c in script.calls if "Candidate answers" in c.prompt] == ["m-c"]
        assert not any("X-Eldric-Swarm" in c.headers or "x-eldric-swarm" in c.headers
                       for c in script.calls)
        assert body["model"] == "m-c" and body["eldric"]["swarm"] == "synthesize"
        status, _, body = await ask(urls["router"], "m-c", headers={"X-Eldric-Swarm": "best"})
    assert status == 400 and body["error"]["code"] == "invalid_swarm"
    assert "synthesize" in body["error"]["message"]


@pytest.mark.parametrize("model,extra,code,param", [
    ("swarm/quorum", {}, "invalid_swarm", "model"),
    ("swarm/synthesize", {"swarm": {"members": ["m-a"] * 6}}, "invalid_swarm", "swarm"),
    ("swarm/synthesize", {"swarm": {"rounds": 0}}, "invalid_swarm", "swarm"),
    ("swarm/synthesize", {"swarm": {"members": [{"model": "m-a", "temp": 1}]}},
     "invalid_swarm", "swarm"),
    ("swarm/synthesize", {"messages": []}, "invalid_request", "messages"),
    # stream_options that is not an object: was an internal_error after the streamed answer
    ("swarm/synthesize", {"stream": True, "stream_options": 5}, "invalid_request",
     "stream_options"),
    # a member or judge that is a swarm itself (members are routed to workers)
    ("swarm/synthesize", {"swarm": {"members": ["m-a", "swarm/vote"]}}, "invalid_swarm",
     "swarm"),
    ("swarm/best_of_n", {"swarm": {"members": ["m-a"], "judge": {"model": "swarm"}}},
     "invalid_swarm", "swarm"),
    # a message that is not an object: a 400, whole and (below) streamed, never a 500
    ("swarm/synthesize", {"messages": ["hi"]}, "invalid_request", "messages"),
    ("swarm/best_of_n", {"messages": ["hi", 3]}, "invalid_request", "messages"),
    ("swarm/critique", {"messages": [[1]]}, "invalid_request", "messages"),
    ("swarm/debate", {"messages": ["x"], "stream": True}, "invalid_request", "messages"),
    ("swarm/best_of_n", {"messages": ["hi"], "swarm": {"members": [
        {"model": "m-a", "system": "S"}]}}, "invalid_request", "messages"),
])
async def test_bad_swarm_requests_are_400s_saying_why(aiohttp_server, tmp_path, model, extra,
                                                     code, param):
    script = await scripted.serve(aiohttp_server, MODELS)
    async with router(tmp_path, script.url) as urls:
        status, _, body = await ask(urls["router"], model, **extra)
    assert status == 400, body
    assert (body["error"]["code"], body["error"]["param"]) == (code, param)
    assert not script.calls


@pytest.mark.parametrize("path,body", [
    ("/v1/embeddings", {"model": "swarm", "input": "x"}),
    ("/v1/messages", {"model": "swarm/best_of_n", "max_tokens": 9, "messages": Q}),
    ("/v1/responses", {"model": "swarm", "input": "hi"}),
])
async def test_a_swarm_answers_chat_completions_only(aiohttp_server, tmp_path, path, body):
    script = await scripted.serve(aiohttp_server, MODELS)
    async with router(tmp_path, script.url) as urls:
        async with aiohttp.ClientSession() as s:
            async with s.post(urls["router"] + path, json=body) as r:
                text = await r.text()
    assert r.status == 400, text
    assert "/v1/chat/completions" in text and "invalid_swarm" in text
    assert not script.calls


async def test_on_member_error_fail_cancels_the_rest_and_names_the_failure(aiohttp_server,
                                                                          tmp_path):
    script = await scripted.serve(aiohttp_server, MODELS)
    script.on(model="m-a", status=400, message="bad member")
    script.on(hold=30)
    async with router(tmp_path, script.url, swarm_on_member_error="fail") as urls:
        status, _, body = await ask(urls["router"], "swarm/synthesize")
        await script.wait(lambda s: all(c.left for c in s.calls if c.model != "m-a"), 1.0)
    assert status == 503 and body["error"]["code"] == "swarm_failed"
    assert "bad member" in body["error"]["message"]
    assert "on_member_error: fail" in body["error"]["message"]


async def test_min_successful_is_required(aiohttp_server, tmp_path):
    script = await scripted.serve(aiohttp_server, MODELS)
    script.on(model="m-a", status=500)
    script.on(model="m-b", status=500)
    async with router(tmp_path, script.url) as urls:
        status, _, body = await ask(urls["router"], "swarm/synthesize",
                                    swarm={"min_successful": 2})
    assert status == 503
    assert "1 of 3 members answered, 2 required" in body["error"]["message"]


async def test_max_concurrent_bounds_the_members_in_flight(aiohttp_server, tmp_path):
    script = await scripted.serve(aiohttp_server, MODELS)
    script.on(contains="capital", hold=0.15)
    async with router(tmp_path, script.url) as urls:
        status, _, _ = await ask(urls["router"], "swarm/synthesize", swarm={"max_concurrent": 1})
    assert status == 200
    answers = sorted((c for c in script.calls if "Candidate" not in c.prompt),
                     key=lambda c: c.started)
    for a, b in zip(answers, answers[1:]):
        assert b.started >= a.ended  # one after the other


def _with_file(tmp_path, worker: str, section: dict):  # type: ignore[no-untyped-def]
    path = tmp_path / "router.json"
    path.write_text(json.dumps({"router": section}))
    roles = registry.resolve("router")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ELDRIC_")}
    loaded = load_config(roles, {"port": 0, "bind": "127.0.0.1", "workers": worker,
                                 "data_dir": str(tmp_path / "data"),
                                 "admin_key": "adm"}, env, str(path))
    return serving(roles, loaded)


async def test_ensembles_from_the_config_file_and_at_run_time(aiohttp_server, tmp_path):
    script = await scripted.serve(aiohttp_server, MODELS)
    section = {"ensembles": {"smart": {"strategy": "synthesize", "members": [
        "m-b", {"model": "m-c", "temperature": 0.2}], "judge": "m-a",
        "round_timeout_ms": 5000}}, "swarm": {"max_members": 4}}
    async with _with_file(tmp_path, script.url, section) as urls:
        base = urls["router"]
        async with aiohttp.ClientSession() as s:
            async with s.get(base + "/v1/models") as r:
                ids = [m["id"] for m in (await r.json())["data"]]
            assert ids == [*MODELS, "smart"]
            async with s.get(base + "/v1/models/smart") as r:
                assert r.status == 200 and (await r.json())["id"] == "smart"
            status, _, body = await ask(base, "smart")
            assert status == 200, body
            assert sorted(c.model for c in script.calls) == ["m-a", "m-b", "m-c"]
            assert [c.body.get("temperature") for c in script.asked("m-c")] == [0.2]
            async with s.get(base + "/api/v1/config") as r:
                assert (await r.json())["ensembles"]["smart"]["judge"] == "m-a"
            # at run time: the admin key, the ensembles replaced whole
            new = {"ensembles": {"quick": {"strategy": "best_of_n", "members": ["m-a", "m-a"]}}}
            async with s.post(base + "/api/v1/config", json=new) as r:
                assert r.status == 401
            async with s.post(base + "/api/v1/config", json=new,
                              headers={"Authorization": "Bearer adm"}) as r:
                assert r.status == 200, await r.text()
                assert list((await r.json())["ensembles"]) == ["quick"]
            async with s.get(base + "/v1/models") as r:
                ids = [m["id"] for m in (await r.json())["data"]]
            assert ids == [*MODELS, "quick"]
            status, _, _ = await ask(base, "smart")
            assert status == 404  # no longer an ensemble: a model nobody serves
            for bad in ({"ensembles": {"swarm/x": {"members": ["m-a"]}}},
                        {"ensembles": {"e": {"strategy": "telepathy"}}},
                        {"swarm": {"max_members": 0}}):
                async with s.post(base + "/api/v1/config", json=bad,
                                  headers={"Authorization": "Bearer adm"}) as r:
                    assert r.status == 400, bad
            # ensembles that could never answer are refused when set, not on every request
            for bad in ({"ensembles": {"e": {"strategy": "critique", "members": ["m-a"]}}},
                        {"ensembles": {"e": {"members": ["m-a"] * 5}}},  # max_members 4
                        {"swarm": {"max_members": 1}},  # quick has two members
                        {"ensembles": {"e": {"members": ["e", "m-a"]}}},
                        {"ensembles": {"e": {"members": ["swarm/vote"]}}},
                        {"ensembles": {"e": {"members": ["m-a"], "judge": "swarm"}}},
                        {"ensembles": {"e": {"members": ["m-a"], "judge": {"model": "f"}},
                                       "f": {"members": ["m-b"]}}}):
                async with s.post(base + "/api/v1/config", json=bad,
                                  headers={"Authorization": "Bearer adm"}) as r:
                    assert r.status == 400, bad
                    assert (await r.json())["error"]["code"] == "invalid_swarm", bad
            async with s.get(base + "/api/v1/swarm") as r:
                view = await r.json()
    assert {"synthesize", "best_of_n"} <= {s["name"] for s in view["strategies"]}
    assert list(view["ensembles"]) == ["quick"] and view["swarm"]["max_members"] == 4
    assert view["stats"]["synthesize"]["requests"] == 1


async def test_an_ensemble_name_that_shadows_the_swarm_is_refused_at_start(tmp_path):
    with pytest.raises(Exception, match="the strategies. own names"):
        async with router(tmp_path, "http://127.0.0.1:9",
                          ensembles=json.dumps({"swarm": {"members": ["a"]}})):
            pass


async def test_an_ensemble_that_could_never_answer_is_refused_at_start(tmp_path):
    with pytest.raises(Exception, match="needs at least 2 members"):
        async with router(tmp_path, "http://127.0.0.1:9", ensembles=json.dumps(
                {"e": {"strategy": "debate", "members": ["a"]}})):
            pass


async def test_stats_and_metrics_per_strategy(aiohttp_server, tmp_path):
    script = await scripted.serve(aiohttp_server, MODELS)
    script.on(model="m-b", status=400)
    async with router(tmp_path, script.url) as urls:
        base = urls["router"]
        assert (await ask(base, "swarm/synthesize"))[0] == 200
        script.rules.insert(0, scripted.Rule(None, None, None, scripted.Reply(status=400)))
        assert (await ask(base, "swarm/synthesize"))[0] == 503
        async with aiohttp.ClientSession() as s, s.get(base + "/api/v1/swarm") as r:
            stats = (await r.json())["stats"]["synthesize"]
        series = 'eldric_swarm_requests_total{outcome="%s",strategy="synthesize"}'
        assert await metric(base, series % "ok") == 1
        assert await metric(base, series % "failed") == 1
        assert await metric(base, 'eldric_swarm_member_failures_total{outcome="error",'
                                  'strategy="synthesize"}') == 4
        assert await metric(base, 'eldric_swarm_added_latency_seconds_count'
                                  '{strategy="synthesize"}') == 1
    assert stats["requests"] == 2 and stats["ok"] == 1 and stats["failed"] == 1
    assert stats["member_failures"] == 4 and stats["added_latency_ms_mean"] >= 0


async def test_a_swarm_on_the_aiohttp_lane_too(aiohttp_server, tmp_path):
    """The same route spelled with an escaped slash is aiohttp's, not the fast lane's:
    whole and streamed swarms answer there the same way."""
    from yarl import URL

    from tests.conftest import on_fast_lane

    script = await scripted.serve(aiohttp_server, MODELS)
    async with router(tmp_path, script.url) as urls:
        url = URL(urls["router"] + "/v1/chat%2Fcompletions", encoded=True)
        async with aiohttp.ClientSession() as s:
            async with s.post(url, json={"model": "swarm", "messages": Q}) as r:
                body = await r.json()
                assert r.status == 200 and not on_fast_lane(r.headers), body
            async with s.post(url, json={"model": "swarm", "messages": Q,
                                         "stream": True}) as r:
                text = await r.text()
                assert r.status == 200 and not on_fast_lane(r.headers)
    assert body["eldric"]["swarm"] == "synthesize"
    assert text.startswith(": eldric.swarm ") and text.endswith("data: [DONE]\n\n")
    assert '"eldric":' in text


async def test_a_strategy_that_crashes_is_an_error_in_the_apis_shape(aiohttp_server, tmp_path,
                                                                    monkeypatch):
    from eldric.roles.router.swarm.strategies.synthesize import Synthesize
    from tests.swarm.flows import stream

    async def boom(self, swarm):  # type: ignore[no-untyped-def]
        raise RuntimeError("a bug")

    monkeypatch.setattr(Synthesize, "run", boom)
    script = await scripted.serve(aiohttp_server, MODELS)
    async with router(tmp_path, script.url) as urls:
        status, _, body = await ask(urls["router"], "swarm/synthesize")
        got = await stream(urls["router"], "swarm/synthesize")
        async with aiohttp.ClientSession() as s, s.get(urls["router"] + "/api/v1/swarm") as r:
            stats = (await r.json())["stats"]["synthesize"]
    assert status == 500 and body["error"]["code"] == "internal_error"
    assert got.status == 200 and got.data[-1] == "[DONE]"
    assert got.data[-2]["error"]["code"] == "internal_error"
    assert "a bug" not in got.text
    assert stats["failed"] == 2


@pytest.mark.parametrize("value", ["synthesize", "best_of_n", "1"])
async def test_a_header_swarm_on_a_model_nobody_serves_is_its_404(aiohttp_server, tmp_path,
                                                                 value):
    """As the request without the header: not the other models' answers under that name
    (best_of_n), nor a 503 once they ran (synthesize)."""
    script = await scripted.serve(aiohttp_server, MODELS)
    async with router(tmp_path, script.url) as urls:
        status, _, body = await ask(urls["router"], "m-typo",
                                    headers={"X-Eldric-Swarm": value})
    assert status == 404, body
    assert body["error"]["code"] == "model_not_found"
    assert not script.calls


async def test_models_retrieve_knows_the_strategies_only(aiohttp_server, tmp_path):
    """GET /v1/models/{id} (the SDKs' models.retrieve) says 200 for a swarm model name a
    request may use, and 404 for `swarm/<not a strategy>` (a request for it is a 400)."""
    script = await scripted.serve(aiohttp_server, MODELS)
    async with router(tmp_path, script.url) as urls:
        async with aiohttp.ClientSession() as s:
            async with s.get(urls["router"] + "/v1/models/swarm%2Fvote") as r:
                assert r.status == 200 and (await r.json())["id"] == "swarm/vote"
            async with s.get(urls["router"] + "/v1/models/swarm%2Fquorum") as r:
                assert r.status == 404
                assert (await r.json())["error"]["code"] == "model_not_found"
