"""Following a controller job (pull, distribute, delete) to its end.

The controller's event stream (GET /api/v1/models/events, server-sent events) starts
every connection with a snapshot of every job, then sends each job that changed, whole:
so a stream that drops is reopened and its first event puts the bars right again. While
the controller cannot be reached it is tried again (0.5 s doubling to 5 s) for up to
GONE_S; the job goes on there either way.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from eldric.client.http import ApiError, call, lines
from eldric.client.ops.progress import Bars

RUNNING = "running"
GONE_S = 30.0  # how long a controller may stay unreachable before the follow gives up


async def follow(s: aiohttp.ClientSession, root: str, job: dict[str, Any],
                 bars: Bars | None) -> dict[str, Any]:
    """The job once it ended (its last state as the controller said it)."""
    if bars:
        bars.show(job)
    backoff, lost_at = 0.5, None
    while job.get("state") == RUNNING:
        try:
            async for event, data in _events(s, f"{root}/api/v1/models/events"):
                lost_at, backoff = None, 0.5
                found = _find(event, data, job["id"])
                if found is None:
                    continue
                job = found
                if bars:
                    bars.show(job)
                if job.get("state") != RUNNING:
                    return job
            # The stream ended without the job's end: ask once, then reopen it.
            job = await call(s, "GET", f"{root}/api/v1/models/pull-jobs/{job['id']}")
        except ApiError as exc:
            if exc.status != 0:
                raise
            lost_at = lost_at or time.monotonic()
            if time.monotonic() - lost_at > GONE_S:
                raise
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)
    if bars:
        bars.show(job)
    return job


def _find(event: str, data: str, job_id: str) -> dict[str, Any] | None:
    try:
        body = json.loads(data)
    except ValueError:
        return None
    if event == "snapshot":
        return next((j for j in body.get("jobs", []) if j.get("id") == job_id), None)
    if event == "job" and body.get("id") == job_id:
        return body
    return None


async def _events(s: aiohttp.ClientSession, url: str) -> AsyncIterator[tuple[str, str]]:
    """(event, data) of each server-sent event; comments (the pings) are skipped."""
    event, data = "message", list[str]()
    async for raw in lines(s, "GET", url, read_timeout_s=60):
        text = raw.decode("utf-8", "replace").rstrip("\r\n")
        if not text:
            if data:
                yield event, "\n".join(data)
            event, data = "message", []
        elif text.startswith(":"):
            continue
        else:
            name, _, value = text.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)


def outcome(job: dict[str, Any]) -> str | None:
    """None when the job completed, else one line saying which targets did not."""
    if job.get("state") == "completed":
        return None
    bad = [f"{t['worker_id']}: {t.get('error') or t.get('state')}"
           + (f" ({t['code']})" if t.get("code") else "")
           for t in job.get("targets", []) if t.get("state") in ("failed", "cancelled")]
    return f"error: job {job.get('id')} {job.get('state')}" + (f": {'; '.join(bad)}" if bad else "")
