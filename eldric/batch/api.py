"""/v1/files and /v1/batches: the OpenAI contract, every object its owner's alone (a key
sees only its own files and batches; another key's id is a 404, as if absent)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import msgspec
from aiohttp import web

from eldric.batch.db import BatchDB
from eldric.batch.lines import check
from eldric.batch.objects import (ENDPOINTS, LIVE, WINDOW, WINDOW_S, Batch, Deleted,
                                  FileObject, Page, RequestCounts, new_id)
from eldric.batch.runner import Runner
from eldric.errors import BadRequest, EldricError, NotFound

# owner(request) -> (whose, the headers every reply carries): the role's auth
Owner = Callable[[web.Request], Awaitable[tuple[str, dict[str, str]]]]
_enc = msgspec.json.Encoder()
T = TypeVar("T")


class CreateBatch(msgspec.Struct, forbid_unknown_fields=False):
    input_file_id: str
    endpoint: str
    completion_window: str
    metadata: dict[str, str] | None = None


class Api:
    def __init__(self, db: BatchDB, runner: Runner, owner: Owner, max_bytes: int,
                 max_lines: int) -> None:
        self.db, self.runner, self.owner = db, runner, owner
        self.max_bytes, self.max_lines = max_bytes, max_lines

    def routes(self, app: web.Application) -> None:
        r = app.router
        for method, path, fn in (
                ("POST", "/v1/files", self.upload), ("GET", "/v1/files", self.list_files),
                ("GET", "/v1/files/{id}", self.get_file),
                ("GET", "/v1/files/{id}/content", self.content),
                ("DELETE", "/v1/files/{id}", self.delete_file),
                ("POST", "/v1/batches", self.create), ("GET", "/v1/batches", self.list_batches),
                ("GET", "/v1/batches/{id}", self.get_batch),
                ("POST", "/v1/batches/{id}/cancel", self.cancel)):
            r.add_route(method, path, self._wrapped(fn))

    def _wrapped(self, fn):  # type: ignore[no-untyped-def]
        async def handler(request: web.Request) -> web.StreamResponse:
            who, headers = await self.owner(request)
            try:
                resp = await fn(request, who)
            except EldricError as exc:
                exc.headers = {**headers, **exc.headers}
                raise
            resp.headers.update(headers)
            return resp
        return handler

    # ------------------------------------------------------------------ files
    async def upload(self, request: web.Request, who: str) -> web.Response:
        if not request.content_type.startswith("multipart/"):
            raise BadRequest("POST /v1/files takes multipart/form-data (file, purpose)",
                             code="invalid_content_type")
        purpose, name, data = None, "upload.jsonl", None
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if part.name == "purpose":  # type: ignore[union-attr]
                purpose = (await part.text()).strip()  # type: ignore[union-attr]
            elif part.name == "file":  # type: ignore[union-attr]
                name = part.filename or name  # type: ignore[union-attr]
                data = await self._bounded(part)
        if purpose != "batch":
            raise BadRequest(f"purpose {purpose!r}: this edge stores files for the Batch API "
                             "only (purpose 'batch')", param="purpose", code="invalid_purpose")
        if data is None:
            raise BadRequest("no file part in the upload", param="file", code="missing_file")
        check(data, self.max_lines)
        f = FileObject(id=new_id("file-"), bytes=len(data), created_at=int(time.time()),
                       filename=name, purpose="batch")
        await self.db.add_file(who, f, data)
        return _json(f)

    async def _bounded(self, part) -> bytes:  # type: ignore[no-untyped-def]
        out = bytearray()
        while chunk := await part.read_chunk(65536):
            out += chunk
            if len(out) > self.max_bytes:
                raise EldricError(f"the file is larger than {self.max_bytes} bytes "
                                  "(--batch-max-file-bytes)", param="file",
                                  code="file_too_large", status=413)
        return bytes(out)

    async def list_files(self, request: web.Request, who: str) -> web.Response:
        after, limit = _paging(request, 10_000)
        rows = await self.db.files(who, after, limit, request.query.get("purpose"))
        return _page(rows, limit)

    async def _file(self, who: str, file_id: str) -> FileObject:
        return _found(await self.db.file(who, file_id), "file", file_id)

    async def get_file(self, request: web.Request, who: str) -> web.Response:
        return _json(await self._file(who, request.match_info["id"]))

    async def content(self, request: web.Request, who: str) -> web.Response:
        f = await self._file(who, request.match_info["id"])
        return web.Response(body=await self.db.read(f.id), content_type="application/octet-stream")

    async def delete_file(self, request: web.Request, who: str) -> web.Response:
        file_id = request.match_info["id"]
        await self._file(who, file_id)
        # a live batch's lines are read from it again when a restart resumes the batch
        if any(b.input_file_id == file_id and b.status in LIVE
               for b in self.runner.live.values()):
            raise EldricError(f"file {file_id!r} is the input of a batch still running "
                              "(delete it once the batch has ended, or cancel the batch)",
                              param="file_id", code="file_in_use", status=409)
        await self.db.delete_file(who, file_id)
        return _json(Deleted(id=file_id))

    # ---------------------------------------------------------------- batches
    async def create(self, request: web.Request, who: str) -> web.Response:
        try:
            req = msgspec.json.decode(await request.read(), type=CreateBatch)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise BadRequest(f"not a batch request: {exc}", code="invalid_request") from None
        if req.endpoint not in ENDPOINTS:
            raise BadRequest(f"endpoint {req.endpoint!r} is not one of " + ", ".join(ENDPOINTS),
                             param="endpoint", code="invalid_endpoint")
        if req.completion_window != WINDOW:
            raise BadRequest(f"completion_window {req.completion_window!r}: only '24h'",
                             param="completion_window", code="invalid_completion_window")
        f = await self.db.file(who, req.input_file_id)
        if f is None or f.purpose != "batch":
            raise NotFound(f"no batch input file {req.input_file_id!r}",
                           param="input_file_id", code="file_not_found")
        lines = check(await self.db.read(f.id), self.max_lines)
        for n, line in enumerate(lines, 1):
            if line.url != req.endpoint:
                raise BadRequest(f"request {n} ({line.custom_id!r}) is for {line.url}, the "
                                 f"batch for {req.endpoint}", param="endpoint",
                                 code="mismatched_endpoint")
        now = int(time.time())
        b = Batch(id=new_id("batch_"), endpoint=req.endpoint, input_file_id=f.id,
                  created_at=now, expires_at=now + WINDOW_S, status="validating",
                  metadata=req.metadata, request_counts=RequestCounts(total=len(lines)))
        await self.db.add_batch(who, b, [line.custom_id for line in lines])
        self.runner.start(b)
        return _json(b)

    async def _batch(self, who: str, batch_id: str) -> Batch:
        return _found(await self.db.batch(who, batch_id), "batch", batch_id)

    async def get_batch(self, request: web.Request, who: str) -> web.Response:
        return _json(await self._batch(who, request.match_info["id"]))

    async def list_batches(self, request: web.Request, who: str) -> web.Response:
        after, limit = _paging(request, 100)
        return _page(await self.db.batches(who, after, limit), limit)

    async def cancel(self, request: web.Request, who: str) -> web.Response:
        b = await self._batch(who, request.match_info["id"])
        if b.status in ("validating", "in_progress"):
            b = await self.runner.cancel(b)
        elif b.status not in ("cancelling", "cancelled"):
            raise EldricError(f"batch {b.id} is {b.status}: it cannot be cancelled",
                              code="batch_not_cancellable", status=409)
        return _json(b)


def _found(obj: T | None, kind: str, key: str) -> T:
    if obj is None:
        raise NotFound(f"no {kind} {key!r}", param=f"{kind}_id", code=f"{kind}_not_found")
    return obj


def _paging(request: web.Request, most: int) -> tuple[str | None, int]:
    try:
        limit = int(request.query.get("limit", "20"))
    except ValueError:
        raise BadRequest("limit is not a number", param="limit", code="invalid_limit") from None
    if not 1 <= limit <= most:
        raise BadRequest(f"limit must be 1..{most}", param="limit", code="invalid_limit")
    return request.query.get("after") or None, limit


def _page(rows: list, limit: int) -> web.Response:  # type: ignore[type-arg]
    data = rows[:limit]
    return _json(Page(data=data, has_more=len(rows) > limit,
                      first_id=data[0].id if data else None,
                      last_id=data[-1].id if data else None))


def _json(obj: object) -> web.Response:
    return web.Response(body=_enc.encode(obj), content_type="application/json")
