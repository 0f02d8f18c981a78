"""What a GGUF file's header says: its scalar metadata, its parameter count, its quantisation.

The embedded backend needs one or two keys before it starts llama.cpp (the model's own
pooling type decides what --embeddings must ask for), and xllamacpp has no call for them;
the model registry shows a file's architecture, size in parameters and quantisation. The
format is llama.cpp's gguf.md: magic, version, tensor count, key/value count, the
key/value pairs, then one tensor info per tensor (name, dimensions, type, offset). Arrays
(the tokenizer's vocabulary, tens of thousands of strings) are skipped, not decoded, so a
header of many megabytes is read in a few seeks. A file that is not GGUF, or is cut short,
gives what was read so far: llama.cpp itself reports a broken file when it loads it.

A pure module (no I/O beyond reading the file it is given): the worker and the shared
model registry both use it.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from typing import IO, Any

# value type -> struct format of a fixed-size scalar
_FIXED = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
          10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
_MAX_STRING = 16 * 1024 * 1024  # chat templates are kilobytes; more is a broken file
_MAX_DIMS = 16  # gguf.md: "currently at most 4"; more is a broken file
_MAX_NESTING = 16  # arrays of arrays: a few levels at most; thousands would overflow
                  # the stack (a crafted or corrupt header is a broken file, not a crash)

# general.file_type -> the quantisation's name, as llama.cpp's quantize tool calls it:
# llama.h's enum llama_ftype (LLAMA_FTYPE_MOSTLY_<NAME>), mirrored by gguf-py's
# LlamaFileType (ggml-org/llama.cpp gguf-py/gguf/constants.py). 4-6 and 33-35 are removed
# from the format; an unknown number is shown as itself.
FILE_TYPES: dict[int, str] = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1",
    10: "Q2_K", 11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M",
    16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S",
    22: "IQ3_XS", 23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M",
    28: "IQ2_S", 29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0",
    37: "TQ2_0", 38: "MXFP4_MOE", 39: "NVFP4", 40: "Q1_0",
}


@dataclass
class Header:
    """What the header holds. `parameter_count` is the sum of the tensors' element counts
    (None unless every tensor info was read): the real count, where `general.size_label`
    is a rounded label some converters leave out."""

    scalars: dict[str, Any] = field(default_factory=dict)
    tensor_count: int | None = None
    parameter_count: int | None = None

    @property
    def architecture(self) -> str | None:
        arch = self.scalars.get("general.architecture")
        return arch if isinstance(arch, str) else None

    @property
    def file_type(self) -> int | None:
        ftype = self.scalars.get("general.file_type")
        return ftype if isinstance(ftype, int) and not isinstance(ftype, bool) else None

    @property
    def quantization(self) -> str | None:
        ftype = self.file_type
        return None if ftype is None else FILE_TYPES.get(ftype, str(ftype))


def _u32(f: IO[bytes]) -> int:
    return struct.unpack("<I", _exactly(f, 4))[0]


def _u64(f: IO[bytes]) -> int:
    return struct.unpack("<Q", _exactly(f, 8))[0]


def _exactly(f: IO[bytes], n: int) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise EOFError
    return data


def _string(f: IO[bytes]) -> str:
    n = _u64(f)
    if n > _MAX_STRING:
        raise ValueError("string too long")
    return _exactly(f, n).decode("utf-8", "replace")


def _skip(f: IO[bytes], vtype: int, depth: int = 0) -> None:
    if depth > _MAX_NESTING:
        raise ValueError("arrays nested too deep")
    if vtype in _FIXED:
        f.seek(struct.calcsize(_FIXED[vtype]), 1)
    elif vtype == _STRING:
        f.seek(_u64(f), 1)
    elif vtype == _ARRAY:
        item, count = _u32(f), _u64(f)
        if item in _FIXED:
            f.seek(struct.calcsize(_FIXED[item]) * count, 1)
        else:
            for _ in range(count):
                _skip(f, item, depth + 1)
    else:
        raise ValueError(f"unknown GGUF value type {vtype}")


def _read(f: IO[bytes], out: Header, tensors: bool) -> None:
    if f.read(4) != b"GGUF" or _u32(f) not in (2, 3):
        return
    n_tensors = _u64(f)
    for _ in range(_u64(f)):
        key = _string(f)
        vtype = _u32(f)
        if vtype in _FIXED:
            fmt = _FIXED[vtype]
            out.scalars[key] = struct.unpack(fmt, _exactly(f, struct.calcsize(fmt)))[0]
        elif vtype == _STRING:
            out.scalars[key] = _string(f)
        else:
            _skip(f, vtype)
    out.tensor_count = n_tensors
    if not tensors:
        return
    total = 0
    for _ in range(n_tensors):
        f.seek(_u64(f), 1)  # the name
        n_dims = _u32(f)
        if n_dims > _MAX_DIMS:
            raise ValueError("too many dimensions")
        total += math.prod(struct.unpack(f"<{n_dims}Q", _exactly(f, 8 * n_dims)))
        _exactly(f, 12)  # ggml type (u32), data offset (u64)
    out.parameter_count = total


def header(path: str, *, tensors: bool = True) -> Header:
    """The scalars, tensor count and (with `tensors`) parameter count of the header."""
    out = Header()
    try:
        with open(path, "rb") as f:
            _read(f, out, tensors)
    except (OSError, EOFError, ValueError, struct.error):
        pass
    return out


def scalars(path: str) -> dict[str, Any]:
    """Every scalar key/value of the header (arrays left out)."""
    return header(path, tensors=False).scalars
