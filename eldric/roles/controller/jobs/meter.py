"""A target's progress figures: percent, rate and ETA, from the worker's OpProgress lines.

Pure (no I/O, the clock passed in), so every rule is tested without a worker:

- percent is completed/total, but never 100 before the backend said success: a pull whose
  bytes are all there is still verifying (Ollama hashes every layer, then writes its
  manifest), and a bar at 100 % that then fails is a lie the dashboard must not tell;
- the rate is over the last few seconds (a window, not the whole run: a pull that stalled
  and resumed shows today's speed), and unknown until the window spans half a second;
- bytes that go backwards (a re-attached stream of a pull that restarted from 0, a retry)
  start the window again rather than show a negative rate;
- a job's state follows from its targets' (derive()).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING

from eldric.wire.models import TERMINAL, JobState, TargetStatus

if TYPE_CHECKING:
    from eldric.roles.controller.jobs.table import StoredTarget

WINDOW_S = 5.0  # the rate is measured over this much of the recent past
MIN_SPAN_S = 0.5  # a rate over less than this is noise
NOT_DONE_MAX = 99.9  # the highest percent a target shows before it is completed


def percent(completed: int, total: int | None, state: str) -> float | None:
    if state == "completed":
        return 100.0
    if not total:
        return None
    return min(NOT_DONE_MAX, round(100 * completed / total, 1))


class Meter:
    """The recent (time, bytes) samples of one target."""

    __slots__ = ("samples",)

    def __init__(self) -> None:
        self.samples: deque[tuple[float, int]] = deque()

    def add(self, now: float, completed: int) -> None:
        s = self.samples
        if s and completed < s[-1][1]:
            s.clear()
        s.append((now, completed))
        while len(s) > 2 and now - s[1][0] >= WINDOW_S:
            s.popleft()

    def rate(self) -> float | None:
        s = self.samples
        if len(s) < 2:
            return None
        span = s[-1][0] - s[0][0]
        if span < MIN_SPAN_S:
            return None
        return (s[-1][1] - s[0][1]) / span


def update(t: TargetStatus, meter: Meter, now: float) -> None:
    """Set t's percent, rate and ETA from its bytes and state (already updated)."""
    t.percent = percent(t.completed_bytes, t.total_bytes, t.state)
    if t.state in ("completed", "failed", "skipped", "cancelled"):
        # What is left is the whole run's average (for the record), and no ETA.
        t.eta_seconds = None
        span = (t.finished_at or now) - (t.started_at or now)
        t.bytes_per_second = round(t.completed_bytes / span, 1) \
            if t.state == "completed" and t.completed_bytes and span > 0 else None
        return
    meter.add(now, t.completed_bytes)
    rate = meter.rate()
    t.bytes_per_second = None if rate is None else round(rate, 1)
    if rate and t.total_bytes and t.total_bytes > t.completed_bytes:
        t.eta_seconds = round((t.total_bytes - t.completed_bytes) / rate, 1)
    else:
        t.eta_seconds = None


def derive(targets: Iterable[StoredTarget], cancelled: bool) -> JobState:
    """running while a target is not done; then completed (every target that ran
    completed), failed (none did), partial (some), cancelled (cancelled before the end)."""
    ran = []
    for t in targets:
        if t.state not in TERMINAL:
            return "running"
        if t.state != "skipped":
            ran.append(t.state)
    if cancelled and "cancelled" in ran:
        return "cancelled"
    done = ran.count("completed")
    if ran and done == len(ran):
        return "completed"
    return "partial" if done else "failed"
