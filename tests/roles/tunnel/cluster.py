"""A whole cluster with a worker behind the tunnel, for the end-to-end tests: a real
controller, a real edge (tests/roles/tunnel/kit.py's keys and scopes), a real router
told only the controller, and a worker started with --tunnel EDGE whose own port nobody
is told; it registers through the edge. A client calls the edge; the chain is
edge → router → edge → tunnel → worker."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp

from tests.conftest import free_port, run_eldric, until
from tests.roles.tunnel.kit import ADMIN, PLAIN, ROUTER, WORKER, auth, edge

CHAT = {"model": "eldric-mock", "messages": [{"role": "user", "content": "hi"}]}


@dataclass
class Cluster:
    edge: str
    controller: str
    router: str

    async def tunnels(self, s: aiohttp.ClientSession) -> list[dict]:
        async with s.get(self.edge + "/api/v1/tunnel/workers", headers=auth(ADMIN)) as r:
            assert r.status == 200, await r.text()
            return (await r.json())["tunnels"]

    async def workers(self, s: aiohttp.ClientSession) -> list[dict]:
        async with s.get(self.controller + "/api/v1/workers") as r:
            return [w for w in (await r.json())["workers"] if w["worker_type"] == "inference"]

    def chat(self, s: aiohttp.ClientSession, **body: object):  # type: ignore[no-untyped-def]
        """POST /v1/chat/completions at the edge, as a client with an inference key."""
        return s.post(self.edge + "/v1/chat/completions", json={**CHAT, **body},
                      headers=auth(PLAIN))


@contextlib.asynccontextmanager
async def cluster(tmp_path, *, edge_port: int | None = None, edge_flags: dict | None = None,
                  router_flags: dict | None = None) -> AsyncIterator[Cluster]:
    """Controller, edge and router (no worker yet: start them with worker_flags())."""
    rport = free_port()
    # the load tests' clients all come from 127.0.0.1: no per-IP or per-key limit
    edge_flags = {"per_ip_rpm": 0, "per_key_rpm": 0, **(edge_flags or {})}
    router_flags = {"sync_interval": 200, "health_interval": 500, **(router_flags or {})}
    async with run_eldric("controller", tmp_path / "c", port=0, bind="127.0.0.1") as c, \
            edge(tmp_path, routers=f"http://127.0.0.1:{rport}", http_port=edge_port or 0,
                 controller=c["controller"], **edge_flags) as e, \
            run_eldric("router", tmp_path / "r", port=rport, bind="127.0.0.1",
                       controller=c["controller"], api_key=ROUTER, **router_flags) as r:
        yield Cluster(edge=e, controller=c["controller"], router=r["router"])


def worker_flags(cl: Cluster, **flags: object) -> dict:
    """A tunnelled worker: with a register-scoped key it connects to the edge and
    registers its tunnel:// URL through the edge (the edge relays to the controller)."""
    return {"backend": "mock", "port": 0, "bind": "127.0.0.1", "tunnel": cl.edge,
            "api_key": WORKER, "controller": cl.edge, "heartbeat_interval": 200,
            **flags}


def worker_argv(cl: Cluster, **flags: object) -> list[str]:
    out = ["--role", "worker"]
    for k, v in worker_flags(cl, **flags).items():
        out += [f"--{k.replace('_', '-')}", str(v)]
    return out


async def routed(s: aiohttp.ClientSession, cl: Cluster, worker_url: str,
                 timeout: float = 15) -> None:
    """Until the router sends chat to the worker at `worker_url`."""
    async def ok() -> bool:
        async with cl.chat(s, max_tokens=1) as r:
            await r.read()
            return r.status == 200 and r.headers.get("X-Eldric-Worker") is not None and \
                await _url_of(s, cl, r.headers["X-Eldric-Worker"]) == worker_url
    await until(ok, timeout=timeout, every=0.1)


async def _url_of(s: aiohttp.ClientSession, cl: Cluster, wid: str) -> str | None:
    for w in await cl.workers(s):
        if w["id"] == wid:
            return w["url"]
    return None


def normalised(sse: bytes) -> bytes:
    """The mock's own per-reply id and clock second: all that may differ between two
    replies to the same request."""
    sse = re.sub(rb'"id": ?"(chatcmpl|cmpl)-mock\d+"', b'"id":"X"', sse)
    return re.sub(rb'"created": ?\d+', b'"created":0', sse)
