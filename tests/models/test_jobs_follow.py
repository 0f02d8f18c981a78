"""Following a worker's operation when its stream misbehaves: cut (re-attach), silent
(idle timeout, re-attach), lost at the worker (404 on re-attach), no progress (stall
timeout), the worker gone; and cancelling a job."""

from __future__ import annotations

import aiohttp

from tests.conftest import until, url_of
from tests.fakes import model_worker
from tests.models.fleet import (by_worker, controller, fake_workers, finished, job, post,
                                 register)


async def _pull_on(tmp_path, knobs: model_worker.Knobs, **flags) -> tuple[dict, list[str]]:
    """One worker with these knobs, one pull: the finished job and the worker's requests."""
    async with fake_workers(knobs) as (server,):
        async with controller(tmp_path, **flags) as c, aiohttp.ClientSession() as s:
            base = c["controller"]
            await register(s, base, url_of(server), wid="wrk-f")
            _, accepted = await post(s, base + "/api/v1/models/pull", {"model": "m"})
            j = await finished(s, base, accepted["job_id"])
    return j, knobs.seen


async def test_a_cut_stream_is_reattached_and_the_pull_completes(tmp_path):
    knobs = model_worker.Knobs()
    knobs.cut_after, knobs.steps, knobs.step_s = 2, 4, 0.1
    j, seen = await _pull_on(tmp_path, knobs)
    assert j["state"] == "completed"
    op = knobs.bodies[0]["op_id"]
    assert seen[0] == "POST /api/v1/models/pull"
    assert f"GET /api/v1/models/ops/{op}?follow=true" in seen
    assert seen.count("POST /api/v1/models/pull") == 1  # re-attached, never started again


async def test_a_silent_stream_is_given_up_after_the_idle_timeout_and_reattached(tmp_path):
    knobs = model_worker.Knobs()
    knobs.silent_after, knobs.steps, knobs.step_s = 2, 10, 0.1
    j, seen = await _pull_on(tmp_path, knobs, pull_idle_timeout=300)
    assert j["state"] == "completed"
    op = knobs.bodies[0]["op_id"]
    # Re-attached: the snapshot first, then the stream from there.
    assert seen[1:3] == [f"GET /api/v1/models/ops/{op}",
                         f"GET /api/v1/models/ops/{op}?follow=true"]


async def test_an_operation_the_worker_lost_fails_with_that_reason(tmp_path):
    knobs = model_worker.Knobs()
    knobs.cut_after, knobs.forget_on_cut, knobs.steps, knobs.step_s = 2, True, 5, 0.2
    j, _ = await _pull_on(tmp_path, knobs)
    (t,) = j["targets"]
    assert j["state"] == "failed" and t["state"] == "failed"
    assert t["code"] == "op_not_found" and "no longer knows" in t["error"]


async def test_an_operation_without_progress_fails_after_the_stall_timeout(tmp_path):
    knobs = model_worker.Knobs()
    knobs.hang = True
    j, seen = await _pull_on(tmp_path, knobs, pull_idle_timeout=200, pull_stall_timeout=700)
    (t,) = j["targets"]
    assert t["state"] == "failed" and t["code"] == "stalled"
    assert f"DELETE /api/v1/models/ops/{knobs.bodies[0]['op_id']}" in seen  # stopped there


async def test_a_worker_that_cannot_pull_fails_at_once_with_its_code(tmp_path):
    knobs = model_worker.Knobs()
    knobs.unsupported = True
    j, seen = await _pull_on(tmp_path, knobs)
    (t,) = j["targets"]
    assert t["state"] == "failed" and t["code"] == "pull_unsupported"
    assert seen == ["POST /api/v1/models/pull"]  # a 4xx is the answer: not tried again


async def test_a_worker_that_is_killed_mid_pull_fails_when_it_goes_offline(tmp_path):
    knobs = model_worker.Knobs()
    knobs.steps, knobs.step_s = 50, 0.1
    async with fake_workers(knobs) as (server,), \
            controller(tmp_path, worker_timeout=600) as c, aiohttp.ClientSession() as s:
        base = c["controller"]
        await register(s, base, url_of(server), wid="wrk-dies")
        _, accepted = await post(s, base + "/api/v1/models/pull", {"model": "m"})
        await until(lambda: _pulling(s, base, accepted["job_id"]))
        await model_worker.kill(server)  # gone: no heartbeat either
        j = await finished(s, base, accepted["job_id"])
    (t,) = j["targets"]
    assert j["state"] == "failed" and t["state"] == "failed"
    assert t["code"] == "worker_gone" and "offline" in t["error"]


async def _pulling(s, base, jid):  # type: ignore[no-untyped-def]
    j = await job(s, base, jid)
    return all(t["state"] == "pulling" and t["completed_bytes"] for t in j["targets"])


async def test_cancel_stops_every_worker_still_pulling(tmp_path):
    hung, quick = model_worker.Knobs(), model_worker.Knobs()
    hung.hang = True
    async with fake_workers(hung, quick) as (a, b):
        async with controller(tmp_path) as c, aiohttp.ClientSession() as s:
            base = c["controller"]
            await register(s, base, url_of(a), wid="wrk-hung")
            await register(s, base, url_of(b), wid="wrk-quick")
            _, accepted = await post(s, base + "/api/v1/models/pull", {"model": "m"})
            jid = accepted["job_id"]
            await until(lambda: _states(s, base, jid, {"wrk-quick": "completed",
                                                       "wrk-hung": "pulling"}))
            async with s.delete(f"{base}/api/v1/models/pull-jobs/{jid}") as r:
                assert r.status == 200
                j = await r.json()
            assert j["state"] == "cancelled" and j["finished_at"]
            t = by_worker(j)
            assert t["wrk-hung"]["state"] == "cancelled"
            assert t["wrk-quick"]["state"] == "completed"
            assert f"DELETE /api/v1/models/ops/{hung.bodies[0]['op_id']}" in hung.seen
            # Cancelling again changes nothing; the cancelled target can be retried.
            async with s.delete(f"{base}/api/v1/models/pull-jobs/{jid}") as r:
                assert (await r.json())["state"] == "cancelled"
            hung.hang = False
            status, again = await post(s, f"{base}/api/v1/models/pull-jobs/{jid}/retry", {})
            assert status == 202 and again["retried"] == ["wrk-hung"]
            assert (await finished(s, base, jid))["state"] == "completed"


async def _states(s, base, jid, want):  # type: ignore[no-untyped-def]
    t = by_worker(await job(s, base, jid))
    return all(t[w]["state"] == st for w, st in want.items())


async def test_a_line_that_is_no_progress_fails_the_target(tmp_path):
    knobs = model_worker.Knobs()
    knobs.garbage = True
    j, _ = await _pull_on(tmp_path, knobs)
    (t,) = j["targets"]
    assert t["state"] == "failed" and t["code"] == "backend_error"
    assert "cannot read" in t["error"]


async def test_a_worker_that_never_starts_the_operation_is_given_up(tmp_path, monkeypatch):
    from eldric.roles.controller.jobs import follow

    monkeypatch.setattr(follow, "BACKOFF_S", (0.01,))
    knobs = model_worker.Knobs()
    knobs.start_status = 503
    j, seen = await _pull_on(tmp_path, knobs)
    (t,) = j["targets"]
    assert t["state"] == "failed" and "did not start" in t["error"]
    assert "the backend is busy" in t["error"]
    assert seen.count("POST /api/v1/models/pull") == follow.UNSTARTED_ATTEMPTS


async def test_a_worker_that_cannot_be_followed_is_polled_to_the_end(tmp_path):
    """The stream is cut and following is refused (a 503, as from a proxy): the
    operation's snapshots carry the job on to its end, and count as progress (it takes
    longer than the stall timeout)."""
    knobs = model_worker.Knobs()
    knobs.cut_after, knobs.follow_status, knobs.steps, knobs.step_s = 1, 503, 6, 0.3
    j, seen = await _pull_on(tmp_path, knobs, pull_stall_timeout=900)
    (t,) = j["targets"]
    assert j["state"] == "completed" and t["completed_bytes"] == 1000
    op = knobs.bodies[0]["op_id"]
    assert seen.count(f"GET /api/v1/models/ops/{op}") >= 2  # polled
