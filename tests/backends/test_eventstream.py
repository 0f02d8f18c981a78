"""AWS event-stream framing: eldric's decoder against botocore's own (the SDK's
EventStreamBuffer), byte for byte, in any cut; corrupt streams refused."""

from __future__ import annotations

import struct
import uuid
import zlib

import pytest

from eldric.backends import eventstream as es

botocore_es = pytest.importorskip("botocore.eventstream")

# Every header type the framing defines, in one message.
ALL_TYPES = {":message-type": "event", ":event-type": "contentBlockDelta", "t": True,
             "f": False, "i": 123456, "neg": -7, "b": b"\x00\xffraw",
             "ts": es.Timestamp(1_700_000_000_123),
             "u": uuid.UUID("12345678-1234-5678-1234-567812345678")}


def _boto(data: bytes) -> list:
    buf = botocore_es.EventStreamBuffer()
    buf.add_data(data)
    return list(buf)


def test_every_header_type_decodes_as_botocore_does():
    raw = es.encode(ALL_TYPES, b'{"delta":{"text":"hi"}}')
    [ours] = es.Decoder().feed(raw)
    [theirs] = _boto(raw)
    assert ours.payload == theirs.payload == b'{"delta":{"text":"hi"}}'
    # botocore gives timestamps and ints alike as int, uuids as bytes
    plain = {k: (v.ms if isinstance(v, es.Timestamp) else v.bytes if isinstance(v, uuid.UUID)
                 else v) for k, v in ours.headers.items()}
    assert plain == theirs.headers
    assert ours.headers["ts"] == es.Timestamp(1_700_000_000_123)
    assert ours.headers["u"] == ALL_TYPES["u"]


def test_any_cut_of_a_stream_gives_the_same_messages():
    msgs = [es.event("messageStart", b'{"role":"assistant"}'),
            es.event("contentBlockDelta", b'{"contentBlockIndex":0,"delta":{"text":"a"}}'),
            es.exception("throttlingException", b'{"message":"slow down"}'),
            es.encode({":message-type": "error", ":error-code": "InternalFailure",
                       ":error-message": "boom"}, b"")]
    stream = b"".join(msgs)
    want = [(m.headers, m.payload) for m in _boto(stream)]
    for size in (1, 2, 3, 7, 13, 64, len(stream)):
        dec = es.Decoder()
        got = []
        for i in range(0, len(stream), size):
            got += [(m.headers, m.payload) for m in dec.feed(stream[i:i + size])]
        assert got == want, size
        assert dec.pending == 0
    frames = [es.frame(m) for m in es.Decoder().feed(stream)]
    assert frames == [b'messageStart\n{"role":"assistant"}',
                      b'contentBlockDelta\n{"contentBlockIndex":0,"delta":{"text":"a"}}',
                      b'!throttlingException\n{"message":"slow down"}',
                      b'!InternalFailure\n{"message":"boom"}']
    assert es.split(frames[2]) == ("throttlingException", True, b'{"message":"slow down"}')


def test_a_message_cut_short_stays_pending():
    raw = es.event("metadata", b'{"usage":{}}')
    dec = es.Decoder()
    assert dec.feed(raw[:-1]) == []
    assert dec.pending == len(raw) - 1


def test_a_message_encoded_by_hand_decodes_in_both():
    # The encoding of a known message computed by hand: prelude, CRCs by zlib.crc32.
    headers = b"\x04test\x07\x00\x05value"
    payload = b"{}"
    prelude = struct.pack(">II", 16 + len(headers) + len(payload), len(headers))
    body = prelude + struct.pack(">I", zlib.crc32(prelude)) + headers + payload
    raw = body + struct.pack(">I", zlib.crc32(body))
    assert es.encode({"test": "value"}, payload) == raw
    [m] = es.Decoder().feed(raw)
    assert m.headers == {"test": "value"} and m.payload == b"{}"
    assert _boto(raw)[0].headers == {"test": "value"}


@pytest.mark.parametrize("where", ["prelude_crc", "message_crc", "payload", "length"])
def test_corruption_is_refused_like_botocore(where):
    raw = bytearray(es.event("contentBlockDelta", b'{"delta":{"text":"hello"}}'))
    if where == "prelude_crc":
        raw[8] ^= 0xFF
    elif where == "message_crc":
        raw[-1] ^= 0xFF
    elif where == "payload":
        raw[-6] ^= 0x01
    else:
        raw[3] ^= 0x01  # total length changed: the prelude CRC no longer matches
    with pytest.raises(es.EventStreamError):
        es.Decoder().feed(bytes(raw))
    with pytest.raises(botocore_es.ParserError):
        _boto(bytes(raw))


def test_impossible_lengths_and_header_types_are_refused():
    def with_prelude(total: int, hlen: int, rest: bytes) -> bytes:
        prelude = struct.pack(">II", total, hlen)
        return prelude + struct.pack(">I", zlib.crc32(prelude)) + rest
    with pytest.raises(es.EventStreamError, match="exceed"):
        es.Decoder().feed(with_prelude(16 + es.MAX_HEADERS + 1, es.MAX_HEADERS + 1, b""))
    with pytest.raises(es.EventStreamError, match="does not fit"):
        es.Decoder().feed(with_prelude(15, 0, b""))
    bad = b"\x01x\x0b"  # header type 11 does not exist
    prelude = struct.pack(">II", 16 + len(bad), len(bad))
    body = prelude + struct.pack(">I", zlib.crc32(prelude)) + bad
    with pytest.raises(es.EventStreamError, match="unknown value type"):
        es.Decoder().feed(body + struct.pack(">I", zlib.crc32(body)))
    dup = b"\x01a\x07\x00\x01x" * 2
    prelude = struct.pack(">II", 16 + len(dup), len(dup))
    body = prelude + struct.pack(">I", zlib.crc32(prelude)) + dup
    with pytest.raises(es.EventStreamError, match="twice"):
        es.Decoder().feed(body + struct.pack(">I", zlib.crc32(body)))
