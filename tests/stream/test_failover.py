"""The shared failover (eldric.stream.failover): every branch of what a failed attempt
means, with the core's own UpstreamFailure and a real bus. The roles' tests
(tests/roles/test_router.py, test_edge.py, test_cloud*.py) drive it over HTTP."""

from __future__ import annotations

import asyncio
import json

import pytest

from eldric.bus import Bus, UpstreamState
from eldric.errors import UpstreamUnavailable, error_json
from eldric.stream import UpstreamFailure
from eldric.stream.failover import WAIT, Failover


def _status(up: UpstreamState, status: int, message: str = "boom") -> UpstreamFailure:
    return UpstreamFailure(up.id, "status", status, error_json(status, message))


class Calls(Failover[UpstreamState, str]):
    """Candidates given in order; each answers as `plan` says: a reply (str), an
    UpstreamFailure, or an asyncio.Event to hang on."""

    __slots__ = ("plan", "called", "judged")

    def __init__(self, bus: Bus, ups: list[UpstreamState], plan: dict[str, object],
                 room=None) -> None:  # type: ignore[no-untyped-def]
        Failover.__init__(self, bus, "test", ups, room=room)
        self.plan = plan
        self.called: list[str] = []
        self.judged: list[tuple[str, str]] = []

    def state(self, c: UpstreamState) -> UpstreamState:
        return c

    async def _answer(self, c: UpstreamState) -> str:
        outcome = self.plan[c.id]
        if isinstance(outcome, UpstreamFailure):
            raise outcome
        if isinstance(outcome, asyncio.Event):
            await outcome.wait()
        return str(outcome)

    def call(self, c: UpstreamState):  # type: ignore[no-untyped-def]
        self.called.append(c.id)
        return self._answer(c)

    def judge(self, c: UpstreamState, exc: UpstreamFailure) -> None:
        self.judged.append((c.id, exc.kind))


@pytest.fixture
def bus() -> Bus:
    return Bus()


def _ups(bus: Bus, *names: str) -> list[UpstreamState]:
    return [bus.upstream(n, f"http://{n}", role="test") for n in names]


def _retries(bus: Bus, who: str) -> float:
    return bus.metrics.registry.get_sample_value(
        "eldric_upstream_retries_total", {"role": "test", "upstream": who}) or 0.0


async def test_the_first_that_answers_is_the_answer(bus):
    a, b = _ups(bus, "a", "b")
    fo = Calls(bus, [a, b], {"a": "from a", "b": "from b"})
    assert await fo.run() == "from a"
    assert fo.called == ["a"] and fo.attempts == 1 and fo.last is a
    assert fo.failures is None and _retries(bus, "a") == 0  # nothing made, nothing counted


async def test_a_retryable_failure_goes_on_to_the_next(bus):
    a, b = _ups(bus, "a", "b")
    fo = Calls(bus, [a, b], {"a": _status(a, 503, "engine dead"), "b": "from b"})
    assert await fo.run() == "from b"
    assert fo.called == ["a", "b"] and fo.judged == [("a", "status")]
    assert fo.failures == ["a: engine dead"] and _retries(bus, "a") == 1
    assert a.healthy  # a 5xx may be the request's doing: not marked down here


async def test_an_unreachable_upstream_is_marked_down_and_a_slow_one_is_not(bus):
    a, b, c = _ups(bus, "a", "b", "c")
    fo = Calls(bus, [a, b, c], {"a": UpstreamFailure.of("a", "connect", 503, "refused"),
                                "b": UpstreamFailure.of("b", "timeout", 504, "no reply"),
                                "c": "ok"})
    assert await fo.run() == "ok"
    assert not a.healthy and a.last_error == "refused"
    assert b.healthy and fo.judged == [("a", "connect"), ("b", "timeout")]


async def test_a_failure_that_is_no_upstream_fault_is_relayed_at_once(bus):
    a, b = _ups(bus, "a", "b")
    fo = Calls(bus, [a, b], {"a": _status(a, 400, "bad prompt"), "b": "from b"})
    resp = await fo.run()
    assert resp.status == 400 and json.loads(resp.body)["error"]["message"] == "bad prompt"
    assert fo.called == ["a"] and _retries(bus, "a") == 0  # answered, not retried


async def test_not_here_everywhere_is_relayed_as_sent(bus):
    a, b = _ups(bus, "a", "b")
    fo = Calls(bus, [a, b], {"a": _status(a, 501, "no embeddings"),
                             "b": _status(b, 405, "no such method")})
    assert await fo.run() is None
    assert fo.broken == 0
    resp = fo.not_here()
    assert resp.status == 405 and resp.headers["X-Should-Retry"] == "false"
    assert json.loads(resp.body)["error"]["message"] == "no such method"  # the last one


async def test_not_here_then_an_answer(bus):
    a, b = _ups(bus, "a", "b")
    fo = Calls(bus, [a, b], {"a": _status(a, 501), "b": "from b"})
    assert await fo.run() == "from b"
    assert a.healthy and a.consecutive_failures == 0  # counted against nobody


async def test_mixed_failures_are_a_503_naming_every_attempt(bus):
    a, b = _ups(bus, "a", "b")
    fo = Calls(bus, [a, b], {"a": _status(a, 501, "not here"), "b": _status(b, 502, "broke")})
    assert await fo.run() is None
    assert fo.not_here() is None  # one upstream broke: not everyone said "not here"
    with pytest.raises(UpstreamUnavailable) as info:
        fo.exhausted("every one failed", none="none at all", headers={"X-Why": "all"})
    assert info.value.message == "every one failed: a: not here; b: broke"
    assert info.value.status == 503 and info.value.headers == {"X-Why": "all"}


async def test_no_candidate_is_the_none_text(bus):
    fo = Calls(bus, [], {})
    assert await fo.run() is None and fo.attempts == 0 and fo.not_here() is None
    with pytest.raises(UpstreamUnavailable) as info:
        fo.exhausted("every one failed", none="no upstream is configured")
    assert info.value.message == "no upstream is configured"


async def test_notes_are_named_but_do_not_stop_a_not_here_relay(bus):
    (a,) = _ups(bus, "a")
    fo = Calls(bus, [a], {"a": _status(a, 501, "not here")})
    fo.note("big: no healthy worker serves it")
    assert await fo.run() is None
    assert fo.not_here().status == 501
    with pytest.raises(UpstreamUnavailable) as info:
        fo.exhausted("could not serve", none="-")
    assert info.value.message == "could not serve: big: no healthy worker serves it; a: not here"


async def test_limit_caps_the_attempts_of_one_run(bus):
    ups = _ups(bus, "a", "b", "c")
    fo = Calls(bus, ups, {u.id: _status(u, 500) for u in ups})
    assert await fo.run(limit=2) is None
    assert fo.called == ["a", "b"] and fo.attempt == 2


class AtOnce(Calls):
    __slots__ = ()
    not_here_at_once = True


async def test_not_here_at_once(bus):
    a, b = _ups(bus, "a", "b")
    fo = AtOnce(bus, [a, b], {"a": _status(a, 501), "b": "from b"})
    assert (await fo.run()).status == 501 and fo.called == ["a"]


class Room:
    def __init__(self) -> None:
        self.waiting = 0
        self.notified = 0

    async def notify(self) -> None:
        self.notified += 1


class Ranked(Failover[UpstreamState, str]):
    """pick() ranks before every attempt and says WAIT while every candidate is full."""

    __slots__ = ("ups", "full", "log")

    def __init__(self, bus: Bus, ups: list[UpstreamState], room: Room) -> None:
        Failover.__init__(self, bus, "test", room=room)
        self.ups = ups
        self.full = True
        self.log: list[str] = []

    def pick(self) -> UpstreamState | None:
        left = [u for u in self.ups if u is not self.last]
        if not left:
            return None
        self.log.append(f"pick {self.attempt + 1}")
        return WAIT if self.full else left[0]

    async def wait(self) -> UpstreamState:
        self.log.append("wait")
        await asyncio.sleep(0)
        self.full = False
        return self.ups[0]

    def state(self, c: UpstreamState) -> UpstreamState:
        return c

    async def _go(self, c: UpstreamState) -> str:
        if c.id == "a":
            raise _status(c, 503)
        return c.id

    def call(self, c: UpstreamState):  # type: ignore[no-untyped-def]
        self.log.append(f"call {c.id}")
        return self._go(c)


async def test_waiting_for_room_and_ranking_before_each_attempt(bus):
    room = Room()
    room.waiting = 1  # someone waits: every attempt's end wakes them
    fo = Ranked(bus, _ups(bus, "a", "b"), room)
    assert await fo.run() == "b"
    assert fo.log == ["pick 1", "wait", "call a", "pick 2", "call b"]
    assert room.notified == 2


async def test_cancelled_mid_attempt_counts_nothing(bus):
    a, b = _ups(bus, "a", "b")
    room = Room()
    fo = Calls(bus, [a, b], {"a": asyncio.Event(), "b": "from b"}, room=room)
    task = asyncio.create_task(fo.run())
    await asyncio.sleep(0.01)
    room.waiting = 1
    task.cancel()  # the client left while a had not answered
    with pytest.raises(asyncio.CancelledError):
        await task
    assert fo.called == ["a"] and fo.failures is None and _retries(bus, "a") == 0
    assert a.healthy and room.notified == 1  # the slot it held is free again


async def test_fan_out_each_member_with_its_own_failover(bus):
    """The swarm's shape: several Failovers side by side over shared upstreams."""
    a, b, c = _ups(bus, "a", "b", "c")
    plan = {"a": _status(a, 503, "down"), "b": "from b", "c": "from c"}
    members = [Calls(bus, [a, b], plan), Calls(bus, [c], plan), Calls(bus, [a], plan)]
    results = await asyncio.gather(*(m.run() for m in members))
    assert results == ["from b", "from c", None]
    assert [m.failures for m in members] == [["a: down"], None, ["a: down"]]
    assert _retries(bus, "a") == 2


class Job(Calls):
    """The controller's jobs: one target each, results that are no HTTP reply, and a
    failure that is the answer raised, not relayed."""

    __slots__ = ()

    def relay(self, exc: UpstreamFailure) -> str:
        raise exc


async def test_a_job_gets_its_own_result_and_its_failure(bus):
    (w,) = _ups(bus, "w")
    assert await Job(bus, [w], {"w": "pulled 3 GB"}).run() == "pulled 3 GB"
    with pytest.raises(UpstreamFailure) as info:
        await Job(bus, [w], {"w": _status(w, 404, "no such model")}).run()
    assert info.value.status == 404
