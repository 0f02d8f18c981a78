"""What every fake reads first: a request's body, decoded as JSON where it is JSON."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web


async def json_body(request: web.Request) -> Any:
    """The body decoded (None when empty or not JSON: the fake answers as its API would)."""
    raw = await request.read()
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None
