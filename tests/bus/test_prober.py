"""The shared prober (eldric.bus.prober): verdicts on the bus, failed and hanging probes,
probing now without probing twice, cancellation. The roles' tests (test_router*.py,
test_edge*.py, test_cloud*.py, test_worker_*.py, test_readiness.py, test_faults.py) run
it against real servers."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
import structlog

from eldric.bus import Bus, UpstreamState
from eldric.bus.prober import HEALTHY, Prober, Verdict, on_bus, probe_timeout
from tests.conftest import until


class Probes:
    """A probe function whose answer per target is set by the test: a Verdict, an
    exception to raise, or an asyncio.Event to hang on."""

    def __init__(self) -> None:
        self.answers: dict[str, object] = {}
        self.calls: list[str] = []
        self.cancelled: list[str] = []

    async def __call__(self, up: UpstreamState) -> Verdict:
        self.calls.append(up.id)
        answer = self.answers.get(up.id, HEALTHY)
        try:
            if isinstance(answer, asyncio.Event):
                await answer.wait()
                return HEALTHY
        except asyncio.CancelledError:
            self.cancelled.append(up.id)
            raise
        if isinstance(answer, BaseException):
            raise answer
        return answer  # type: ignore[return-value]


def _prober(bus: Bus, ups: list[UpstreamState], probes: Probes, **kw) -> Prober[UpstreamState]:  # type: ignore[no-untyped-def]
    kw.setdefault("interval", 60.0)
    return Prober("test-probe", probes, targets=lambda: ups, mark=on_bus(bus),
                  says="health check: ", **kw)


@pytest.fixture
def bus() -> Bus:
    return Bus()


def _ups(bus: Bus, *names: str) -> list[UpstreamState]:
    return [bus.upstream(n, f"http://{n}", role="test", healthy=False) for n in names]


def test_the_deadline_is_the_period_at_most_five_seconds():
    assert probe_timeout(1.0) == 1.0 and probe_timeout(30.0) == 5.0
    assert Prober("p", Probes(), targets=list, interval=0.2, mark=print).timeout == 0.2


async def test_a_round_marks_each_verdict(bus):
    a, b = _ups(bus, "a", "b")
    probes = Probes()
    probes.answers["b"] = Verdict(False, "/health answered HTTP 503")
    await _prober(bus, [a, b], probes).round()
    assert a.healthy and a.last_check is not None
    assert not b.healthy and b.last_error == "/health answered HTTP 503"


async def test_a_probe_that_raises_is_a_failed_probe(bus):
    a, b = _ups(bus, "a", "b")
    probes = Probes()
    probes.answers["a"] = aiohttp.ClientConnectionError("refused")
    probes.answers["b"] = ValueError("/health says offline")
    await _prober(bus, [a, b], probes).round()
    assert a.last_error == "health check: ClientConnectionError: refused"
    assert b.last_error == "health check: ValueError: /health says offline"


async def test_a_probe_that_hangs_past_its_timeout(bus):
    (a,) = _ups(bus, "a")
    bus.mark(a, True)
    probes = Probes()
    probes.answers["a"] = asyncio.Event()  # never set
    loop = asyncio.get_running_loop()
    started = loop.time()
    await _prober(bus, [a], probes, timeout=0.1).round()
    assert 0.1 <= loop.time() - started < 1.0
    assert not a.healthy and a.last_error == "health check: TimeoutError"
    assert probes.cancelled == ["a"]  # given up: the probe's request is cancelled


async def test_a_crashing_probe_blames_nobody_and_the_loop_goes_on(bus):
    (a,) = _ups(bus, "a")
    bus.mark(a, True)
    probes = Probes()
    probes.answers["a"] = KeyError("a bug in eldric")
    prober = _prober(bus, [a], probes, interval=0.02)
    with structlog.testing.capture_logs() as logs:
        prober.start(at_once=True)
        await until(lambda: len(probes.calls) >= 3)  # the loop survives each crash
        await prober.stop()
    assert a.healthy  # eldric's bug says nothing about the target
    assert any(e["event"] == "probe_crashed" and e["prober"] == "test-probe" for e in logs)


async def test_the_loop_probes_every_interval_and_stop_ends_it(bus):
    ups = _ups(bus, "a")
    probes = Probes()
    prober = _prober(bus, ups, probes, interval=0.3)
    loop = asyncio.get_running_loop()
    started = loop.time()
    prober.start()  # not at once: the role has just probed
    await until(lambda: probes.calls)
    assert loop.time() - started >= 0.3
    ups.append(bus.upstream("b", "http://b", role="test"))  # targets are asked each round
    await until(lambda: "b" in probes.calls)
    assert probes.calls == ["a", "a", "b"]
    assert loop.time() - started >= 0.6
    await prober.stop()
    await asyncio.sleep(0.4)
    assert probes.calls == ["a", "a", "b"]  # no round after stop()
    assert not prober.poke(ups[0])  # nor a poke


async def test_stop_cancels_a_running_probe(bus):
    (a,) = _ups(bus, "a")
    probes = Probes()
    probes.answers["a"] = asyncio.Event()
    prober = _prober(bus, [a], probes, interval=0.01, timeout=10.0)
    prober.start(at_once=True)
    await asyncio.sleep(0.03)
    assert prober.busy(a) and probes.calls == ["a"]  # the next round waits for this one
    await prober.stop()
    assert probes.cancelled == ["a"] and not prober.busy(a)
    assert a.last_check is None  # a cancelled probe is no verdict


async def test_poke_while_a_probe_runs_is_that_probe(bus):
    (a,) = _ups(bus, "a")
    probes = Probes()
    hold = probes.answers["a"] = asyncio.Event()
    prober = _prober(bus, [a], probes)
    assert prober.poke(a)
    await asyncio.sleep(0)
    assert not prober.poke(a) and not prober.poke(a)  # absorbed by the running one
    round_ = asyncio.create_task(prober.round())  # a round joins it too
    await asyncio.sleep(0.01)
    hold.set()
    await round_
    assert probes.calls == ["a"] and a.healthy
    assert not prober.busy(a) and prober.poke(a)  # done: the next poke probes again
    await asyncio.sleep(0.01)
    assert probes.calls == ["a", "a"]


async def test_poke_with_another_probe(bus):
    """The router's confirming check: the same target, another probe function."""
    (a,) = _ups(bus, "a")
    probes, confirming = Probes(), Probes()
    confirming.answers["a"] = Verdict(False, "still failing")
    prober = _prober(bus, [a], probes)
    assert prober.poke(a, confirming)
    await asyncio.sleep(0.01)
    assert probes.calls == [] and confirming.calls == ["a"]
    assert a.last_error == "still failing"


async def test_now_answers_and_a_caller_leaving_cancels_nothing(bus):
    (a,) = _ups(bus, "a")
    probes = Probes()
    hold = probes.answers["a"] = asyncio.Event()
    prober = _prober(bus, [a], probes)
    impatient = asyncio.create_task(prober.now(a))
    patient = asyncio.create_task(prober.now(a))
    await asyncio.sleep(0.01)
    impatient.cancel()  # e.g. the readiness check's own deadline
    with pytest.raises(asyncio.CancelledError):
        await impatient
    hold.set()
    assert (await patient) == HEALTHY and probes.calls == ["a"] and probes.cancelled == []


async def test_a_round_caller_leaving_cancels_nothing(bus):
    (a,) = _ups(bus, "a")
    probes = Probes()
    hold = probes.answers["a"] = asyncio.Event()
    prober = _prober(bus, [a], probes)
    caller = asyncio.create_task(prober.round())
    await asyncio.sleep(0.01)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert prober.busy(a)
    hold.set()
    await asyncio.sleep(0.01)
    assert a.healthy and probes.cancelled == []


async def test_a_mark_of_its_own(bus):
    """The farm's store: no bus upstream, its own way of saying down and back."""
    seen: list[tuple[str, Verdict]] = []

    async def ping(store: str) -> Verdict:
        raise OSError("connection refused")

    prober = Prober("store", ping, targets=lambda: ["redis"], interval=1.0,
                    mark=lambda t, v: seen.append((t, v)))
    await prober.round()
    assert seen == [("redis", Verdict(False, "OSError: connection refused"))]
