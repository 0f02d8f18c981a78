"""Steps the Models-tab browser tests share: the tab opened on a live stream with the
admin key typed in, a pull typed into the text box, and the fleet's healthy workers."""

from __future__ import annotations

import aiohttp

from tests.browser import CDP
from tests.models.fleet import get

LIVE = "document.getElementById('m-stream').dataset.state === 'live'"


async def open_tab(cdp: CDP, base: str, key: str | None = "ak") -> None:
    """base's dashboard at its Models tab, its job stream live; `key` typed in."""
    await cdp.navigate(f"{base}/dashboard#models")
    await cdp.wait_for(LIVE, "the job stream to be live")
    if key is not None:
        await type_into(cdp, "#m-key", key)


async def type_into(cdp: CDP, selector: str, text: str) -> None:
    await cdp.click(selector)
    await cdp.type(text)


async def pull(cdp: CDP, model: str) -> None:
    """The model typed into the (empty) text box, then "Pull to all workers"."""
    await cdp.js("document.getElementById('m-pull-model').value = ''")
    await type_into(cdp, "#m-pull-model", model)
    await cdp.click("#m-pull-btn")


async def healthy(s: aiohttp.ClientSession, base: str, n: int) -> list[dict] | None:
    """The healthy workers once there are n of them (None before, or while the controller
    cannot be reached)."""
    try:
        _, body = await get(s, base + "/api/v1/workers?status=healthy")
    except aiohttp.ClientError:
        return None
    return body["workers"] if len(body["workers"]) == n else None
