"""The Batch API (OpenAI's /v1/files and /v1/batches) for any role that has upstreams to
send requests to: the role gives `install` its auth (whose a request is) and a `send`
(a request to its upstreams); this package knows no role. Requests run at batch
priority (eldric.wire.priority): the router gives them idle capacity only."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from eldric import keys

from eldric.batch.config import BatchConfig
from eldric.batch.runner import Allow, Count, Reply, Runner, Send

__all__ = ["Allow", "BatchConfig", "Count", "Reply", "Send", "install", "RUNNER"]

RUNNER: web.AppKey[Runner] = web.AppKey("eldric_batch_runner", Runner)


def install(app: web.Application, cfg: BatchConfig, owner, send: Send,  # type: ignore[no-untyped-def]
            db_path: str, files_dir: str, count: Count | None = None,
            allow: Allow | None = None) -> None:
    """Routes before the role's catch-all /v1 route; the runner resumes live batches at
    start and stops (lines in flight run again next start) at exit. Off: nothing."""
    if not cfg.on:
        return
    from eldric.batch.api import Api
    from eldric.batch.db import BatchDB

    db = BatchDB(db_path, files_dir)
    runner = app[RUNNER] = Runner(db, send, cfg.concurrency, count, allow)
    Api(db, runner, owner, cfg.max_file_bytes, cfg.max_lines).routes(app)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await db.open()
        # --processes: the batch API is the primary's (children splice it there), and so
        # is running the batches: a child resuming them would run each line twice
        if app[keys.ROLE].primary:
            await runner.resume()
        yield
        await runner.stop()
        await db.close()

    app.cleanup_ctx.append(lifecycle)
