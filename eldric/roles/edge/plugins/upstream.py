"""The edge asking the cluster itself, to read the reply (a tool round, the models list):
the routers in turn, as a client's request goes (ToRouters' order, failover and
health), but the reply is fetched for the edge to read (eldric.stream.fetch), not
relayed to the client."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import msgspec

from eldric import keys
from eldric.bus import UpstreamState
from eldric.errors import UpstreamFailure
from eldric.exchange import LaneRequest
from eldric.roles.edge.routers import ToRouters
from eldric.roles.edge.state import EdgeState
from eldric.stream import Target
from eldric.stream.fetch import Fetched, fetch

CHAT = "/v1/chat/completions"


class Asking(ToRouters):
    """A ToRouters whose attempts fetch; a failure that is the answer is raised (the
    caller relays it while nothing went to the client, or ends its stream with it)."""

    __slots__ = ()

    def call(self, state: UpstreamState) -> Awaitable[Fetched]:  # type: ignore[override]
        return fetch(self.request, Target(state, state.url), CHAT, self.body,
                     timeouts=self.timeouts)

    def relay(self, exc: UpstreamFailure) -> Any:
        raise exc


async def ask(request: LaneRequest, es: EdgeState, body: dict[str, Any]) -> Fetched:
    """POST `body` to the routers' /v1/chat/completions: the 2xx reply to read, or raises
    (UpstreamFailure for a refusal, UpstreamUnavailable when every router failed)."""
    asking = Asking(request, es.routers, es.timeouts, msgspec.json.encode(body), {})
    fetched = await asking.run()
    if fetched is None:
        asking.come_back()  # raises the "come back later" as it was sent
        asking.exhausted("every router failed", none="no router is configured (--routers)")
    return fetched  # type: ignore[return-value]


async def cluster_models(request: LaneRequest, es: EdgeState) -> tuple[int, dict[str, Any]]:
    """GET the routers' /v1/models (the first that answers): its status and body."""
    session = request.app[keys.SESSION]
    last: tuple[int, dict[str, Any]] = (503, {"error": {
        "message": "no router is configured (--routers)", "type": "server_error",
        "param": None, "code": "upstream_unavailable"}})
    for state in es.routers.order():
        try:
            async with session.get(state.url + "/v1/models",
                                   timeout=_timeout(es)) as r:
                data = await r.read()
            body = msgspec.json.decode(data)
        except (OSError, TimeoutError, msgspec.DecodeError) as exc:
            last = (503, {"error": {"message": f"router {state.url}: {exc}",
                                    "type": "server_error", "param": None,
                                    "code": "upstream_unavailable"}})
            continue
        if r.status < 500 and isinstance(body, dict):
            return r.status, body
        last = (r.status, body if isinstance(body, dict) else last[1])
    return last


def _timeout(es: EdgeState) -> Any:
    import aiohttp

    return aiohttp.ClientTimeout(total=es.timeouts.connect + es.timeouts.first_byte)
