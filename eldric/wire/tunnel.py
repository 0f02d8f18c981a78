"""The NAT tunnel's wire (issue 18): what a worker behind NAT, the edge and the router
say to each other. docs/tunnel.md is the prose; this is the one definition every side
decodes and encodes.

The worker only ever connects out, to the edge:
- ``POST /api/v1/tunnel/connect`` (its edge key, scope "register") with ``Connect`` →
  ``Connected``. Coming back after a drop or an edge restart it sends its old
  ``tunnel_id`` and gets the same one back.
- ``GET /api/v1/tunnel/{id}/poll`` long-polls up to ``Connected.long_poll_ms``: 200 with
  ``Poll`` (one request; the worker keeps K polls outstanding, one per free slot), 204
  when nothing came, 404 ``tunnel_not_found`` when the edge does not know the tunnel
  (it restarted, or dropped the tunnel for silence): connect again with the same id.
- ``POST /api/v1/tunnel/{id}/response/{req_id}``: the reply, streamed as a chunked
  upload. Its head (status, headers) travels in the upload's own request headers
  (``STATUS_HEADER``, ``HEADERS_HEADER``), its body is the upload's body, relayed chunk
  by chunk to the waiting caller. The edge answers the upload 200 when it relayed
  everything, 409 ``tunnel_request_gone`` when the caller left (the worker then stops
  the local request: a GPU stops working for nobody).
- ``POST /api/v1/tunnel/{id}/disconnect``.

The router (or anything with an edge key of scope "cluster") calls a tunnelled worker as
if it were at ``forward_base(url)``: ``{edge}/api/v1/tunnel/{id}/forward`` + the path it
would call on the worker (``/v1/chat/completions``, ``/health``, ``/v1/models``), with its
method, headers and body as they are. The edge queues it for the worker and relays the
reply. ``POST /api/v1/tunnel/{id}/forward`` with a ``TunnelRequest``-shaped JSON body
(method, path, headers, body) is the same call for a caller that wants an envelope.

As the edge (h/tunnel-edge) answers, for the worker's side:
- a configured key's scopes are ``auth.clients: {NAME: {"scopes": [...]}}`` (env
  ELDRIC_EDGE_AUTH_CLIENTS), the shape h/budgets gave static clients' settings; the
  earlier ``auth.scopes`` (ELDRIC_EDGE_AUTH_SCOPES) is gone;
- every tunnel endpoint but forward needs an edge key with scope "register" (403
  ``scope_required``, ``param`` "register"); a tunnel another client holds: connect
  409 ``tunnel_id_taken``, poll/response/disconnect 403 ``tunnel_forbidden``;
- poll: 503 ``edge_stopping`` (with Retry-After) while the edge shuts down: poll again
  later, the tunnel is still known until the edge is gone (then 404);
- a ``TunnelRequest``'s headers are the caller's as they cross any hop: no
  Authorization/X-API-Key, Host, Content-Length or hop-by-hop headers; the edge's
  X-Request-ID is in them. Its path carries the query string;
- the upload: ``STATUS_HEADER`` 200-599 and ``HEADERS_HEADER`` (JSON, latin-1 text)
  else 400; a Content-Length among the headers lets a small reply go out whole;
  Transfer-Encoding/Connection in them are dropped. 409 ``tunnel_request_gone`` also for
  a request the edge does not wait for (unknown, answered already, or failed over after
  the tunnel was dropped). An upload silent for the edge's idle timeout is cut (408).
- for the router: forward to a tunnel the edge does not know (yet) → 503
  ``tunnel_unavailable``, a full queue → 503 ``tunnel_busy`` + Retry-After: fail over;
- the edge drops a tunnel with no poll for 2 x long_poll_ms; its queued requests and
  those taken but not yet answered get 503 at the caller (the router fails them over).
"""

from __future__ import annotations

from urllib.parse import urlsplit

import msgspec

SCHEME = "tunnel"  # tunnel://edge.example.com/<id>: the edge over HTTPS
PLAIN_SCHEME = "tunnel+http"  # tunnel+http://127.0.0.1:8080/<id>: over plain HTTP
STATUS_HEADER = "X-Eldric-Tunnel-Status"  # on the response upload: the reply's status
HEADERS_HEADER = "X-Eldric-Tunnel-Headers"  # on the response upload: JSON [[name, value]]
FORWARD = "/api/v1/tunnel/{id}/forward"


class Connect(msgspec.Struct, omit_defaults=True):
    """POST /api/v1/tunnel/connect body."""

    tunnel_id: str | None = None  # coming back: the id it had
    worker_id: str | None = None  # the controller's id for this worker, once it has one
    concurrency: int = 1  # polls it keeps outstanding (its free slots)


class Connected(msgspec.Struct):
    tunnel_id: str
    poll_url: str  # path on the edge: /api/v1/tunnel/{id}/poll
    url: str  # what the worker advertises: tunnel://<edge>/<id>
    long_poll_ms: int = 30_000


class TunnelRequest(msgspec.Struct):
    """One request for the worker: what the caller sent to .../forward{path}."""

    id: str
    method: str
    path: str  # with the query string, e.g. /v1/chat/completions
    headers: list[tuple[str, str]] = []
    body: str = ""  # base64 of the request body (bytes are bytes: no re-encoding)


class Poll(msgspec.Struct):
    requests: list[TunnelRequest]


def tunnel_url(edge_url: str, tunnel_id: str) -> str:
    """The URL a tunnelled worker advertises: tunnel://host[:port]/<id> for an HTTPS
    edge, tunnel+http://… for a plain one (tests, a loopback edge)."""
    parts = urlsplit(edge_url)
    scheme = SCHEME if parts.scheme == "https" else PLAIN_SCHEME
    return f"{scheme}://{parts.netloc}/{tunnel_id}"


def is_tunnel(url: str) -> bool:
    return url.startswith((SCHEME + "://", PLAIN_SCHEME + "://"))


def forward_base(url: str) -> str:
    """Where the router sends what it would send to a tunnel:// worker: the edge's
    forward endpoint, to which the worker path is appended (no trailing slash)."""
    parts = urlsplit(url)
    scheme = "https" if parts.scheme == SCHEME else "http"
    tunnel_id = parts.path.strip("/")
    if parts.scheme not in (SCHEME, PLAIN_SCHEME) or not tunnel_id or "/" in tunnel_id:
        raise ValueError(f"not a tunnel URL: {url!r} (tunnel://EDGE/ID)")
    return f"{scheme}://{parts.netloc}" + FORWARD.format(id=tunnel_id)
