"""The Batch API's settings (the edge's file section "batch", flags --batch-*)."""

from __future__ import annotations

from typing import Annotated

import msgspec

from eldric.config import flag_meta


class BatchConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    on: Annotated[bool, flag_meta(
        "serve the Batch API (/v1/files, /v1/batches), its requests run at batch priority "
        "on the cluster's idle capacity", flag="batch")] = True
    concurrency: Annotated[int, msgspec.Meta(ge=1, le=1024), flag_meta(
        "batch request lines in flight at once (all batches of this edge together)",
        flag="batch-concurrency")] = 4
    max_file_bytes: Annotated[int, msgspec.Meta(ge=1), flag_meta(
        "largest file /v1/files accepts, bytes (OpenAI's: 200 MB)",
        flag="batch-max-file-bytes")] = 200 * 1024 * 1024
    max_lines: Annotated[int, msgspec.Meta(ge=1), flag_meta(
        "most request lines in one batch input file (OpenAI's: 50000)",
        flag="batch-max-lines")] = 50_000
