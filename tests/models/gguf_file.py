"""GGUF files for tests, laid out as llama.cpp's gguf.md says: a v3 header, key/values,
tensor infos, then (optionally) filler standing in for the tensor data."""

from __future__ import annotations

import struct


def _s(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def string(text: str) -> tuple[int, bytes]:
    return 8, _s(text)


def u32(n: int) -> tuple[int, bytes]:
    return 4, struct.pack("<I", n)


def tokens(*words: str) -> tuple[int, bytes]:  # an array (type 9) of strings (type 8)
    return 9, struct.pack("<IQ", 8, len(words)) + b"".join(_s(w) for w in words)


def gguf_bytes(kvs: dict[str, tuple[int, bytes]],
               tensors: list[tuple[str, tuple[int, ...], int]] = (), data: int = 0) -> bytes:
    """kvs: key -> (value type, encoded value); tensors: (name, dims, ggml type);
    `data` bytes of filler after the header."""
    body = b"".join(_s(k) + struct.pack("<I", t) + v for k, (t, v) in kvs.items())
    infos = b"".join(_s(name) + struct.pack("<I", len(dims)) +
                     struct.pack(f"<{len(dims)}Q", *dims) + struct.pack("<IQ", ggml, 0)
                     for name, dims, ggml in tensors)
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs)) + body + infos
    return head + bytes(-len(head) % 32) + b"\x5a" * data


def small_model(file_type: int = 7, data: int = 0) -> bytes:
    """A llama-architecture file with 3 tensors (4*8 + 8 + 2*3*4 = 64 parameters)."""
    return gguf_bytes({"general.architecture": string("llama"),
                       "general.file_type": u32(file_type),
                       "tokenizer.ggml.tokens": tokens("a", "b", "c"),
                       "general.size_label": string("1B")},
                      [("token_embd.weight", (4, 8), 8), ("output_norm.weight", (8,), 0),
                       ("blk.0.attn_q.weight", (2, 3, 4), 8)], data)
