"""The bus: health transitions, events (failing subscribers isolated), status summary."""

from __future__ import annotations

import asyncio

from eldric.bus import Bus


def test_health_transitions_emit_events_once():
    bus = Bus()
    seen = []
    bus.events.subscribe("*", lambda name, f: seen.append((name, f["upstream"])))
    up = bus.upstream("w1", "http://w1", role="router")
    bus.mark(up, True)  # already healthy: no event
    bus.mark(up, False, "refused")
    bus.mark(up, False, "refused")
    bus.mark(up, True)
    assert seen == [("upstream_added", "w1"), ("upstream_unhealthy", "w1"),
                    ("upstream_healthy", "w1")]


def test_failing_subscriber_does_not_break_publishing():
    bus = Bus()
    got = []

    def bad(name, fields):
        raise RuntimeError("subscriber bug")

    bus.events.subscribe("upstream_unhealthy", bad)
    bus.events.subscribe("upstream_unhealthy", lambda n, f: got.append(f["reason"]))
    up = bus.upstream("w1", "http://w1", role="router")
    bus.mark(up, False, "timeout")  # must not raise
    assert got == ["timeout"] and up.healthy is False


async def test_failing_async_subscriber_is_isolated():
    bus = Bus()
    got = []

    async def bad(name, fields):
        raise RuntimeError("async subscriber bug")

    async def good(name, fields):
        got.append(name)

    bus.events.subscribe("x", bad)
    bus.events.subscribe("x", good)
    bus.events.emit("x")
    await asyncio.sleep(0.01)
    assert got == ["x"]


def test_status_summary_and_accounting():
    bus = Bus()
    assert bus.status("router") == "healthy"  # nothing to depend on
    a = bus.upstream("a", "http://a", role="router")
    b = bus.upstream("b", "http://b", role="router")
    bus.upstream("c", "http://c", role="edge")
    bus.mark(a, False)
    assert bus.status("router") == "degraded"
    bus.mark(b, False)
    assert bus.status("router") == "unhealthy"
    assert bus.status("edge") == "healthy"
    bus.request_started(b)
    bus.request_finished(b, "ok", ttfb=0.010, latency=0.020)
    bus.request_started(b)
    bus.request_finished(b, "error")
    assert b.active == 0 and b.requests == 2 and b.failures == 1
    assert b.consecutive_failures == 1 and b.ttfb_ms == 10.0
    text = bus.metrics.render().decode()
    assert 'eldric_upstream_requests_total{outcome="ok",role="router",upstream="b"} 1.0' in text
    assert 'eldric_upstream_healthy{role="router",upstream="a"} 0.0' in text
    bus.remove_upstream("a")
    assert 'upstream="a"' not in bus.metrics.render().decode()


def test_model_label_is_bounded():
    bus = Bus()
    labels = {bus.metrics.model_label(f"m{i}") for i in range(500)}
    assert len(labels) == bus.metrics.model_label.limit + 1 and "other" in labels
