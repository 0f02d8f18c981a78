"""Flow control, written once (eldric.stream.flow) and used by the fast lane (reading
and writing) and the upstream client (reading): the valves themselves, and the lane's
reading side (its writing side and the client's reading side have tests of their own:
test_fast_lane's socket-full test, test_client's slow-reader test)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from eldric.stream.flow import ReadValve, WriteValve


class Transport:
    def __init__(self) -> None:
        self.reading = True
        self.closing = False
        self.data = bytearray()

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_closing(self) -> bool:
        return self.closing

    def write(self, data: bytes) -> None:
        self.data += data


def test_read_valve_pauses_above_high_and_resumes_below_low():
    t = Transport()
    v = ReadValve(100, 10)
    v.transport = t  # type: ignore[assignment]
    v.check(100)
    assert t.reading and not v.paused
    v.check(101)
    assert not t.reading and v.paused
    v.check(50)
    assert not t.reading  # between the marks: stays paused
    v.check(9)
    assert t.reading and not v.paused
    v.check(500)
    t.closing = True
    v.resume()  # a closing transport is left alone
    assert v.paused


async def test_write_valve_holds_a_writer_until_resumed_or_lost():
    v = WriteValve(asyncio.get_running_loop())
    await asyncio.wait_for(v.wait(), 1)  # not paused: at once
    v.pause()
    waiting = asyncio.ensure_future(v.wait())
    await asyncio.sleep(0.01)
    assert not waiting.done()
    v.resume()
    await asyncio.wait_for(waiting, 1)
    v.pause()
    waiting = asyncio.ensure_future(v.wait())
    await asyncio.sleep(0.01)
    v.lost()
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(waiting, 1)


async def test_the_lane_stops_reading_pipelined_bytes_while_it_answers():
    """More than 256 KiB arriving behind a request in progress: the lane stops reading
    (the client's own sending slows down), and reads again once the reply is out."""
    from eldric.serve.protocol import FastProtocol

    loop = asyncio.get_running_loop()
    proto = FastProtocol(SimpleNamespace(loop=loop, conns=set()))  # type: ignore[arg-type]
    t = Transport()
    proto.connection_made(t)  # type: ignore[arg-type]
    proto.task = loop.create_future()  # type: ignore[assignment]  # a reply in progress
    proto.data_received(b"x" * (200 << 10))
    assert t.reading
    proto.data_received(b"x" * (100 << 10))
    assert not t.reading
    proto.task = None
    proto.buf.clear()
    proto._after_reply()
    assert t.reading
