"""eldric.backends.framing: a native reply cut into frames however the bytes arrive, and
the worker's --backend-options flag read as JSON (WorkerConfig.backend_options)."""

from __future__ import annotations

import pytest

from eldric import registry
from eldric.backends.framing import frames
from eldric.cli import load_config
from eldric.errors import ConfigError


def _cut(framing: str, body: bytes, size: int) -> list[bytes]:
    cutter = frames(framing)
    out: list[bytes] = []
    for i in range(0, len(body), size):
        out.extend(cutter.feed(body[i:i + size]))
    return out + cutter.close()


@pytest.mark.parametrize("size", [1, 3, 7, 1000])
def test_sse_events_and_ndjson_lines_whatever_the_chunks(size):
    sse = b"event: a\ndata: {\"x\": 1}\n\ndata: 2\r\n\r\n: comment\n\ndata: last"
    assert _cut("sse", sse, size) == [b'event: a\ndata: {"x": 1}', b"data: 2",
                                      b": comment", b"data: last"]
    nd = b'{"a": 1}\n\n{"b": 2}\r\n{"c": 3}'
    assert _cut("ndjson", nd, size) == [b'{"a": 1}', b'{"b": 2}', b'{"c": 3}']
    assert _cut("json", b'{"whole": true}', size) == [b'{"whole": true}']
    assert _cut("json", b"", size) == []


def test_an_unknown_framing_is_refused():
    with pytest.raises(ValueError):
        frames("xml")


def test_backend_options_flag_is_json(tmp_path):
    roles = registry.resolve("worker")
    loaded = load_config(roles, {"backend_options": '{"project": "p", "models": ["m"]}',
                                 "data_dir": str(tmp_path)}, {})
    assert loaded.roles["worker"].backend_options == {"project": "p", "models": ["m"]}
    with pytest.raises(ConfigError, match="backend-options"):
        load_config(roles, {"backend_options": "[1, 2]", "data_dir": str(tmp_path)}, {})
