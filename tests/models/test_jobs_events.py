"""GET /api/v1/models/events: a snapshot first (so again after every reconnect), then
every job change."""

from __future__ import annotations

import asyncio
import json

import aiohttp

from tests.conftest import url_of
from tests.fakes import model_worker
from tests.models.fleet import controller, fake_workers, post, register


async def _events(resp: aiohttp.ClientResponse):  # type: ignore[no-untyped-def]
    """(event, data) as they arrive."""
    event, data = None, []
    async for raw in resp.content:
        line = raw.decode().rstrip("\r\n")
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
        elif not line and data:
            yield event, json.loads("\n".join(data))
            event, data = None, []


async def test_events_stream_job_changes_after_a_snapshot(tmp_path):
    knobs = model_worker.Knobs()
    knobs.steps, knobs.step_s = 5, 0.1
    async with fake_workers(knobs) as (srv,):
        async with controller(tmp_path) as c, aiohttp.ClientSession() as s:
            base = c["controller"]
            await register(s, base, url_of(srv), wid="wrk-1")
            seen: list[tuple[str, dict]] = []
            async with s.get(base + "/api/v1/models/events") as r:
                assert r.status == 200
                assert r.headers["Content-Type"].startswith("text/event-stream")
                stream = _events(r)
                seen.append(await asyncio.wait_for(anext(stream), 5))
                _, accepted = await post(s, base + "/api/v1/models/pull", {"model": "m"})
                async for event, data in stream:
                    seen.append((event, data))
                    if data.get("state") == "completed":
                        break
            # A reconnecting dashboard is whole at once: the snapshot has the job as it is.
            async with s.get(base + "/api/v1/models/events") as r:
                event, again = await asyncio.wait_for(anext(_events(r)), 5)
    assert seen[0] == ("snapshot", {"jobs": []})
    jobs = [d for e, d in seen[1:] if e == "job"]
    assert jobs and all(d["id"] == accepted["job_id"] for d in jobs)
    states = [d["targets"][0]["state"] for d in jobs]
    assert "pulling" in states and states[-1] == "completed"
    percents = [d["targets"][0]["percent"] for d in jobs if d["targets"][0]["percent"]]
    assert percents == sorted(percents) and percents[-1] == 100.0
    assert max(percents[:-1], default=0) < 100
    assert event == "snapshot" and again["jobs"][0]["state"] == "completed"


def test_a_subscriber_too_slow_to_keep_up_is_ended_to_reconnect():
    from eldric.roles.controller.jobs.events import Subscriber

    sub = Subscriber()
    for i in range(sub.queue.maxsize):
        sub.put("job", b"%d" % i)
    assert not sub.ended
    sub.put("job", b"one too many")
    assert sub.ended and sub.queue.qsize() == 1 and sub.queue.get_nowait() is None
    sub.put("job", b"later")  # nothing more for an ended stream
    assert sub.queue.empty()


async def test_a_client_leaving_the_stream_costs_the_controller_nothing(tmp_path, capsys):
    knobs = model_worker.Knobs()
    async with fake_workers(knobs) as (srv,):
        async with controller(tmp_path) as c, aiohttp.ClientSession() as s:
            base = c["controller"]
            await register(s, base, url_of(srv), wid="wrk-1")
            r = await s.get(base + "/api/v1/models/events")
            await anext(_events(r))
            r.close()  # gone, between two events
            for _ in range(2):  # changes to send to nobody
                _, accepted = await post(s, base + "/api/v1/models/pull", {"model": "m"})
                await asyncio.sleep(0.5)
            async with s.get(base + "/api/v1/models/events") as r:  # others are served
                event, snap = await asyncio.wait_for(anext(_events(r)), 5)
    assert event == "snapshot" and len(snap["jobs"]) == 2
    assert "unhandled_error" not in capsys.readouterr().out
