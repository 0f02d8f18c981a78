"""The runner: every live batch's pending lines sent upstream at batch priority, at most
--batch-concurrency at once over all batches. A 503 batch_deferred (the router has no
idle capacity now) is "come back later": waited out (Retry-After) and sent again, never
the line's failure. Any other reply is the line's result; a line no upstream could take
after a few tries is its error entry."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import NamedTuple

import msgspec
import structlog

from eldric.batch.db import BatchDB
from eldric.batch.lines import Line
from eldric.batch.objects import (Batch, BatchError, Errors, FileObject, LineError, LineResponse,
                                  OutputLine, new_id)
from eldric.wire import priority

log = structlog.get_logger("eldric.batch")


class Reply(NamedTuple):
    status: int
    headers: dict[str, str]
    body: bytes


# send(path, body, headers) -> the upstream's reply; raises OSError (or aiohttp's
# ClientError) when no upstream could be reached.
Send = Callable[[str, bytes, dict[str, str]], Awaitable[Reply]]
# count(owner, path, body, reply, latency_ms): a line's answer counted to its owner (the
# role's usage); never raises into the runner (its failures are logged and passed over).
Count = Callable[[str, str, bytes, Reply, float], Awaitable[None]]
# allow(owner, body) -> None, or (code, message): the line's owner may not send it (a
# model its key is not allowed), its error entry then; it is never sent.
Allow = Callable[[str, bytes], Awaitable["tuple[str, str] | None"]]
HEADERS = {"Content-Type": "application/json", priority.HEADER: priority.BATCH}
TRIES = 3  # unreachable upstream: tries of one line before it is an error entry
MAX_WAIT = 60.0  # longest one deferral is waited, whatever Retry-After says
_enc = msgspec.json.Encoder()


def deferred(reply: Reply) -> float | None:
    """Seconds to wait when the reply says "no idle capacity now", else None."""
    if reply.status != 503:
        return None
    try:
        code = msgspec.json.decode(reply.body).get("error", {}).get("code")
    except (msgspec.DecodeError, AttributeError):
        return None
    if code != priority.DEFERRED:
        return None
    try:
        wait = float(reply.headers.get("Retry-After", "1"))
    except ValueError:
        wait = 1.0
    return min(max(wait, 0.05), MAX_WAIT)


class Runner:
    def __init__(self, db: BatchDB, send: Send, concurrency: int,
                 count: Count | None = None, allow: Allow | None = None) -> None:
        self.db = db
        self.send = send
        self.count = count
        self.allow = allow
        self.slots = asyncio.Semaphore(concurrency)
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.live: dict[str, Batch] = {}  # the running batches' objects: the one copy written
        self.cancelled: set[str] = set()
        self.deferrals = 0  # counted for tests and the log

    async def resume(self) -> None:
        for b in await self.db.live():
            log.info("batch_resumed", batch=b.id, status=b.status)
            self.start(b)

    def start(self, b: Batch) -> None:
        if b.status == "cancelling":
            self.cancelled.add(b.id)
        self.live[b.id] = b
        self.tasks[b.id] = asyncio.create_task(self._run(b), name=f"batch {b.id}")

    async def cancel(self, b: Batch) -> Batch:
        """Lines not started are not run; those in flight finish (their results kept)."""
        live = self.live.get(b.id)
        if live is None:  # not running here (cannot be: every live batch is resumed)
            self.start(b)
            live = self.live[b.id]
        self.cancelled.add(b.id)
        live.status, live.cancelling_at = "cancelling", int(time.time())
        await self.db.save(live)
        return live

    async def stop(self) -> None:
        for t in self.tasks.values():
            t.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)

    async def _run(self, b: Batch) -> None:
        try:
            await self._lines(b)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug or a broken disk: the batch fails, the edge lives
            log.exception("batch_failed", batch=b.id)
            b.status, b.failed_at = "failed", int(time.time())
            b.errors = Errors(data=[BatchError(code="internal_error", message=str(exc))])
            await self.db.save(b)
        finally:
            self.tasks.pop(b.id, None)
            self.live.pop(b.id, None)

    async def _lines(self, b: Batch) -> None:
        lines = msgspec.json.Decoder(Line)
        raw = [r for r in (await self.db.read(b.input_file_id)).splitlines() if r.strip()]
        if b.status == "validating":
            b.status, b.in_progress_at = "in_progress", int(time.time())
            await self.db.save(b)
        pending = await self.db.pending(b.id)
        owner = await self._owner(b) if self.count or self.allow else ""
        counts = b.request_counts
        lock = asyncio.Lock()

        async def one(n: int) -> None:
            async with self.slots:
                if b.id in self.cancelled or self._expired(b):
                    return
                line = lines.decode(raw[n])
                ok, out = await self._line(b, line, owner)
            await self.db.finish_line(b.id, n, ok, _enc.encode(out))
            async with lock:
                if ok:
                    counts.completed += 1
                else:
                    counts.failed += 1
                await self.db.save(b)

        await asyncio.gather(*(one(n) for n in pending))
        await self._finish(b, lines, raw)

    def _expired(self, b: Batch) -> bool:
        return b.expires_at is not None and time.time() >= b.expires_at

    async def _line(self, b: Batch, line: Line, owner: str) -> tuple[bool, OutputLine]:
        body = _enc.encode(line.body)
        failures = 0
        t0 = time.perf_counter()
        if self.allow is not None and (refused := await self.allow(owner, body)) is not None:
            return False, _out(line, None, LineError(code=refused[0], message=refused[1]))
        while True:
            try:
                reply = await self.send(line.url, body, dict(HEADERS))
            except Exception as exc:  # no upstream answered (the send's failover is done)
                failures += 1
                if failures >= TRIES:
                    return False, _out(line, None, LineError(
                        code="upstream_unavailable", message=f"no upstream answered: {exc}"))
                await asyncio.sleep(0.2 * failures)
                continue
            wait = deferred(reply)
            if wait is None:
                break
            self.deferrals += 1
            if b.id in self.cancelled or self._expired(b):
                return False, _out(line, None, LineError(
                    code="batch_cancelled" if b.id in self.cancelled else "batch_expired",
                    message="the batch ended before this request found idle capacity"))
            await asyncio.sleep(wait)
        if self.count is not None:
            try:
                await self.count(owner, line.url, body, reply, (time.perf_counter() - t0) * 1000)
            except Exception:  # the line's answer stands; only its counting failed
                log.exception("batch_line_not_counted", batch=b.id, custom_id=line.custom_id)
        try:
            parsed = msgspec.json.decode(reply.body)
        except msgspec.DecodeError:
            parsed = reply.body.decode("utf-8", "replace")
        rid = reply.headers.get("X-Request-Id") or new_id("req_")
        return 200 <= reply.status < 300, _out(line, LineResponse(reply.status, rid, parsed), None)

    async def _finish(self, b: Batch, lines: msgspec.json.Decoder, raw: list[bytes]) -> None:
        now = int(time.time())
        cancelled, expired = b.id in self.cancelled, self._expired(b)
        if not cancelled:
            b.status, b.finalizing_at = "finalizing", now
            await self.db.save(b)
        results = await self.db.results(b.id)
        if expired and not cancelled:  # the lines never run: their error entries
            done = {msgspec.json.decode(r)["custom_id"] for _, r in results}
            for r in raw:
                line = lines.decode(r)
                if line.custom_id not in done:
                    results.append((False, _enc.encode(_out(line, None, LineError(
                        code="batch_expired", message="This request could not be executed "
                        "before the completion window expired.")))))
                    b.request_counts.failed += 1
        good = [r for ok, r in results if ok]
        bad = [r for ok, r in results if not ok]
        if good:
            b.output_file_id = await self._write(b, good, "output")
        if bad:
            b.error_file_id = await self._write(b, bad, "error")
        if cancelled:
            b.status, b.cancelled_at = "cancelled", now
        elif expired:
            b.status, b.expired_at = "expired", now
        else:
            b.status, b.completed_at = "completed", now
        await self.db.save(b)
        self.cancelled.discard(b.id)
        log.info("batch_done", batch=b.id, status=b.status, completed=b.request_counts.completed,
                 failed=b.request_counts.failed)

    async def _owner(self, b: Batch) -> str:
        return await self.db.store.run(lambda db: db.execute(
            "SELECT owner FROM batches WHERE id = ?", (b.id,)).fetchone()[0])

    async def _write(self, b: Batch, rows: list[bytes], kind: str) -> str:
        data = b"".join(r + b"\n" for r in rows)
        owner = await self._owner(b)
        f = FileObject(id=new_id("file-"), bytes=len(data), created_at=int(time.time()),
                       filename=f"batch_{b.id}_{kind}.jsonl", purpose="batch_output")
        await self.db.add_file(owner, f, data)
        return f.id


def _out(line: Line, response: LineResponse | None, error: LineError | None) -> OutputLine:
    return OutputLine(id=new_id("batch_req_"), custom_id=line.custom_id, response=response,
                      error=error)
