"""Vertex AI's service-account auth (eldric/backends/auth_google.py) with the real
google-auth against a fake token endpoint, the one the key file's token_uri names."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest

from eldric.backends import auth_google
from eldric.errors import UpstreamFailure
from tests.conftest import url_of
from tests.fakes import vertex as fake_vertex


@dataclass
class State:
    id: str = "vertex-test"


@dataclass
class FakeReach:
    name: str = "vx"
    url: str = ""
    key: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    extra_headers: dict[str, str] = field(default_factory=dict)
    state: Any = field(default_factory=State)


@pytest.fixture
async def vertex(aiohttp_server, tmp_path):
    knobs = fake_vertex.Knobs()
    server = await aiohttp_server(fake_vertex.app(knobs))
    url = url_of(server)
    key = fake_vertex.service_account(knobs, url, tmp_path / "sa.json")
    return knobs, url, FakeReach(url=url, options={"credentials": str(key), "project": "p"})


async def _location(url: str, headers: dict[str, str]) -> int:
    async with aiohttp.ClientSession() as s, \
            s.get(f"{url}/v1/projects/p/locations/global", headers=headers) as r:
        return r.status


async def test_token_from_the_service_account_is_accepted(vertex):
    knobs, url, reach = vertex
    await auth_google.ready(reach)
    headers = auth_google.sign(reach, "GET", url, {}, b"")
    assert headers["Authorization"].startswith("Bearer ya29.fake-")
    assert knobs.grants == 1
    assert await _location(url, headers) == 200
    assert await _location(url, {"Authorization": "Bearer forged"}) == 401
    # signing again uses the token held: no new grant
    assert auth_google.sign(reach, "GET", url, {}, b"") == headers and knobs.grants == 1


async def test_key_given_as_json_object(vertex, tmp_path):
    knobs, url, reach = vertex
    reach.options["credentials"] = json.loads((tmp_path / "sa.json").read_text())
    await auth_google.ready(reach)
    assert await _location(url, auth_google.sign(reach, "GET", url, {}, b"")) == 200


async def test_token_near_expiry_is_renewed_in_the_background(vertex):
    knobs, url, reach = vertex
    knobs.expires_in = int(auth_google.MARGIN) + 60  # due for renewal at once
    await auth_google.ready(reach)
    first = auth_google.sign(reach, "GET", url, {}, b"")  # still valid: used, renewal started
    src = auth_google.source(reach)
    assert src is not None
    await src.kick()  # the renewal sign() started
    second = auth_google.sign(reach, "GET", url, {}, b"")
    assert knobs.grants == 2 and first != second
    assert await _location(url, second) == 200


async def test_refused_key_is_a_502_backend_auth_failed(vertex):
    knobs, url, reach = vertex
    knobs.refuse_grants = True
    await auth_google.ready(reach)  # never raises
    with pytest.raises(UpstreamFailure) as exc:
        auth_google.sign(reach, "GET", url, {}, b"")
    assert exc.value.status == 502 and exc.value.retryable
    assert json.loads(exc.value.error_body)["error"]["code"] == "backend_auth_failed"
    # the key works again: the next ready() gets a token
    knobs.refuse_grants = False
    await auth_google.ready(reach)
    assert await _location(url, auth_google.sign(reach, "GET", url, {}, b"")) == 200


async def test_unreachable_token_endpoint_is_a_502(tmp_path):
    knobs = fake_vertex.Knobs()
    key = fake_vertex.service_account(knobs, "http://127.0.0.1:9", tmp_path / "sa.json")
    reach = FakeReach(options={"credentials": str(key)})
    await auth_google.ready(reach)
    with pytest.raises(UpstreamFailure) as exc:
        auth_google.sign(reach, "GET", "http://x", {}, b"")
    assert exc.value.status == 502


def test_without_credentials_the_api_key_is_the_token(monkeypatch):
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    assert auth_google.sign(FakeReach(key="ya29.static"), "POST", "u", {}, b"") == {
        "Authorization": "Bearer ya29.static"}
    assert auth_google.sign(FakeReach(), "POST", "u", {}, b"") == {}


async def test_credentials_from_the_environment(vertex, monkeypatch, tmp_path):
    knobs, url, reach = vertex
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "sa.json"))
    reach = FakeReach(url=url)
    await auth_google.ready(reach)
    assert await _location(url, auth_google.sign(reach, "GET", url, {}, b"")) == 200


@pytest.mark.parametrize("content", [None, "not json", '{"type": "service_account"}'])
async def test_unusable_key_file_is_a_502_backend_misconfigured(tmp_path, content):
    path = tmp_path / "sa.json"
    if content is not None:
        path.write_text(content)
    reach = FakeReach(options={"credentials": str(path)})
    with pytest.raises(UpstreamFailure) as exc:
        await auth_google.ready(reach)
    assert exc.value.status == 502
    assert json.loads(exc.value.error_body)["error"]["code"] == "backend_misconfigured"
