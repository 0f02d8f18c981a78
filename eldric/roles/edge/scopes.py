"""What a key may do beyond inference (issue 18): the scope check of the edge's cluster
endpoints (the relay to the controller, the tunnel)."""

from __future__ import annotations

from eldric.errors import EldricError, Unauthorized
from eldric.exchange import LaneRequest
from eldric.roles.edge.clients import Client
from eldric.roles.edge.handlers import admit, authenticate
from eldric.roles.edge.state import EdgeState


def require_scope(client: Client | None, scope: str) -> Client:
    """The client, if its key carries `scope`. A scoped endpoint needs a key even on an
    edge that lets inference through without one: registering a worker or taking a
    tunnel's requests is never anonymous."""
    if client is None:
        raise Unauthorized(f"this endpoint needs an API key with the {scope!r} scope: send "
                           "'Authorization: Bearer KEY'")
    if not client.may(scope):
        raise EldricError(f"the API key of client {client.name!r} lacks the {scope!r} scope "
                          "(give the client that scope: \"scopes\" when it is created, or "
                          "auth.clients.NAME.scopes for a key from the configuration)", status=403,
                          code="scope_required", param=scope)
    return client


async def scoped(request: LaneRequest, es: EdgeState, scope: str) -> Client:
    """Key and scope, no rate limit: the tunnel's own traffic (polls, uploads, a router's
    forwards) carries requests the edge has already admitted once; its bound is the
    tunnel's queue (--tunnel-max-queued)."""
    return require_scope(await authenticate(request, es), scope)


async def admitted(request: LaneRequest, es: EdgeState,
                   scope: str) -> tuple[Client, dict[str, str]]:
    """Key, scope and the rate limits (admit): the rate-limit headers every reply carries."""
    client, headers = await admit(request, es)
    try:
        return require_scope(client, scope), headers
    except EldricError as exc:
        exc.headers = {**headers, **exc.headers}
        raise
