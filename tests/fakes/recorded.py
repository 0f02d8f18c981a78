"""What the fakes of native APIs share: each request kept for the test to read (method,
path, headers, body decoded from JSON, None when it is not), and a bearer token checked."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web


async def recorded(request: web.Request, requests: list[dict]) -> Any:
    """The request's body (decoded JSON, None when not JSON), the request kept."""
    raw = await request.read()
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = None
    requests.append({"method": request.method, "path": request.path,
                     "headers": dict(request.headers), "body": body})
    return body


def bearer_ok(request: web.Request, token: str) -> bool:
    return request.headers.get("Authorization") == f"Bearer {token}"
