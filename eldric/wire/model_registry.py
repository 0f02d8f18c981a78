"""The model registry on the wire (GET /api/v1/model-registry, …/{id}, the upload's reply).

Read by the controller's distribute (which offers a worker the file's path, size and
sha256 for shared-filesystem detection, and its download URL) and by the dashboard.
"""

from __future__ import annotations

from typing import Literal

import msgspec

Format = Literal["gguf", "safetensors"]


class RegistryModel(msgspec.Struct, omit_defaults=False, kw_only=True):
    id: str
    name: str  # unique in the registry; what a distribution installs it as
    format: Format
    size: int
    sha256: str  # hex; also the download's ETag
    created_at: float  # epoch seconds
    filename: str
    path: str  # the file on the registry's host (a worker seeing the same file uses it)
    source: str = ""  # where the file came from, as the uploader said (a URL, "hf:…")
    description: str = ""
    # GGUF only, read from the header: general.architecture, the sum of the tensors'
    # element counts, general.file_type by llama.cpp's name (Q4_K_M, …) and as a number
    architecture: str | None = None
    parameter_count: int | None = None
    quantization: str | None = None
    file_type: int | None = None
    context_length: int | None = None


class RegistryModels(msgspec.Struct):
    models: list[RegistryModel] = []
