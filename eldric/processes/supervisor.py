"""The primary's children: started by re-running the command line, restarted when they
exit unexpectedly (with a backoff, so one that fails at start is not a tight loop),
stopped with the primary (SIGTERM, the grace period, then SIGKILL). A child dies with
its primary too (die_with_parent): there are never orphans holding the port."""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import signal
import sys
import time

import structlog

from eldric import processes
from eldric.processes import Plan
from eldric.tasks import cancel, spawn

log = structlog.get_logger("eldric.processes")

BACKOFF_FIRST = 0.5
BACKOFF_MAX = 10.0
# A child that ran this long before it exited is restarted after the first backoff again:
# it was serving, not failing at start.
HEALTHY_RUN = 10.0
PR_SET_PDEATHSIG = 1


class Supervisor:
    def __init__(self, plan: Plan, ports: dict[str, int], files: dict[str, dict[str, str]]):
        self.plan = plan
        self.env = {**os.environ, processes.PORTS: json.dumps(ports),
                    processes.DIR: plan.dir, processes.FILES: json.dumps(files),
                    processes.PARENT: str(os.getpid())}
        # What the child runs: this command line again (it is a child by its INDEX).
        self.argv = [sys.executable, "-m", "eldric", *sys.argv[1:]]
        self.children: dict[int, asyncio.subprocess.Process] = {}
        self.restarts: dict[int, int] = {}
        self.stopping = False
        self._tasks: list[asyncio.Task] = []

    def start(self) -> None:
        self._tasks = [spawn(self._keep(i), name=f"process-{i}")
                       for i in range(1, self.plan.n)]

    def pid(self, index: int) -> int | None:
        child = self.children.get(index)
        return child.pid if child is not None and child.returncode is None else None

    async def _keep(self, index: int) -> None:
        delay = BACKOFF_FIRST
        while not self.stopping:
            started = time.monotonic()
            try:
                child = await asyncio.create_subprocess_exec(
                    *self.argv, env={**self.env, processes.INDEX: str(index)},
                    stdin=asyncio.subprocess.DEVNULL)
            except OSError as exc:
                log.error("process_start_failed", index=index, error=str(exc),
                          retry_in_s=delay)
            else:
                self.children[index] = child
                log.info("process_started", index=index, pid=child.pid)
                if self.stopping:  # started while terminate() went by: it stops too
                    child.send_signal(signal.SIGTERM)
                code = await child.wait()
                if self.stopping:
                    return
                if time.monotonic() - started >= HEALTHY_RUN:
                    delay = BACKOFF_FIRST
                self.restarts[index] = self.restarts.get(index, 0) + 1
                log.warning("process_exited", index=index, pid=child.pid, code=code,
                            restart_in_s=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX)

    def terminate(self) -> None:
        """SIGTERM to every child (each drains as a lone process does); none is restarted."""
        self.stopping = True
        for child in self.children.values():
            if child.returncode is None:
                try:
                    child.send_signal(signal.SIGTERM)
                except ProcessLookupError:
                    pass

    async def wait(self, grace: float) -> None:
        """The children's exit, within `grace` seconds; SIGKILL to the ones still running."""
        live = [c for c in self.children.values() if c.returncode is None]
        if live:
            await asyncio.wait([asyncio.ensure_future(c.wait()) for c in live], timeout=grace)
            for child in live:
                if child.returncode is None:
                    log.warning("process_killed", pid=child.pid, why="grace period over")
                    try:
                        child.kill()
                    except ProcessLookupError:
                        pass
            for child in live:
                await child.wait()
        for task in self._tasks:
            await cancel(task)


def die_with_parent(parent: int) -> asyncio.Task | None:
    """In a child: SIGTERM when the primary dies (Linux: PR_SET_PDEATHSIG, asked of the
    kernel; elsewhere a once-a-second look at the parent pid), so a child never outlives
    it. Exits at once if the primary is gone already (it died before the call)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        armed = libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) == 0
    except (OSError, AttributeError):
        armed = False
    if os.getppid() != parent:
        os._exit(0)
    if armed:
        return None

    async def watch() -> None:  # pragma: no cover - not Linux
        while os.getppid() == parent:
            await asyncio.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    return spawn(watch(), name="watch-primary")
