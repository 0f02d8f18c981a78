"""The scalar metadata of a GGUF file's header (architecture, pooling type, …).

The embedded backend needs one or two keys before it starts llama.cpp (the model's own
pooling type decides what --embeddings must ask for), and xllamacpp has no call for them.
The format is llama.cpp's gguf.md: magic, version, tensor count, key/value count, then
key/value pairs; arrays (the tokenizer's vocabulary, tens of thousands of strings) are
skipped, not decoded. A file that is not GGUF, or is cut short, gives what was read so far:
llama.cpp itself reports a broken file when it loads it.
"""

from __future__ import annotations

import struct
from typing import IO, Any

# value type -> struct format of a fixed-size scalar
_FIXED = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
          10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
_MAX_STRING = 16 * 1024 * 1024  # chat templates are kilobytes; more is a broken file


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


def _skip(f: IO[bytes], vtype: int) -> None:
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
                _skip(f, item)
    else:
        raise ValueError(f"unknown GGUF value type {vtype}")


def scalars(path: str) -> dict[str, Any]:
    """Every scalar key/value of the header (arrays left out)."""
    out: dict[str, Any] = {}
    try:
        with open(path, "rb") as f:
            if f.read(4) != b"GGUF" or _u32(f) not in (2, 3):
                return out
            _u64(f)  # tensor count
            for _ in range(_u64(f)):
                key = _string(f)
                vtype = _u32(f)
                if vtype in _FIXED:
                    fmt = _FIXED[vtype]
                    out[key] = struct.unpack(fmt, _exactly(f, struct.calcsize(fmt)))[0]
                elif vtype == _STRING:
                    out[key] = _string(f)
                else:
                    _skip(f, vtype)
    except (OSError, EOFError, ValueError, struct.error):
        pass
    return out
