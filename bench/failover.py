"""What the failover loops cost a request whose first candidate answers.

    python bench/failover.py [TREE]

Builds a router, an edge and a cloud app in this process (no sockets), replaces
forward() wherever the roles call it by a stub that answers at once, and prints per
request: the handler's time (best of 5 rounds of 20,000) and the Python and C calls it
makes (sys.setprofile). TREE is another checkout to import eldric from (the one before
a change of the loops; by default this one), so two runs compare the same requests.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
import tempfile
import time
from pathlib import Path

# This checkout, or TREE: not whatever eldric the interpreter would import.
sys.path.insert(0, sys.argv[1] if len(sys.argv) > 1 else str(Path(__file__).parent.parent))

from aiohttp import web  # noqa: E402

from eldric import config, keys, registry  # noqa: E402
from eldric.app import make_app, make_session  # noqa: E402
from eldric.bus import Bus  # noqa: E402
from eldric.context import Hop  # noqa: E402
from eldric.serve.request import FAST, FastRequest  # noqa: E402
from eldric.stream.pool import ConnectionPool  # noqa: E402

N = 20_000
BODY = b'{"model": "m1", "messages": [{"role": "user", "content": "hi"}]}'
RAW = [(b"Host", b"x"), (b"Content-Type", b"application/json")]
REPLY = web.Response(status=200, body=b"{}")
# Where a role may call forward() from, in either tree; absent modules are skipped.
CALLERS = ("eldric.roles.router.handlers", "eldric.roles.router.attempts",
           "eldric.roles.edge.handlers", "eldric.roles.edge.routers",
           "eldric.roles.cloud.handlers", "eldric.roles.cloud.openai_call")
SETTINGS = {
    "router": {"workers": [{"url": "http://127.0.0.1:9"}], "strategy": "round_robin"},
    "edge": {"no_tls": True, "router_urls": ["http://127.0.0.1:9"],
             "auth": {"require_api_key": False},
             "rate_limits": {"global_rpm": 0, "per_ip_rpm": 0, "per_key_rpm": 0}},
    "cloud": {"backends": [{"name": "local", "url": "http://127.0.0.1:9",
                            "type": "openai_compatible"}]},
}


async def _stub(request, target, path, body, **kw):  # type: ignore[no-untyped-def]
    return REPLY


def _stub_forward() -> None:
    for name in CALLERS:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError:
            continue
        if hasattr(mod, "forward"):
            mod.forward = _stub  # type: ignore[attr-defined]


def _apps(bus: Bus, session, pool) -> dict[str, web.Application]:  # type: ignore[no-untyped-def]
    roles = {n: registry.load(n) for n in SETTINGS}
    loaded = config.load({n: (roles[n].config, {**roles[n].defaults(), **s})
                          for n, s in SETTINGS.items()}, None, {},
                         {"process.data_dir": (None, tempfile.mkdtemp())})
    apps = {n: make_app(roles[n], loaded.roles[n], loaded.process, bus, session, pool,
                        "http://127.0.0.1:1") for n in SETTINGS}
    for up in bus.upstreams.values():  # every upstream answers, and serves the model
        up.healthy, up.models = True, ["m1"]
    from eldric.roles.cloud.state import CLOUD
    for b in apps["cloud"][CLOUD].backends.values():
        b.models = ["m1"]
    return apps


def _requests(app: web.Application, role: str) -> list[FastRequest]:
    out = []
    for _ in range(N):
        r = FastRequest(None, app, "/v1/chat/completions", "", RAW)  # type: ignore[arg-type]
        r.body = BODY
        r[keys.HOP] = Hop(request_id="x", role=role, started=0.0, lane=FAST)
        out.append(r)
    return out


async def _measure(handler, reqs: list[FastRequest]) -> tuple[float, dict[str, int]]:  # type: ignore[no-untyped-def]
    assert (await handler(reqs[0])) is REPLY
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for r in reqs:
            await handler(r)
        best = min(best, (time.perf_counter() - t0) / len(reqs))
    counts = {"call": 0, "c_call": 0}

    def profile(frame, event, arg):  # type: ignore[no-untyped-def]
        if event in counts:
            counts[event] += 1

    sys.setprofile(profile)
    for r in reqs[:1000]:
        await handler(r)
    sys.setprofile(None)
    return best, counts


async def main() -> None:
    bus, session, pool = Bus(), make_session(), ConnectionPool()
    _stub_forward()
    apps = _apps(bus, session, pool)
    handlers = {"router": importlib.import_module("eldric.roles.router.handlers").inference,
                "edge": importlib.import_module("eldric.roles.edge.handlers").proxy,
                "cloud": importlib.import_module("eldric.roles.cloud.handlers").inference}
    for role, handler in handlers.items():
        best, counts = await _measure(handler, _requests(apps[role], role))
        print(f"{role:<7} {best * 1e6:6.2f} µs/request   python calls "
              f"{counts['call'] / 1000:5.1f}   C calls {counts['c_call'] / 1000:5.1f}")
    await session.close()


if __name__ == "__main__":
    asyncio.run(main())
