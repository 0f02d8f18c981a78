"""Knowledge routing through a real router and fake workers on loopback: a medical prompt
goes to the worker tagged theme:medicine, an unmatched one load-balances, the reply says
which theme and why, /metrics counts it, the classify and themes endpoints answer (and
refuse bad bodies), and the optional embedding scorer (a fake /v1/embeddings server)
classifies what the keywords miss, and is routed around when slow, down or garbled."""

from __future__ import annotations

import contextlib
import json
import os
import time

import aiohttp
import pytest

from eldric import registry
from eldric.cli import load_config
from eldric.errors import ConfigError
from tests.conftest import metric, serving, until, url_of
from tests.fakes import embeddings as fake_embeddings
from tests.fakes import worker as fake_worker
from tests.fakes.worker import KNOBS

HEART = "I get chest pain when I climb stairs and my blood pressure is always high."
CODE = "Why does my python list comprehension raise a TypeError?"
PLAIN = "hi"


@pytest.fixture
async def trio(aiohttp_server):
    """Three fake workers: med (theme:medicine), law (theme:law), general (no tag)."""
    out = {}
    for name in ("med", "law", "general"):
        server = await aiohttp_server(fake_worker.make_app(name, ["m1"]))
        out[name] = (url_of(server), server.app[KNOBS])
    return out


@contextlib.asynccontextmanager
async def router(tmp_path, workers, knowledge=None, **flags):
    """A router over `workers` {name: (url, knobs)}, tagged theme:medicine / theme:law by
    name, with the file's `knowledge` section and these flags."""
    tags = {"med": ["theme:medicine", "gpu"], "law": ["theme:law"]}
    cfg = {"workers": [{"url": url, "tags": tags.get(name, [])}
                       for name, (url, _) in workers.items()],
           "strategy": "round_robin"}
    if knowledge is not None:
        cfg["knowledge"] = knowledge
    path = tmp_path / "router.json"
    path.write_text(json.dumps(cfg))
    roles = registry.resolve("router")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ELDRIC_")}
    loaded = load_config(roles, {"port": 0, "bind": "127.0.0.1",
                                 "data_dir": str(tmp_path / "data"), **flags}, env, str(path))
    async with serving(roles, loaded) as urls:
        yield urls["router"]


async def ask(s, base, text, system=None, path="/v1/chat/completions"):
    messages = ([{"role": "system", "content": system}] if system else []) + \
        [{"role": "assistant", "content": "earlier"}, {"role": "user", "content": text}]
    async with s.post(base + path, json={"model": "m1", "messages": messages}) as r:
        return r.status, r.headers.copy(), await r.read()


def hits(workers):
    return {name: k.hits for name, (_, k) in workers.items()}


async def test_a_medical_prompt_goes_to_the_medicine_worker_and_a_plain_one_balances(
        trio, tmp_path):
    async with router(tmp_path, trio, knowledge={"enabled": True}) as base, \
            aiohttp.ClientSession() as s:
        for _ in range(4):  # round_robin would spread them: the theme keeps them on med
            status, headers, _ = await ask(s, base, HEART)
            assert status == 200 and headers["X-Eldric-Worker"] == trio["med"][0]
            # cardiology has no worker of its own: its parent medicine's takes it
            assert headers["X-Eldric-Theme"] == "cardiology"
            assert "theme:medicine, 1 of 3 workers" in headers["X-Eldric-Theme-Reason"]
        assert hits(trio) == {"med": 4, "law": 0, "general": 0}
        for _ in range(6):  # no theme: standard balancing over all three
            status, headers, _ = await ask(s, base, PLAIN)
            assert status == 200 and "X-Eldric-Theme" not in headers
            assert headers["X-Eldric-Theme-Reason"].startswith("no theme")
        assert hits(trio) == {"med": 6, "law": 2, "general": 2}
        for _ in range(3):  # a theme no worker is tagged for: balanced too, and said so
            status, headers, _ = await ask(s, base, CODE)
            assert headers["X-Eldric-Theme"] == "python"
            assert "no candidate tagged" in headers["X-Eldric-Theme-Reason"]
        assert sum(hits(trio).values()) == 13 and hits(trio)["general"] == 3
        # the system prompt counts too: a plain turn under a legal system prompt
        _, headers, _ = await ask(s, base, "what now?",
                                  system="You help tenants whose landlord withholds a deposit.")
        assert headers["X-Eldric-Worker"] == trio["law"][0]
        m = 'eldric_router_theme_requests_total{outcome="%s",theme="%s"}'
        assert await metric(base, m % ("narrowed", "cardiology")) == 4
        assert await metric(base, m % ("unmatched", "none")) == 6
        assert await metric(base, m % ("untagged", "python")) == 3
        assert await metric(base, m % ("narrowed", "property_law")) == 1


async def test_off_by_default_no_theme_and_plain_balancing(trio, tmp_path):
    async with router(tmp_path, trio) as base, aiohttp.ClientSession() as s:
        for _ in range(3):
            status, headers, _ = await ask(s, base, HEART)
            assert status == 200 and "X-Eldric-Theme" not in headers
            assert "X-Eldric-Theme-Reason" not in headers
        assert hits(trio) == {"med": 1, "law": 1, "general": 1}
        # the endpoints answer all the same (to try a themes file before routing on it)
        async with s.post(base + "/api/v1/knowledge/classify",
                          json={"messages": [{"role": "user", "content": HEART}]}) as r:
            body = await r.json()
            assert r.status == 200 and body["theme"] == "cardiology"
            assert body["enabled"] is False


async def test_the_medicine_worker_down_means_standard_balancing(trio, tmp_path):
    async with router(tmp_path, trio, knowledge={"enabled": True},
                      health_interval="100") as base, aiohttp.ClientSession() as s:
        trio["med"][1].health_status = 503

        async def med_out():
            async with s.get(base + "/api/v1/workers") as r:
                ws = (await r.json())["workers"]
            return all(not w["healthy"] for w in ws if w["url"] == trio["med"][0])

        await until(med_out)
        for _ in range(2):
            status, headers, _ = await ask(s, base, HEART)
            assert status == 200 and headers["X-Eldric-Theme"] == "cardiology"
            assert "no candidate tagged" in headers["X-Eldric-Theme-Reason"]
        assert hits(trio)["med"] == 0 and hits(trio)["law"] + hits(trio)["general"] == 2


async def test_an_error_reply_says_the_theme_that_narrowed_the_candidates(trio, tmp_path):
    trio["med"][1].fail_status = 500
    async with router(tmp_path, trio, knowledge={"enabled": True}) as base, \
            aiohttp.ClientSession() as s:
        status, headers, body = await ask(s, base, HEART)
        # only the tagged worker was a candidate: the reply says why no other was tried
        assert status >= 500 and json.loads(body)["error"]
        assert headers["X-Eldric-Theme"] == "cardiology"
        assert "theme:medicine, 1 of 3" in headers["X-Eldric-Theme-Reason"]
        assert hits(trio) == {"med": 1, "law": 0, "general": 0}


async def test_embeddings_requests_are_never_classified(trio, tmp_path):
    async with router(tmp_path, trio, knowledge={"enabled": True}) as base, \
            aiohttp.ClientSession() as s:
        async with s.post(base + "/v1/embeddings",
                          json={"model": "m1", "input": HEART}) as r:
            assert "X-Eldric-Theme" not in r.headers
            assert "X-Eldric-Theme-Reason" not in r.headers


async def test_classify_says_the_theme_its_parents_worker_and_why(trio, tmp_path):
    async with router(tmp_path, trio, knowledge={"enabled": True}) as base, \
            aiohttp.ClientSession() as s:
        url = base + "/api/v1/knowledge/classify"
        async with s.post(url, json={"model": "x", "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": HEART}]}]}) as r:
            body = await r.json()
        assert r.status == 200
        assert body["theme"] == "cardiology" and body["scorer"] == "keywords"
        assert body["themes"][0]["matched"] == ["blood pressure", "chest pain"]
        assert body["route"] == {"tag": "theme:medicine", "workers": [trio["med"][0]]}
        async with s.post(url, json={"messages": [{"role": "user", "content": PLAIN}]}) as r:
            body = await r.json()
        assert body["theme"] is None and body["route"] is None
        assert body["reason"] == "keywords: no theme named"
        async with s.get(base + "/api/v1/knowledge/themes") as r:
            listed = await r.json()
        assert listed["count"] >= 150 and listed["enabled"] is True
        med = next(t for t in listed["themes"] if t["id"] == "medicine")
        assert med["workers"] == [trio["med"][0]] and med["keywords"]
        assert next(t for t in listed["themes"] if t["id"] == "cardiology")["parent"] == \
            "medicine"


@pytest.mark.parametrize("body, param", [
    (b"", None),
    (b"{nope", None),
    (b"[]", None),
    (b'{"prompt": "hi"}', "prompt"),
    (b'{}', "messages"),
    (b'{"messages": []}', "messages"),
    (b'{"messages": "hi"}', "messages"),
    (b'{"messages": [{"content": "hi"}]}', "messages"),
    (b'{"messages": [{"role": "user", "content": 5}]}', "messages"),
])
async def test_classify_refuses_a_bad_body_naming_the_field(trio, tmp_path, body, param):
    async with router(tmp_path, trio) as base, aiohttp.ClientSession() as s:
        async with s.post(base + "/api/v1/knowledge/classify", data=body,
                          headers={"Content-Type": "application/json"}) as r:
            err = (await r.json())["error"]
            assert r.status == 400 and err["type"] == "invalid_request_error"
            assert err["param"] == param
            assert err["code"] in ("invalid_request", "invalid_body", "invalid_json")


def themes_file(tmp_path) -> str:
    """Two themes whose keywords the test prompt misses, and whose examples it echoes."""
    p = tmp_path / "themes.json"
    p.write_text(json.dumps({"themes": [
        {"id": "medicine", "name": "Medicine", "keywords": ["medicine"],
         "examples": ["my throat hurts and I feel hot and tired"]},
        {"id": "law", "name": "Law", "keywords": ["law"],
         "examples": ["the landlord kept my deposit when I moved out"]}]}))
    return str(p)


async def emb_router(tmp_path, trio, server, **more):
    return router(tmp_path, trio, knowledge={
        "enabled": True, "themes": themes_file(tmp_path), "embeddings_model": "bow",
        "embeddings_url": url_of(server) + "/v1", "embeddings_threshold": 0.3, **more})


async def _ready(s, base):
    async with s.get(base + "/api/v1/knowledge/themes") as r:
        return (await r.json())["embeddings"]["ready"]


async def test_the_embedding_scorer_classifies_what_the_keywords_miss(
        trio, tmp_path, aiohttp_server):
    server = await aiohttp_server(fake_embeddings.make_app())
    knobs = server.app[fake_embeddings.KNOBS]
    async with await emb_router(tmp_path, trio, server) as base, aiohttp.ClientSession() as s:
        await until(lambda: _ready(s, base))
        # centroids from each theme's name+keywords and its examples, asked once
        assert len(knobs.inputs) == 4 and knobs.calls == 1
        status, headers, _ = await ask(s, base, "since monday my throat hurts")
        assert status == 200 and headers["X-Eldric-Worker"] == trio["med"][0]
        assert headers["X-Eldric-Theme"] == "medicine"
        assert "(embeddings 0." in headers["X-Eldric-Theme-Reason"]
        _, headers, _ = await ask(s, base, "I moved out and the landlord kept it all")
        assert headers["X-Eldric-Worker"] == trio["law"][0]
        # a keyword hit never asks the model
        calls = knobs.calls
        _, headers, _ = await ask(s, base, "a question of law")
        assert headers["X-Eldric-Theme"] == "law" and knobs.calls == calls
        # nothing near any theme: balanced, and the reason gives the best similarity
        _, headers, _ = await ask(s, base, "zebra quantum violin")
        assert "X-Eldric-Theme" not in headers
        assert "embeddings: best" in headers["X-Eldric-Theme-Reason"]
        assert await metric(base, 'eldric_router_theme_embeddings_total{outcome="ok"}') == 3


async def test_no_tagged_worker_no_embeddings_call(aiohttp_server, tmp_path):
    server = await aiohttp_server(fake_embeddings.make_app())
    knobs = server.app[fake_embeddings.KNOBS]
    w = await aiohttp_server(fake_worker.make_app("general", ["m1"]))
    only = {"general": (url_of(w), w.app[KNOBS])}
    async with await emb_router(tmp_path, only, server) as base, aiohttp.ClientSession() as s:
        await until(lambda: _ready(s, base))
        calls = knobs.calls
        status, headers, _ = await ask(s, base, "since monday my throat hurts")
        assert status == 200 and knobs.calls == calls  # it could change nothing


@pytest.mark.parametrize("fault, outcome", [("slow", "timeout"), ("down", "error"),
                                            ("garbage", "error")])
async def test_a_failing_embedding_scorer_is_routed_around(trio, tmp_path, aiohttp_server,
                                                           fault, outcome):
    server = await aiohttp_server(fake_embeddings.make_app())
    knobs = server.app[fake_embeddings.KNOBS]
    async with await emb_router(tmp_path, trio, server, embeddings_timeout_ms=100) as base, \
            aiohttp.ClientSession() as s:
        await until(lambda: _ready(s, base))
        if fault == "slow":
            knobs.delay = 2.0
        elif fault == "down":
            knobs.fail_status = 500
        else:
            knobs.garbage = True
        started = time.monotonic()
        status, headers, _ = await ask(s, base, "since monday my throat hurts")
        assert status == 200 and "X-Eldric-Theme" not in headers
        assert headers["X-Eldric-Theme-Reason"].endswith(f"embeddings: {outcome}")
        if fault == "slow":
            assert time.monotonic() - started < 1.0  # the deadline, not the model's delay
        series = 'eldric_router_theme_embeddings_total{outcome="%s"}' % outcome
        assert await metric(base, series) == 1


async def test_before_the_centroids_are_ready_requests_route_without_them(
        trio, tmp_path, aiohttp_server):
    server = await aiohttp_server(fake_embeddings.make_app())
    server.app[fake_embeddings.KNOBS].fail_status = 503  # the model is not up yet
    async with await emb_router(tmp_path, trio, server) as base, aiohttp.ClientSession() as s:
        await until(lambda: server.app[fake_embeddings.KNOBS].calls >= 1)
        assert not await _ready(s, base)
        status, headers, _ = await ask(s, base, "since monday my throat hurts")
        assert status == 200
        assert headers["X-Eldric-Theme-Reason"].endswith("embeddings: not_ready")


@pytest.mark.parametrize("flags, fault", [
    ({"theme_embeddings_model": "bow"}, "needs --theme-embeddings-url"),
    ({"theme_embeddings_model": "bow", "theme_embeddings_url": "localhost:1"},
     "http:// or https://"),
])
async def test_a_bad_embeddings_setting_is_refused_at_start(tmp_path, flags, fault):
    roles = registry.resolve("router")
    loaded = load_config(roles, {"port": 0, "bind": "127.0.0.1",
                                 "data_dir": str(tmp_path / "d"), **flags}, {})
    with pytest.raises(ConfigError, match=fault):
        async with serving(roles, loaded):
            pass


async def test_theme_tags_from_the_controller(trio, aiohttp_server, tmp_path):
    from tests.fakes import controller as fake_controller
    from tests.fakes.controller import STATE

    ctl = await aiohttp_server(fake_controller.make_app())
    st = ctl.app[STATE]
    for name, tags in (("med", ["theme:medicine"]), ("general", [])):
        st.workers[f"wrk-{name}"] = {"id": f"wrk-{name}", "worker_type": "inference",
                                     "url": trio[name][0], "models": ["m1"], "tags": tags}
    roles = registry.resolve("router")
    loaded = load_config(roles, {"port": 0, "bind": "127.0.0.1", "knowledge": True,
                                 "controller": url_of(ctl), "strategy": "round_robin",
                                 "data_dir": str(tmp_path / "d")}, {})
    async with serving(roles, loaded) as urls, aiohttp.ClientSession() as s:
        for _ in range(3):
            _, headers, _ = await ask(s, urls["router"], HEART)
            assert headers["X-Eldric-Worker"] == "wrk-med"


async def test_a_streamed_reply_says_its_theme_too(trio, tmp_path):
    async with router(tmp_path, trio, knowledge={"enabled": True}) as base, \
            aiohttp.ClientSession() as s:
        async with s.post(base + "/v1/chat/completions", json={
                "model": "m1", "stream": True,
                "messages": [{"role": "user", "content": HEART}]}) as r:
            await r.read()
            assert r.status == 200 and r.headers["X-Eldric-Theme"] == "cardiology"
            assert r.headers["X-Eldric-Worker"] == trio["med"][0]
