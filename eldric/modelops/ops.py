"""The op table: a worker's running and recent model operations (pull, install), each a
task of its own with its latest OpProgress, that any number of followers stream.

An operation belongs to the worker, not to the request that started it: a caller that
leaves (or a controller that restarts) leaves it running, and anyone who knows its id
re-attaches and reads on from its current snapshot. Followers get the latest snapshot,
not every step (a fast pull would otherwise send thousands of lines): a change goes out
at most every THROTTLE seconds, a terminal state at once, and an unchanged snapshot is
repeated every KEEPALIVE seconds so a follower can tell a quiet backend from a dead link.
Finished operations are kept (the last KEEP, for up to KEEP_SECONDS) so a re-attaching
caller sees how they ended.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable

import msgspec
import structlog

from eldric.tasks import cancel, spawn
from eldric.wire.models import TERMINAL, OpProgress

log = structlog.get_logger("eldric.modelops")

THROTTLE = 0.5  # seconds between two lines of one follower while bytes move
KEEPALIVE = 5.0  # seconds: an unchanged snapshot is sent again
KEEP = 200  # finished operations kept
KEEP_SECONDS = 3600.0


class OpFailed(Exception):
    """How a backend driver ends an operation in failure: eldric's code and the reason."""

    def __init__(self, message: str, code: str = "backend_error"):
        super().__init__(message)
        self.message = message
        self.code = code


def new_op_id() -> str:
    return "op-" + secrets.token_hex(8)


class Op:
    """One operation: its latest snapshot and the task that moves it on."""

    def __init__(self, op_id: str, model: str, kind: str):
        self.id = op_id
        self.kind = kind  # pull | install
        self.progress = OpProgress(op_id=op_id, state="queued", model=model)
        self.task: asyncio.Task[None] | None = None
        self.finished_at: float | None = None
        self._changed = asyncio.Event()

    @property
    def done(self) -> bool:
        return self.progress.state in TERMINAL

    def update(self, **fields: object) -> None:
        """A driver's report (state, completed_bytes, total_bytes, message, …); ignored
        once the operation has ended (nothing moves a finished one)."""
        if self.done:
            return
        self.progress = msgspec.structs.replace(self.progress, **fields)
        if self.done:
            self.finished_at = time.time()
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def changed(self, timeout: float, stop: asyncio.Event | None = None) -> None:
        """Wait for the next update (or `stop`), at most `timeout` seconds."""
        waits = [asyncio.ensure_future(self._changed.wait())]
        if stop is not None:
            waits.append(asyncio.ensure_future(stop.wait()))
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    async def follow(self, stop: asyncio.Event | None = None) -> AsyncIterator[OpProgress]:
        """The snapshots a follower sends: the current one at once, then changes
        (bytes and messages throttled, a new state at once), repeats when quiet, and
        the terminal one last. `stop` (the role is stopping) ends it early, without a
        terminal line: the stream was cut, the caller re-attaches or learns that the
        worker went away."""
        loop = asyncio.get_running_loop()
        sent: OpProgress | None = None
        last = 0.0
        while stop is None or not stop.is_set():
            now = progress = self.progress
            if progress != sent or loop.time() - last >= KEEPALIVE:
                sent, last = progress, loop.time()
                yield progress
            if now.state in TERMINAL:
                return
            await self.changed(KEEPALIVE, stop)
            # bytes moving: wait out the throttle; a new state (the end too) cuts it short
            deadline = last + THROTTLE
            while (self.progress.state == now.state and loop.time() < deadline
                   and not (stop is not None and stop.is_set())):
                await self.changed(deadline - loop.time(), stop)


Driver = Callable[[Op], Awaitable[None]]


class Ops:
    """Operation id -> Op, with the bounded history of finished ones. `after(op)` runs
    when the backend completed an operation, before it is marked completed (the worker
    refreshes its model list)."""

    def __init__(self, after: Callable[[Op], Awaitable[None]] | None = None):
        self._ops: OrderedDict[str, Op] = OrderedDict()
        self._after = after

    def get(self, op_id: str) -> Op | None:
        self._prune()
        return self._ops.get(op_id)

    def start(self, op_id: str | None, model: str, kind: str, driver: Driver) -> Op:
        """Start an operation, or join the running one of the same id. A finished one
        of that id is started again (a retry keeps its id)."""
        self._prune()
        if op_id is not None and (op := self._ops.get(op_id)) is not None and not op.done:
            return op
        op = Op(op_id or new_op_id(), model, kind)
        self._ops.pop(op.id, None)
        self._ops[op.id] = op
        op.task = spawn(self._run(op, driver), name=f"model-{kind}-{op.id}")
        return op

    async def _run(self, op: Op, driver: Driver) -> None:
        """The driver returns once the backend said success; `after` runs before the
        terminal line goes out, so whoever reads "completed" finds the model listed."""
        log.info("model_op_started", op_id=op.id, kind=op.kind, model=op.progress.model)
        try:
            await driver(op)
            if self._after is not None:
                try:
                    await self._after(op)
                except Exception as exc:  # noqa: BLE001 - the backend did complete it
                    log.warning("model_op_after_failed", op_id=op.id, error=repr(exc))
            op.update(state="completed")
        except OpFailed as exc:
            op.update(state="failed", error=exc.message, code=exc.code)
        except asyncio.CancelledError:
            op.update(state="cancelled", error="cancelled (DELETE /api/v1/models/ops/{op_id})")
            raise
        except Exception as exc:  # noqa: BLE001 - an op must end, never stay "pulling"
            log.exception("model_op_crashed", op_id=op.id)
            op.update(state="failed", error=f"internal error: {type(exc).__name__}: {exc}",
                      code="internal_error")
        finally:
            p = op.progress
            log.info("model_op_finished", op_id=op.id, kind=op.kind, model=p.model,
                     state=p.state, error=p.error, code=p.code)

    async def cancel(self, op_id: str) -> Op | None:
        op = self.get(op_id)
        if op is not None and not op.done:
            await cancel(op.task)
        return op

    async def close(self) -> None:
        for op in list(self._ops.values()):
            await cancel(op.task)

    def _prune(self) -> None:
        cutoff = time.time() - KEEP_SECONDS
        finished = [op for op in self._ops.values() if op.finished_at is not None]
        excess = len(finished) - KEEP
        for op in finished:  # oldest first (insertion order)
            if excess > 0 or op.finished_at < cutoff:  # type: ignore[operator]
                del self._ops[op.id]
                excess -= 1
