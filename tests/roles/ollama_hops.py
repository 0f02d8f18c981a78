"""Helpers of the Ollama API tests: a worker, a router in front of it and an edge in front
of that, and the `ollama` client pointed at one of them."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import ollama

from tests.conftest import run_eldric

KEY = "sk-ollama"


@contextlib.asynccontextmanager
async def hops(tmp_path, edge_flags: dict | None = None,
               worker_ready: Callable[[str], Awaitable[object]] | None = None,
               **worker_flags) -> AsyncIterator[dict[str, str]]:
    """{"worker", "router", "edge"}: the URL of each hop, the edge keyed with KEY.
    `worker_ready(url)`: awaited before the router starts (a backend that loads a model:
    the router's first check then sees it).

    The router checks its worker at its default interval, never every 100 ms: a check's
    deadline is the interval (at most 5 s), and 100 ms is too short on a loaded machine,
    where one slow /health took the only worker out and the next request got a 503."""
    async with run_eldric("worker", tmp_path / "w", port=0, bind="127.0.0.1",
                          **worker_flags) as w:
        if worker_ready is not None:
            await worker_ready(w["worker"])
        async with run_eldric("router", tmp_path / "r", port=0, bind="127.0.0.1",
                              workers=w["worker"]) as r, \
                run_eldric("edge", tmp_path / "e", no_tls=True, http_port=0,
                           bind="127.0.0.1", routers=r["router"], api_key=KEY,
                           **(edge_flags or {})) as e:
            yield {"worker": w["worker"], "router": r["router"], "edge": e["edge"]}


def client(url: str) -> ollama.AsyncClient:
    """The ollama client as its users make it; with the edge's key (the client sends
    OLLAMA_API_KEY as a bearer token, here given as the header it becomes)."""
    return ollama.AsyncClient(host=url, headers={"Authorization": f"Bearer {KEY}"})
