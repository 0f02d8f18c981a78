"""A target's percent, rate and ETA (jobs/meter.py), and a job's state from its targets
(jobs/meter.derive): pure, every rule."""

from __future__ import annotations

import pytest

from eldric.roles.controller.jobs import derive
from eldric.roles.controller.jobs.meter import Meter, percent, update
from eldric.roles.controller.jobs.table import StoredTarget
from eldric.wire.models import TargetStatus


def test_percent_never_shows_100_before_the_backend_said_success():
    assert percent(0, None, "pulling") is None  # no total yet (Ollama's manifest)
    assert percent(500, 1000, "pulling") == 50.0
    assert percent(1000, 1000, "verifying") == 99.9
    assert percent(9999, 10000, "pulling") == 99.9  # 99.99 must not round to 100
    assert percent(1000, 1000, "completed") == 100.0
    assert percent(0, None, "completed") == 100.0
    assert percent(400, 1000, "failed") == 40.0


def test_rate_over_the_recent_window_and_eta():
    t = TargetStatus(worker_id="w", state="pulling", total_bytes=10_000, started_at=0)
    m = Meter()
    for i in range(4):  # 1000 bytes a second
        t.completed_bytes = i * 1000
        update(t, m, float(i))
    assert t.bytes_per_second == 1000.0 and t.eta_seconds == 7.0
    for i in range(4, 12):  # slower now: 100 bytes a second; the window forgets the past
        t.completed_bytes = 3000 + (i - 3) * 100
        update(t, m, float(i))
    assert t.bytes_per_second == pytest.approx(100.0, rel=0.05)


def test_no_rate_from_a_single_sample_or_a_tiny_span():
    t = TargetStatus(worker_id="w", state="pulling", total_bytes=100)
    m = Meter()
    update(t, m, 10.0)
    assert t.bytes_per_second is None and t.eta_seconds is None
    t.completed_bytes = 50
    update(t, m, 10.1)
    assert t.bytes_per_second is None


def test_bytes_that_go_backwards_start_the_window_again():
    t = TargetStatus(worker_id="w", state="pulling", total_bytes=1000)
    m = Meter()
    for now, done in ((0.0, 0), (1.0, 500), (2.0, 100), (3.0, 300)):
        t.completed_bytes = done
        update(t, m, now)
        assert t.bytes_per_second is None or t.bytes_per_second >= 0
    assert t.bytes_per_second == 200.0


def test_a_finished_target_keeps_its_average_and_no_eta():
    t = TargetStatus(worker_id="w", state="completed", completed_bytes=3000,
                     total_bytes=3000, started_at=10.0, finished_at=13.0)
    update(t, Meter(), 13.0)
    assert (t.percent, t.bytes_per_second, t.eta_seconds) == (100.0, 1000.0, None)
    t = TargetStatus(worker_id="w", state="failed", completed_bytes=3000,
                     total_bytes=6000, started_at=10.0, finished_at=13.0)
    update(t, Meter(), 13.0)
    assert (t.percent, t.bytes_per_second, t.eta_seconds) == (50.0, None, None)


def _t(*states: str) -> list[StoredTarget]:
    return [StoredTarget(worker_id=str(i), state=s) for i, s in enumerate(states)]  # type: ignore[arg-type]


@pytest.mark.parametrize("states,cancelled,want", [
    (("completed", "pulling"), False, "running"),
    (("queued",), False, "running"),
    (("completed", "completed", "skipped"), False, "completed"),
    (("completed", "failed", "skipped"), False, "partial"),
    (("failed", "failed"), False, "failed"),
    (("failed", "skipped"), False, "failed"),
    (("skipped",), False, "failed"),  # nothing ran
    (("completed", "cancelled"), True, "cancelled"),
    (("completed", "completed"), True, "completed"),  # cancelled after every one ended
    (("completed", "cancelled"), False, "partial"),  # stopped at the worker
])
def test_a_jobs_state_follows_from_its_targets(states, cancelled, want):
    assert derive(_t(*states), cancelled) == want
