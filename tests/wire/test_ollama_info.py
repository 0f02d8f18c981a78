"""The bodies eldric answers for Ollama clients itself (eldric.wire.ollama: /api/tags,
/api/show, /api/ps, /api/version) and the embeddings translation (ollama_embed), read by
the `ollama` client's ListResponse, ShowResponse, ProcessResponse, EmbedResponse and
EmbeddingsResponse, and checked against what Open WebUI reads (research/formats.md 3.6)."""

from __future__ import annotations

import json
import re
from datetime import datetime

import httpx
import ollama
import pytest

from eldric.errors import BadRequest
from eldric.wire import ollama as info
from eldric.wire.ollama_embed import embed, embeddings
from tests.wire.ollama_loop import Loop

MODELS = ["llama3.2:latest", "eldric-mock"]


def served(routes: dict[str, bytes]) -> ollama.Client:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=routes[request.url.path],
                              headers={"content-type": "application/json"})
    return ollama.Client(host="http://ollama.test", transport=httpx.MockTransport(handle))


def test_tags_for_the_ollama_client_and_open_webui():
    client = served({"/api/tags": info.tags(MODELS)})
    listed = client.list()
    assert [m.model for m in listed.models] == MODELS
    assert all(isinstance(m.modified_at, datetime) for m in listed.models)
    # Open WebUI's fetch_ollama_models: {'id': model['model'], 'name': model['name']}
    raw = json.loads(info.tags(MODELS))["models"]
    assert [(m["model"], m["name"]) for m in raw] == [(m, m) for m in MODELS]
    assert set(raw[0]) == {"name", "model", "modified_at", "size", "digest", "details"}
    assert set(raw[0]["details"]) == {"parent_model", "format", "family", "families",
                                      "parameter_size", "quantization_level"}


def test_show():
    body = info.show(model_info={"general.architecture": "llama",
                                 "llama.context_length": 8192},
                     model_details=info.details(family="llama", format="gguf"),
                     capabilities=["completion", "tools"])
    shown = served({"/api/show": body}).show("smollm2")
    assert shown.modelinfo == {"general.architecture": "llama", "llama.context_length": 8192}
    assert shown.capabilities == ["completion", "tools"]
    assert (shown.details.family, shown.details.families) == ("llama", ["llama"])
    assert (shown.modelfile, shown.template, shown.parameters) == ("", "", "")
    bare = served({"/api/show": info.show()}).show("m")
    assert bare.modelinfo == {} and bare.capabilities == ["completion"]


@pytest.mark.parametrize(("body", "model"), [
    (b'{"model": "llava"}', "llava"), (b'{"name": "llava"}', "llava"),
    (b'{"model": "llava", "verbose": true}', "llava")])
def test_show_request(body, model):
    assert info.show_model(body) == model


@pytest.mark.parametrize(("body", "param"), [
    (b"{}", "model"), (b'{"model": ""}', "model"), (b'{"model": 5}', "model"), (b"[]", None)])
def test_show_request_without_a_model(body, param):
    with pytest.raises(BadRequest) as err:
        info.show_model(body)
    assert err.value.param == param


def test_version_is_dotted_numbers_as_open_webui_parses_it():
    version = json.loads(info.version())["version"]
    # Open WebUI routers/ollama.py get_ollama_versions
    assert tuple(map(int, re.sub(r"^v|-.*", "", version).split(".")))


def test_ps():
    assert served({"/api/ps": info.ps()}).ps().models == []


VECTORS = b'''{"object": "list", "model": "all-minilm", "data": [
  {"object": "embedding", "index": 1, "embedding": [-0.0098027075, 0.06042469]},
  {"object": "embedding", "index": 0, "embedding": [0.010071029, -0.0017594862]}],
  "usage": {"prompt_tokens": 8, "total_tokens": 8}}'''


def test_embed_as_documented():
    # docs/api.md "Request (Multiple input)"
    loop = Loop(embed, lambda sent: VECTORS)
    r = loop.client().embed("all-minilm", ["Why is the sky blue?", "Why is the grass green?"])
    assert [list(v) for v in r.embeddings] == [[0.010071029, -0.0017594862],
                                               [-0.0098027075, 0.06042469]]
    assert (r.model, r.prompt_eval_count) == ("all-minilm", 8)
    assert loop.sent == [{"model": "all-minilm",
                          "input": ["Why is the sky blue?", "Why is the grass green?"]}]
    # Open WebUI's RAG call
    loop.client().embed("all-minilm", "one", truncate=True, dimensions=2)
    assert loop.sent[1] == {"model": "all-minilm", "input": "one", "dimensions": 2}


def test_legacy_embeddings():
    loop = Loop(embeddings, lambda sent: VECTORS)
    r = loop.client().embeddings("all-minilm", "Here is an article about llamas...")
    assert list(r.embedding) == [0.010071029, -0.0017594862]
    assert loop.sent == [{"model": "all-minilm", "input": "Here is an article about llamas..."}]


@pytest.mark.parametrize(("factory", "body", "param"), [
    (embed, {"model": "m", "input": [1, 2]}, "input"),
    (embed, {"model": "m", "input": []}, "input"),
    (embed, {"model": "m", "input": ""}, "input"),
    (embed, {"input": "x"}, "model"),
    (embed, {"model": "m", "input": "x", "dimensions": "8"}, "dimensions"),
    (embeddings, {"model": "m"}, "prompt"),
])
def test_bad_embed_bodies(factory, body, param):
    with pytest.raises(BadRequest) as err:
        factory(json.dumps(body).encode())
    assert err.value.param == param


def test_an_unreadable_embedding_reply_is_a_value_error():
    t = embed(b'{"model": "m", "input": "x"}')
    with pytest.raises(ValueError):
        t.whole(b'{"data": [{"embedding": "base64?"}]}')
    assert (t.stream, t.upstream_path, t.feed(b"data: x"), t.close()) == (
        False, "/v1/embeddings", b"", b"")
