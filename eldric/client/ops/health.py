"""`eldric health URL…`: every role's /api/v1/health side by side.

Not through http.call(): an unhealthy role answers 503 with the same body, and that body
is what the row shows. Exit 1 when any role is unhealthy or cannot be reached.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import aiohttp
import click

from eldric.client.ops.common import config, emit, json_option, run, table

TIMEOUT = aiohttp.ClientTimeout(total=5)


async def _one(s: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    try:
        async with s.get(f"{url}/api/v1/health", timeout=TIMEOUT) as resp:
            try:
                body = await resp.json(content_type=None)
            except ValueError:
                body = None
            if not isinstance(body, dict) or "status" not in body:
                return {"url": url, "status": "error", "error": f"HTTP {resp.status}: "
                        "not an eldric /api/v1/health"}
            return {"url": url, **body}
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        return {"url": url, "status": "unreachable", "error": str(exc) or type(exc).__name__}


def _row(h: dict[str, Any]) -> list[Any]:
    counts = h.get("upstream_counts") or {}
    ups = (f"{counts.get('healthy', 0)}/{counts.get('healthy', 0) + counts.get('unhealthy', 0)}"
           if counts else "-")
    up_s = h.get("uptime_seconds")
    return [h["url"], h.get("role"), h["status"], h.get("version"), ups,
            f"{up_s:.0f}s" if isinstance(up_s, (int, float)) else None, h.get("error") or ""]


@click.command()
@click.argument("urls", nargs=-1, metavar="[URL]...")
@json_option
def health(urls: tuple[str, ...], as_json: bool) -> None:
    """Every role's health side by side [default: the edge, controller and router the
    settings name]."""
    if not urls:
        cfg = config()
        urls = (cfg.url, cfg.controller_url, cfg.router_url)
    wanted = [u.rstrip("/") for u in urls]

    async def every(s: aiohttp.ClientSession) -> list[dict[str, Any]]:
        return list(await asyncio.gather(*(_one(s, u) for u in wanted)))
    found = run(every)
    emit(found, as_json, lambda: table(
        ("URL", "ROLE", "STATUS", "VERSION", "UPSTREAMS", "UPTIME", "ERROR"), map(_row, found)))
    if any(h["status"] in ("unhealthy", "unreachable", "error") for h in found):
        sys.exit(1)
