"""Eldric in front of a fake backend for the native adapters' end-to-end tests: the
cloud role with backends given as its config's JSON, or the worker fronting one
(--backend, --backend-url, --backend-api-key, --backend-options), and the openai SDK on
it."""

from __future__ import annotations

import contextlib
import json

import aiohttp
import openai
import pytest

from tests.conftest import run_cloud, run_eldric, until, url_of
from tests.fakes.textgen import KNOBS


def cloud(tmp_path, *specs: dict):  # type: ignore[no-untyped-def]
    return front("cloud", tmp_path, *specs)


@contextlib.asynccontextmanager
async def front(role: str, tmp_path, *specs: dict):  # type: ignore[no-untyped-def]
    """The cloud role with these backends, or the worker fronting the first (its
    --backend, --backend-url, --backend-api-key, --backend-options); {"url": URL} once
    its model list is in."""
    if role == "cloud":
        ctx = run_cloud(tmp_path, json.dumps(list(specs)))
    else:
        (one,) = specs
        ctx = run_eldric("worker", tmp_path, port=0, bind="127.0.0.1", backend=one["type"],
                         backend_url=one["url"], backend_api_key=one.get("api_key"),
                         backend_options=json.dumps(one.get("options") or {}))
    async with ctx as urls:
        base = urls[role]
        await until(lambda: _listed(base), timeout=10)
        yield {"url": base}


async def _listed(base: str) -> bool:
    async with aiohttp.ClientSession() as s, s.get(base + "/v1/models") as r:
        return r.status == 200 and bool((await r.json())["data"])


ROLES = pytest.mark.parametrize("role", ["worker", "cloud"])


def client(urls) -> openai.AsyncOpenAI:  # type: ignore[no-untyped-def]
    return openai.AsyncOpenAI(base_url=urls["url"] + "/v1", api_key="unused", max_retries=0,
                              http_client=openai.DefaultAsyncHttpxClient())


def fake_starter(aiohttp_server, make_app):  # type: ignore[no-untyped-def]
    """start() -> (URL, knobs) of a new fake server (tests/fakes/textgen.py's knobs)."""
    async def start():  # type: ignore[no-untyped-def]
        server = await aiohttp_server(make_app())
        return url_of(server), server.app[KNOBS]
    return start
