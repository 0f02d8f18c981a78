"""The one SSE splitter (eldric.stream.sse.Framer) under the tap, the filter and the
Anthropic translation: the same events however the bytes are cut, and time linear in the
bytes (it used to copy its whole buffer on every chunk)."""

from __future__ import annotations

import time

from eldric.stream.sse import EventFilter, EventSplitter, Framer

WIRE = (b'data: {"choices":[{"delta":{"content":"a"}}]}\n\n'
        b"data: 2\r\n\r\n: comment\n\n"
        b'data: {"choices":[],"usage":{"total_tokens":3}}\r\n\r\n'
        b"event: x\ndata: y\n\ndata: [DONE]\n\n")
EVENTS = [b'data: {"choices":[{"delta":{"content":"a"}}]}', b"data: 2", b": comment",
          b'data: {"choices":[],"usage":{"total_tokens":3}}', b"event: x\ndata: y",
          b"data: [DONE]"]


def _usage(event: bytes) -> bool:
    return b'"choices":[]' in event


def test_every_cut_gives_the_same_events_to_tap_and_filter():
    kept = WIRE.replace(b'data: {"choices":[],"usage":{"total_tokens":3}}\r\n\r\n', b"")
    for cut in range(len(WIRE) + 1):
        for pieces in ((WIRE[:cut], WIRE[cut:]), (WIRE[:cut], WIRE[cut:cut + 3], WIRE[cut + 3:])):
            seen: list[bytes] = []
            tap, filt = EventSplitter(seen.append), EventFilter(_usage)
            out = b""
            for piece in pieces:
                tap.feed(piece)
                out += filt.feed(piece)
            tap.close()
            out += filt.close()
            assert seen == EVENTS, cut
            assert out == kept, cut  # the kept events byte for byte, blank lines included
    seen = []
    one = EventSplitter(seen.append)
    for i in range(len(WIRE)):
        one.feed(WIRE[i:i + 1])
    one.close()
    assert seen == EVENTS


def test_an_unterminated_last_event_is_given_at_close():
    seen: list[bytes] = []
    s = EventSplitter(seen.append)
    s.feed(b"data: 1\n\ndata: 2")
    assert seen == [b"data: 1"]
    s.close()
    assert seen == [b"data: 1", b"data: 2"]
    f = EventFilter(_usage)
    assert f.feed(b"data: 1\n\ndata: 2") == b"data: 1\n\n" and f.close() == b"data: 2"


def test_ten_megabytes_in_small_chunks_take_linear_time():
    """One 5 MB event (a long tool-call argument, say) and 5 MB of small events, in 1 KiB
    chunks: the copy-the-buffer-per-chunk splitter took minutes on the big event."""
    big = b"data: " + b"x" * (5 << 20) + b"\n\n"
    small = b'data: {"choices":[{"delta":{"content":"token"}}]}\n\n' * 100_000
    wire = big + small
    framer, count, total = Framer(), 0, 0
    t0 = time.perf_counter()
    for i in range(0, len(wire), 1024):
        for event, n in framer.feed(wire[i:i + 1024]):
            count += 1
            total += len(event)
    elapsed = time.perf_counter() - t0
    assert count == 100_001 and total == len(wire) and framer.rest() == b""
    assert elapsed < 5, elapsed  # ~0.3 s here; the old splitter: far over a minute
