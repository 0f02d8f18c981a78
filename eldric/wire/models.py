"""Fleet model management on the wire: what a worker's model operations stream, what the
controller's jobs say, and what a worker says it can do with models.

Shared by the worker and cloud roles (which run the operations against their backend) and
the controller (which drives them across the fleet as jobs), so the three agree on one
shape whatever the backend: Ollama's /api/pull NDJSON, a file download into a models
directory and an Ollama /api/create all come out as the same `OpProgress` lines.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

# A target's (one worker's) state in an operation. queued -> pulling -> verifying ->
# completed | failed; skipped: never started (the reason in `error`); cancelled: stopped by
# DELETE on the job. Only the backend's own "success" makes `completed`.
OpState = Literal["queued", "pulling", "verifying", "completed", "failed", "skipped",
                  "cancelled"]
TERMINAL: frozenset[str] = frozenset({"completed", "failed", "skipped", "cancelled"})

# A job's state, derived from its targets: running while any target is not terminal;
# then completed (every started target completed), failed (none completed), partial
# (some of each), cancelled (the job was cancelled before every target finished).
JobState = Literal["running", "completed", "partial", "failed", "cancelled"]
JobKind = Literal["pull", "distribute", "delete"]
Source = Literal["registry", "worker", "url", "ollama"]

# What a worker can do with models, advertised in /health and at registration.
# pull: "ollama" (names from the Ollama registry) and/or "url" (a GGUF/safetensors URL
# downloaded into its models directory); install: a file from a URL (the controller's
# registry, another worker, anywhere) installed the backend's way; files: it serves its
# model files for download (GET /api/v1/models/files/{name}), so it can be a source.
PullKind = Literal["ollama", "url"]

# An op id is the caller's name for an operation (the controller's: job, worker id,
# attempt): it goes into log lines and URL paths, so it is bounded and has no slash or
# control character.
OpId = Annotated[str, msgspec.Meta(pattern=r"^[^/\x00-\x1f\x7f]{1,256}$")]


class ModelOps(msgspec.Struct, omit_defaults=True):
    pull: list[PullKind] = []
    install: bool = False
    delete: bool = False
    files: bool = False


class OpProgress(msgspec.Struct, omit_defaults=False):
    """One NDJSON line of a worker's model operation (POST /api/v1/models/pull, …/install,
    GET /api/v1/models/ops/{op_id}?follow=true). Bytes are totals over every layer/file
    seen so far (Ollama announces layers one by one, so total_bytes can grow). The last
    line of a finished operation has a terminal state; a stream that ends without one was
    cut (the operation goes on at the worker: re-attach with the op id)."""

    op_id: str
    state: OpState
    model: str
    completed_bytes: int = 0
    total_bytes: int | None = None
    message: str = ""  # the backend's own status text ("pulling manifest", …)
    error: str | None = None
    code: str | None = None  # eldric's error code when failed (e.g. checksum_mismatch)


class PullRequest(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """POST /api/v1/models/pull on a worker. `op_id` names the operation so a caller that
    lost the stream (or restarted) can re-attach; a second POST with the same op_id joins
    the running one instead of starting another. `url` (and `sha256`) for a backend that
    pulls files, `model` then names the installed file."""

    model: str
    op_id: OpId | None = None
    url: str | None = None
    sha256: str | None = None
    insecure: bool = False  # Ollama's own flag, passed on


class InstallRequest(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """POST /api/v1/models/install on a worker: put the model file at `url` on this
    worker's backend under `name`. `path`, `size` and `sha256` describe the source file:
    when the worker sees the same file at `path` (a shared filesystem: same size and
    hash), it is configured by path, not copied. `headers` go with the download (the
    controller's key for its registry)."""

    name: str
    url: str
    format: Literal["gguf", "safetensors"] = "gguf"
    op_id: OpId | None = None
    sha256: str | None = None
    size: int | None = None
    path: str | None = None
    headers: dict[str, str] = {}


class LocalModel(msgspec.Struct, omit_defaults=True):
    """GET /api/v1/models/local on a worker: one model its backend has."""

    name: str
    size: int | None = None
    modified_at: str | None = None  # RFC 3339
    format: str | None = None  # gguf, safetensors, or Ollama's details.format
    digest: str | None = None
    loaded: bool | None = None  # the embedded backend: in memory now
    path: str | None = None  # a file backend's file (for shared-filesystem detection)


class LocalModels(msgspec.Struct):
    backend: str
    models: list[LocalModel] = []


# ---------------------------------------------------------------- the controller's jobs


class TargetStatus(msgspec.Struct, omit_defaults=False):
    """One worker's row in a job (GET /api/v1/models/pull-jobs/{id})."""

    worker_id: str
    state: OpState = "queued"
    completed_bytes: int = 0
    total_bytes: int | None = None
    percent: float | None = None  # < 100 until the backend said success
    bytes_per_second: float | None = None
    eta_seconds: float | None = None
    message: str = ""
    error: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    code: str | None = None  # eldric's error code when failed (as in OpProgress)


class Job(msgspec.Struct, omit_defaults=False):
    id: str
    kind: JobKind
    model: str
    state: JobState
    created_at: float
    targets: list[TargetStatus] = []
    source: Source | None = None
    finished_at: float | None = None
