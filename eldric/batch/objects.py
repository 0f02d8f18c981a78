"""The OpenAI File and Batch objects, exactly as the openai SDK reads them
(openai/types/file_object.py, batch.py, batch_request_counts.py, batch_error.py)."""

from __future__ import annotations

import secrets
from typing import Any

import msgspec

ENDPOINTS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses")
WINDOW = "24h"
WINDOW_S = 24 * 3600
# states a batch leaves only by the runner: resumed after a restart
LIVE = ("validating", "in_progress", "finalizing", "cancelling")


def new_id(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(12)}"


class FileObject(msgspec.Struct, omit_defaults=False):
    id: str
    bytes: int
    created_at: int
    filename: str
    purpose: str  # batch (uploaded) or batch_output (a batch's output or error file)
    object: str = "file"
    status: str = "processed"  # deprecated by OpenAI; the SDK still reads it
    expires_at: int | None = None
    status_details: str | None = None


class RequestCounts(msgspec.Struct, omit_defaults=False):
    total: int = 0
    completed: int = 0
    failed: int = 0


class BatchError(msgspec.Struct, omit_defaults=False):
    code: str | None = None
    message: str | None = None
    param: str | None = None
    line: int | None = None


class Errors(msgspec.Struct, omit_defaults=False):
    data: list[BatchError] = []
    object: str = "list"


class Batch(msgspec.Struct, omit_defaults=False):
    id: str
    endpoint: str
    input_file_id: str
    created_at: int
    status: str
    completion_window: str = WINDOW
    object: str = "batch"
    errors: Errors | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    in_progress_at: int | None = None
    expires_at: int | None = None
    finalizing_at: int | None = None
    completed_at: int | None = None
    failed_at: int | None = None
    expired_at: int | None = None
    cancelling_at: int | None = None
    cancelled_at: int | None = None
    request_counts: RequestCounts = msgspec.field(default_factory=RequestCounts)
    metadata: dict[str, str] | None = None


class Page(msgspec.Struct, omit_defaults=False):
    """A list reply the SDK pages through (SyncCursorPage: after = last_id)."""
    data: list[Any]
    has_more: bool
    first_id: str | None
    last_id: str | None
    object: str = "list"


class Deleted(msgspec.Struct, omit_defaults=False):
    id: str
    deleted: bool = True
    object: str = "file"


class LineError(msgspec.Struct, omit_defaults=False):
    code: str
    message: str


class LineResponse(msgspec.Struct, omit_defaults=False):
    status_code: int
    request_id: str
    body: Any


class OutputLine(msgspec.Struct, omit_defaults=False):
    """One line of a batch's output or error file."""
    id: str
    custom_id: str
    response: LineResponse | None
    error: LineError | None
