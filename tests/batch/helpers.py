"""An edge → router → fake worker chain for the Batch API tests, and batch input files."""

from __future__ import annotations

import contextlib
import json
from collections import Counter

import openai

from tests.conftest import run_eldric, until, url_of
from tests.fakes.openai_server import KNOBS, MODELS

MODEL = MODELS[0]


def line(cid: str, url: str = "/v1/chat/completions", model: str = MODEL, **extra) -> dict:
    body = {"model": model, "messages": [{"role": "user", "content": cid}]}
    return {"custom_id": cid, "method": "POST", "url": url, "body": body, **extra}


def jsonl(rows: list) -> bytes:
    return b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n"
                    for r in rows)


def calls(server) -> Counter:  # type: ignore[no-untyped-def]
    """How often the fake worker was asked each custom_id (the user turn names it)."""
    return Counter(json.loads(r["body"])["messages"][-1]["content"]
                   for r in server.app[KNOBS].requests if r["path"] == "/v1/chat/completions")


@contextlib.asynccontextmanager
async def edge(tmp_path, routers: str, **flags):  # type: ignore[no-untyped-def]
    flags.setdefault("api_key", ["k1", "k2"])
    async with run_eldric("edge", tmp_path / "e", no_tls=True, http_port=0, bind="127.0.0.1",
                          routers=routers, **flags) as e:
        yield e["edge"]


@contextlib.asynccontextmanager
async def chain(tmp_path, *workers, **flags):  # type: ignore[no-untyped-def]
    """edge (keys k1, k2) → router → the fake workers; the edge's URL."""
    async with run_eldric("router", tmp_path / "r", port=0, bind="127.0.0.1",
                          workers=",".join(url_of(w) for w in workers)) as r:
        async with edge(tmp_path, r["router"], **flags) as url:
            yield url


def sdk(url: str, key: str = "k1") -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=url + "/v1", api_key=key, max_retries=0)


async def finished(client: openai.AsyncOpenAI, batch_id: str, timeout: float = 15.0):  # type: ignore[no-untyped-def]
    async def done():  # type: ignore[no-untyped-def]
        b = await client.batches.retrieve(batch_id)
        return b if b.status in ("completed", "failed", "expired", "cancelled") else None
    return await until(done, timeout=timeout, every=0.05)


async def output(client: openai.AsyncOpenAI, file_id: str | None) -> dict:
    if file_id is None:
        return {}
    data = (await client.files.content(file_id)).content
    rows = [json.loads(x) for x in data.splitlines()]
    assert len({r["custom_id"] for r in rows}) == len(rows), "a custom_id answered twice"
    return {r["custom_id"]: r for r in rows}
