"""What a native translator builds: the native request (Outbound) and what the
backend's configuration gives each request (Context). Pure data; the contract around
them (Egress, Adapter, Reach) is eldric.backends.egress, which re-exports these."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Framing = Literal["sse", "ndjson", "aws", "json"]


@dataclass
class Outbound:
    """One native request: where below the backend's base URL, and what."""

    path: str  # appended to the backend's URL: "/v1beta/models/gemini-2.0-flash:generateContent"
    body: bytes = b""  # what the API takes (JSON, mostly); empty for a GET
    query: str | None = None  # "alt=sse"
    method: str = "POST"
    headers: dict[str, str] = field(default_factory=dict)  # besides auth: Accept, Content-Type
    framing: Framing = "sse"  # how a streamed reply is cut into frames
    # An absolute URL instead of url + path (Replicate's stream URL, a Vertex region's
    # host): the call still signs it with the backend's auth.
    url: str | None = None
    # `url` was read from the backend's reply (Replicate's urls.stream/get/cancel): the
    # call sends it (with the backend's credentials) only to the backend's own origin or
    # a host its Adapter trusts (Adapter.reply_hosts), never to a host a reply names.
    from_reply: bool = False


@dataclass(frozen=True)
class Context:
    """What the backend's configuration gives each request."""

    model: str  # the model name to send (the backend's own name for it)
    options: Mapping[str, Any] = field(default_factory=dict)  # the backend's adapter options
    include_usage: bool = False  # a streamed chat's client asked for the usage chunk
