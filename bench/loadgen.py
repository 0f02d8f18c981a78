"""A small, bounded, closed-loop HTTP/1.1 load generator for the eldric benchmark.

    python bench/loadgen.py --url http://127.0.0.1:9100/v1/chat/completions \
        --concurrency 64 --duration 5 --warmup 1 [--stream] [--client raw|aiohttp] \
        [--header "Authorization: Bearer KEY"] [--cafile CA.pem]

`concurrency` connections (keep-alive), each sending one POST after the other (no
pipelining). Requests that *start* during the warm-up are not measured; the run then lasts
`duration` seconds or until `max_requests` requests in total were sent, whichever comes
first. The result is one JSON object on stdout:

    rps            completed 200 replies per second in the measured window
    p50_ms/p99_ms  latency of complete replies (request written -> last byte parsed)
    ttft_*_ms      with --stream: time until the first `data:` SSE chunk arrived
    failures       non-200 replies + transport errors/timeouts in the measured window

Two clients:
- ``raw``: an asyncio.Protocol per connection with a minimal HTTP/1.1 response parser
  (Content-Length and chunked bodies). The request bytes are built once. Cheapest per
  request, so the client takes as little CPU as possible from the server under test.
- ``aiohttp``: aiohttp.ClientSession with a TCPConnector(limit=concurrency), keep-alive.

Both run on uvloop. Every loop is bounded by time and by count. An https:// URL is
spoken over TLS (verified against --cafile, or the system CAs); each connection does its
handshake once and is then kept alive, so the handshake is not part of a request's latency
(except for a connection that had to be re-opened). --header adds a request header to every
request (repeatable).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import socket
import ssl
import sys
import time
from urllib.parse import urlsplit

DEFAULT_BODY = {"model": "eldric-mock",
                "messages": [{"role": "user", "content": "Say hello to the benchmark."}]}

perf = time.perf_counter


class Stats:
    """What the workers record; shared by all of them (one event loop, no locks)."""

    def __init__(self, t_start: float, t_end: float, max_requests: int):
        self.t_start = t_start  # end of warm-up: requests started after it are measured
        self.t_end = t_end
        self.max_requests = max_requests
        self.issued = 0
        self.connections: int | None = None  # connections opened (raw client only)
        self.latencies: list[float] = []
        self.ttfts: list[float] = []
        self.completed_in_window = 0  # 200 replies that completed in [t_start, t_end]
        self.statuses: dict[int, int] = {}  # non-200 statuses in the measured window
        self.errors: dict[str, int] = {}  # transport errors / timeouts in the window
        self.warmup_failures = 0
        self.last_done = t_start
        self.stopped_by_count = False

    def may_issue(self) -> bool:
        if self.issued >= self.max_requests:
            self.stopped_by_count = True
            return False
        return perf() < self.t_end

    def ok(self, t0: float, t_done: float, t_first: float | None) -> None:
        if t0 >= self.t_start:
            if t_done <= self.t_end:
                self.latencies.append(t_done - t0)
                if t_first is not None:
                    self.ttfts.append(t_first - t0)
        if self.t_start <= t_done <= self.t_end:
            self.completed_in_window += 1
            if t_done > self.last_done:
                self.last_done = t_done

    def failed(self, t0: float, status: int | None, error: str | None) -> None:
        if t0 < self.t_start:
            self.warmup_failures += 1
            return
        if status is not None:
            self.statuses[status] = self.statuses.get(status, 0) + 1
        else:
            self.errors[error or "error"] = self.errors.get(error or "error", 0) + 1


# --------------------------------------------------------------------------- raw client


class _Conn(asyncio.Protocol):
    """One keep-alive connection; one request at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop, stream: bool):
        self.loop = loop
        self.stream = stream
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.buf = bytearray()
        self.waiter: asyncio.Future | None = None
        self._reset()

    def _reset(self) -> None:
        self.status: int | None = None
        self.pos = 0
        self.clen: int | None = None
        self.chunked = False
        self.close_after = False
        self.t_first: float | None = None
        self.seen = b""  # tail of the stream body, until a `data:` was seen

    # -- asyncio callbacks
    def connection_made(self, transport) -> None:  # type: ignore[no-untyped-def]
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.waiter is not None and not self.waiter.done():
            try:
                self._parse()
            except Exception as exc:  # a malformed reply: fail this request
                self.closed = True
                self.transport.close()  # type: ignore[union-attr]
                if not self.waiter.done():
                    self.waiter.set_exception(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection closed by peer"))

    # -- parsing
    def _parse(self) -> None:
        buf = self.buf
        if self.status is None:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = bytes(buf[:end]).split(b"\r\n")
            self.status = int(lines[0][9:12])
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    self.clen = int(value)
                elif name == b"transfer-encoding":
                    self.chunked = b"chunked" in value.lower()
                elif name == b"connection":
                    self.close_after = b"close" in value.lower()
            self.pos = end + 4
        if self.chunked:
            self._parse_chunked()
        elif self.clen is not None:
            if len(buf) - self.pos >= self.clen:
                if self.stream and self.t_first is None and \
                        buf.find(b"data:", self.pos, self.pos + self.clen) >= 0:
                    self.t_first = perf()
                self._done(self.pos + self.clen)
        # neither: body until close (not expected from the servers under test)

    def _parse_chunked(self) -> None:
        buf = self.buf
        while True:
            nl = buf.find(b"\r\n", self.pos)
            if nl < 0:
                return
            size = int(bytes(buf[self.pos:nl]).split(b";", 1)[0], 16)
            if size == 0:
                end = buf.find(b"\r\n\r\n", nl)  # no trailers expected: "0\r\n\r\n"
                if end < 0:
                    return
                self._done(end + 4)
                return
            start = nl + 2
            if len(buf) < start + size + 2:
                return
            if self.stream and self.t_first is None:
                self.seen = (self.seen + bytes(buf[start:start + size]))[-4096:]
                if b"data:" in self.seen:
                    self.t_first = perf()
            self.pos = start + size + 2

    def _done(self, end: int) -> None:
        t_done = perf()
        del self.buf[:end]
        result = (self.status, self.t_first, t_done)
        if self.close_after:
            self.closed = True
            self.transport.close()  # type: ignore[union-attr]
        self._reset()
        self.waiter.set_result(result)  # type: ignore[union-attr]

    # -- one request
    def request(self, raw: bytes) -> asyncio.Future:
        self.waiter = self.loop.create_future()
        self._reset()
        self.buf.clear()
        self.transport.write(raw)  # type: ignore[union-attr]
        return self.waiter


def _build_request(host: str, port: int, path: str, body: bytes,
                   headers: dict[str, str] | None = None) -> bytes:
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    return (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Content-Type: application/json\r\nAccept: */*\r\n{extra}"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


async def _raw_worker(stats: Stats, host: str, port: int, raw: bytes, stream: bool,
                      timeout: float, ssl_ctx: ssl.SSLContext | None) -> None:
    loop = asyncio.get_running_loop()
    conn: _Conn | None = None
    try:
        while stats.may_issue():
            if conn is None or conn.closed:
                try:
                    _, conn = await asyncio.wait_for(
                        loop.create_connection(
                            lambda: _Conn(loop, stream), host, port, ssl=ssl_ctx,
                            server_hostname=host if ssl_ctx else None),
                        timeout)
                    stats.connections = (stats.connections or 0) + 1
                except (OSError, TimeoutError, ssl.SSLError) as exc:
                    stats.issued += 1
                    stats.failed(perf(), None, f"connect:{type(exc).__name__}")
                    conn = None
                    await asyncio.sleep(0.05)
                    continue
            stats.issued += 1
            t0 = perf()
            fut = conn.request(raw)
            timer = loop.call_later(
                timeout, lambda f=fut: f.done() or f.set_exception(TimeoutError()))
            try:
                status, t_first, t_done = await fut
            except Exception as exc:  # transport error, timeout, malformed reply
                stats.failed(t0, None, type(exc).__name__)
                conn.closed = True
                conn.transport.close()  # type: ignore[union-attr]
                conn = None
                continue
            finally:
                timer.cancel()
            if status == 200:
                stats.ok(t0, t_done, t_first)
            else:
                stats.failed(t0, status, None)
    finally:
        if conn is not None and conn.transport is not None:
            conn.transport.close()


async def run_raw(url: str, body: bytes, concurrency: int, stats: Stats, stream: bool,
                  timeout: float, headers: dict[str, str],
                  ssl_ctx: ssl.SSLContext | None) -> None:
    parts = urlsplit(url)
    tls = parts.scheme == "https"
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if tls else 80)
    raw = _build_request(host, port, parts.path or "/", body, headers)
    await asyncio.gather(*(_raw_worker(stats, host, port, raw, stream, timeout,
                                       ssl_ctx if tls else None)
                           for _ in range(concurrency)))


# ----------------------------------------------------------------------- aiohttp client


async def run_aiohttp(url: str, body: bytes, concurrency: int, stats: Stats, stream: bool,
                      timeout: float, extra_headers: dict[str, str],
                      ssl_ctx: ssl.SSLContext | None) -> None:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=concurrency, keepalive_timeout=60,
                                     ssl=ssl_ctx if ssl_ctx is not None else True)
    headers = {"Content-Type": "application/json", **extra_headers}
    tmo = aiohttp.ClientTimeout(total=timeout)
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False,
                                     skip_auto_headers=("User-Agent",)) as session:

        async def worker() -> None:
            while stats.may_issue():
                stats.issued += 1
                t0 = perf()
                t_first = None
                try:
                    async with session.post(url, data=body, headers=headers,
                                            timeout=tmo) as resp:
                        if stream:
                            seen = b""
                            async for chunk in resp.content.iter_any():
                                if t_first is None:
                                    seen = (seen + chunk)[-4096:]
                                    if b"data:" in seen:
                                        t_first = perf()
                        else:
                            await resp.read()
                        status = resp.status
                except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                    stats.failed(t0, None, type(exc).__name__)
                    await asyncio.sleep(0.01)
                    continue
                t_done = perf()
                if status == 200:
                    stats.ok(t0, t_done, t_first)
                else:
                    stats.failed(t0, status, None)

        await asyncio.gather(*(worker() for _ in range(concurrency)))


# ------------------------------------------------------------------------------ main


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return None
    s = sorted(values)
    k = max(0, min(len(s) - 1, math.ceil(q / 100 * len(s)) - 1))
    return s[k]


def _ms(v: float | None) -> float | None:
    return None if v is None else round(v * 1000, 3)


async def run(url: str, *, concurrency: int, duration: float, warmup: float,
              max_requests: int, stream: bool, client: str, timeout: float,
              body: bytes, headers: dict[str, str] | None = None,
              ssl_ctx: ssl.SSLContext | None = None) -> dict:
    t_begin, cpu_begin = perf(), time.process_time()
    stats = Stats(t_begin + warmup, t_begin + warmup + duration, max_requests)
    runner = run_raw if client == "raw" else run_aiohttp
    hard_limit = warmup + duration + timeout + 5
    try:
        async with asyncio.timeout(hard_limit):
            await runner(url, body, concurrency, stats, stream, timeout, headers or {},
                         ssl_ctx)
    except TimeoutError:
        stats.errors["hard_time_limit"] = stats.errors.get("hard_time_limit", 0) + 1
    t_finish = perf()
    cpu_used = time.process_time() - cpu_begin
    window_end = stats.last_done if stats.stopped_by_count else stats.t_end
    window = max(1e-9, min(window_end, t_finish) - stats.t_start)
    failures = sum(stats.statuses.values()) + sum(stats.errors.values())
    lat = stats.latencies
    return {
        "url": url, "client": client, "concurrency": concurrency, "stream": stream,
        "warmup_s": warmup, "duration_s": duration, "window_s": round(window, 3),
        "max_requests": max_requests, "stopped_by_count": stats.stopped_by_count,
        "issued": stats.issued, "completed": stats.completed_in_window,
        "connections_opened": stats.connections,
        "sampled": len(lat),
        "rps": round(stats.completed_in_window / window, 1),
        "p50_ms": _ms(percentile(lat, 50)), "p90_ms": _ms(percentile(lat, 90)),
        "p99_ms": _ms(percentile(lat, 99)), "max_ms": _ms(max(lat) if lat else None),
        "ttft_p50_ms": _ms(percentile(stats.ttfts, 50)) if stream else None,
        "ttft_p99_ms": _ms(percentile(stats.ttfts, 99)) if stream else None,
        "failures": failures,
        "non200": {str(k): v for k, v in sorted(stats.statuses.items())},
        "errors": stats.errors, "warmup_failures": stats.warmup_failures,
        "elapsed_s": round(t_finish - t_begin, 3),
        # the load generator's own CPU over the run (warm-up included, start-up not), and
        # its share of one core: near 100 % means the client, not the server, set the pace
        "cpu_s": round(cpu_used, 3),
        "cpu_pct": round(100 * cpu_used / max(1e-9, t_finish - t_begin), 1),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", required=True)
    p.add_argument("--concurrency", "-c", type=int, default=1)
    p.add_argument("--duration", "-d", type=float, default=5.0)
    p.add_argument("--warmup", "-w", type=float, default=1.0)
    p.add_argument("--max-requests", "-n", type=int, default=200_000)
    p.add_argument("--stream", action="store_true", help="request SSE, measure TTFT")
    p.add_argument("--client", choices=("raw", "aiohttp"), default="raw")
    p.add_argument("--timeout", type=float, default=10.0, help="per request, seconds")
    p.add_argument("--body", help="JSON request body (default: a short chat request)")
    p.add_argument("--header", "-H", action="append", default=[], metavar="'NAME: VALUE'",
                   help="extra request header (repeatable), e.g. 'Authorization: Bearer K'")
    p.add_argument("--cafile", help="CA bundle (PEM) to verify an https:// server with")
    a = p.parse_args(argv)
    if a.duration <= 0 or a.duration > 600 or a.warmup < 0 or a.warmup > 60:
        p.error("duration must be in (0, 600], warmup in [0, 60]")
    if not 1 <= a.concurrency <= 1024 or not 1 <= a.max_requests <= 10_000_000:
        p.error("concurrency must be in 1..1024, max-requests in 1..10M")
    headers: dict[str, str] = {}
    for h in a.header:
        name, sep, value = h.partition(":")
        if not sep or not name.strip() or "\r" in h or "\n" in h:
            p.error(f"--header must be 'Name: value', got {h!r}")
        headers[name.strip()] = value.strip()
    ssl_ctx = None
    if urlsplit(a.url).scheme == "https":
        ssl_ctx = ssl.create_default_context(cafile=a.cafile)
    elif a.cafile:
        p.error("--cafile needs an https:// URL")
    body = json.loads(a.body) if a.body else dict(DEFAULT_BODY)
    if a.stream:
        body["stream"] = True
    raw_body = json.dumps(body, separators=(",", ":")).encode()
    try:
        import uvloop
        runner = uvloop.run
    except ImportError:  # pragma: no cover
        runner = asyncio.run
    result = runner(run(a.url, concurrency=a.concurrency, duration=a.duration,
                        warmup=a.warmup, max_requests=a.max_requests, stream=a.stream,
                        client=a.client, timeout=a.timeout, body=raw_body,
                        headers=headers, ssl_ctx=ssl_ctx))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
