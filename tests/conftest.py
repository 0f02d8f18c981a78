"""Shared fixtures: fake upstreams on 127.0.0.1 and eldric itself, started for real."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import re
import socket
import struct
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from eldric import config, registry
from eldric.app import serve
from eldric.cli import load_config

from tests.fakes import anthropic as fake_anthropic
from tests.fakes import controller as fake_controller
from tests.fakes import ollama as fake_ollama
from tests.fakes import openai_server as fake_openai


@contextlib.asynccontextmanager
async def run_eldric(role: str, tmp_path, *, quickstart: bool | None = None,
                     **flags) -> AsyncIterator[dict[str, str]]:
    """Run eldric in this event loop through the real start-up path (config load, bind,
    app build, runner), exactly as the CLI does but without signal handlers. Flags are
    given as python keywords: backend_url="http://…" is --backend-url. `quickstart`: the
    roles' --role all settings below the flags (default: only for role "all")."""
    roles = registry.resolve(role)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ELDRIC_")}
    flags.setdefault("data_dir", str(tmp_path / "data"))
    quick = role == "all" if quickstart is None else quickstart
    loaded = load_config(roles, flags, env, quick=quick)
    async with serving(roles, loaded) as urls:
        yield urls


@contextlib.asynccontextmanager
async def run_role(role: registry.Role, tmp_path, **settings) -> AsyncIterator[str]:
    """A test's own Role (no entry point names it) on a free loopback port, with these
    config fields: its URL."""
    loaded = config.load({role.name: (role.config, {"port": 0, "bind_address": "127.0.0.1",
                                                    **settings})},
                         None, {}, {"process.data_dir": (None, str(tmp_path))})
    async with serving([role], loaded) as urls:
        yield urls[role.name]


@contextlib.asynccontextmanager
async def serving(roles, loaded) -> AsyncIterator[dict[str, str]]:  # type: ignore[no-untyped-def]
    """Serve loaded roles in this event loop while the block runs: their URLs."""
    ready: asyncio.Future[dict[str, str]] = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()
    task = asyncio.create_task(serve(roles, loaded.roles, loaded.process,
                                     on_ready=ready.set_result, stop=stop))
    done, _ = await asyncio.wait([task, ready], return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()  # start-up failed: raise it here
    try:
        yield ready.result()
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def until(pred, timeout: float = 5.0, every: float = 0.02):  # type: ignore[no-untyped-def]
    """Poll `pred` (plain or async) until it returns something true; that is returned.
    Fails the test after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = pred()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(every)


def run_cloud(tmp_path, backends: str, **flags):  # type: ignore[no-untyped-def]
    """A cloud worker on a free loopback port with these --backends."""
    return run_eldric("cloud", tmp_path, port=0, bind="127.0.0.1", backends=backends, **flags)


@pytest.fixture
async def anthropic_server(aiohttp_server):
    """The fake Anthropic Messages API (tests/fakes/anthropic.py)."""
    return await aiohttp_server(fake_anthropic.make_app())


@pytest.fixture
async def fake_openai_server(aiohttp_server):
    return await aiohttp_server(fake_openai.make_app())


@pytest.fixture
async def fake_ollama_server(aiohttp_server):
    return await aiohttp_server(fake_ollama.make_app())


@pytest.fixture
async def fake_controller_server(aiohttp_server):
    return await aiohttp_server(fake_controller.make_app())


def url_of(server) -> str:
    return str(server.make_url("")).rstrip("/")


# ---------------------------------------------------------------- raw HTTP/1.1 on a socket
# For what an HTTP client library hides: framing, Connection headers, which lane answered,
# and how a client leaves (FIN or RST).


def raw_post(path: str, body: bytes, extra: bytes = b"", version: bytes = b"HTTP/1.1") -> bytes:
    """A POST with a Content-Length body; `extra` is more header lines (each ending CRLF)."""
    return (b"POST %s %s\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n%s\r\n%s" % (path.encode(), version, len(body), extra, body))


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One request as a raw upstream sees it: (head, Content-Length body)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head, await reader.readexactly(length)


async def open_raw(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = url.removeprefix("http://").split(":")
    return await asyncio.open_connection(host, int(port))


async def read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    """A reply's status and headers (lower-case names; a repeated name keeps the last)."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        if line:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
    return int(lines[0].split(" ")[1]), headers


async def read_reply(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.x reply: status, headers, body (Content-Length, chunked, or up to the
    close)."""
    status, headers = await read_head(reader)
    if "content-length" in headers:
        body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), 5)
    elif headers.get("transfer-encoding") == "chunked":
        parts = []
        while True:
            size = int((await asyncio.wait_for(reader.readuntil(b"\r\n"), 5)).strip(), 16)
            chunk = await asyncio.wait_for(reader.readexactly(size + 2), 5)
            if size == 0:
                break
            parts.append(chunk[:-2])
        body = b"".join(parts)
    elif headers.get("connection") == "close":  # unsized: up to the close
        body = await asyncio.wait_for(reader.read(), 5)
    else:
        body = b""
    return status, headers, body


def on_fast_lane(headers: dict[str, str]) -> bool:
    """Which lane answered: aiohttp adds `Server: Python/… aiohttp/…`, the fast lane not."""
    return "aiohttp" not in headers.get("server", "")


def leave(writer: asyncio.StreamWriter, how: str) -> None:
    """The client goes away: "fin" shuts its sending side (shutdown(SHUT_WR), as a client
    that closes normally; the socket stays open to see what comes back), "rst" resets the
    connection (SO_LINGER 0, then close)."""
    if how == "fin":
        writer.write_eof()
        return
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def metric(url: str, series: str, ssl=True) -> float:  # type: ignore[no-untyped-def]
    """The value of one series on `url`/metrics (0 when it is not there yet), e.g.
    'eldric_client_disconnects_total{role="worker"}'; `ssl`: an SSLContext for https."""
    import aiohttp

    async with aiohttp.ClientSession() as s, s.get(url + "/metrics", ssl=ssl) as r:
        text = await r.text()
    m = re.search(r"^" + re.escape(series) + r" (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    """eldric as a real subprocess (for CLI, signals, faults and the quick start).

    Its output goes to a file, not a pipe: a pipe nobody reads fills up (64 KiB) and the
    process then blocks writing its log lines."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None):
        import tempfile

        self.args = args
        full_env = {**os.environ, **(env or {})}
        self.log = tempfile.TemporaryFile()
        self.p = subprocess.Popen([sys.executable, "-m", "eldric", *args],
                                  stdout=self.log, stderr=subprocess.STDOUT, env=full_env)

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode("utf-8", "replace")

    def wait_http(self, url: str, timeout: float = 15) -> None:
        import urllib.request

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.p.poll() is not None:
                raise AssertionError(f"eldric exited {self.p.returncode}: {self.output()}")
            try:
                urllib.request.urlopen(url, timeout=1).read()
                return
            except Exception:
                time.sleep(0.1)
        raise AssertionError(f"{url} did not answer within {timeout}s")

    def stop(self) -> str:
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(15)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        return self.output()


@pytest.fixture
def eldric_proc(tmp_path) -> Iterator:
    """Start eldric subprocesses, stopped after the test. Without a --data-dir (or an
    XDG_DATA_HOME) of its own a process keeps its state in the test's temporary
    directory, never in the user's."""
    procs: list[Proc] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Proc:
        if "--data-dir" not in args and "XDG_DATA_HOME" not in (env or {}):
            args = (*args, "--data-dir", str(tmp_path / "eldric-data"))
        proc = Proc(list(args), env)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.stop()


def redis_argv(tmp_path, port: int, *, persist: bool = False) -> list[str]:
    """How to run redis-server on a loopback port (on CI it must be there: .ci/run
    installs it); `persist`: append-only file, fsync'd, so data survives a restart."""
    import shutil

    exe = shutil.which("redis-server")
    if exe is None:
        if os.environ.get("CI") == "true":
            pytest.fail("redis-server is missing: .ci/run must install it")
        pytest.skip("redis-server not installed")
    durability = (["--appendonly", "yes", "--appendfsync", "always"] if persist
                  else ["--appendonly", "no"])
    return [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", *durability,
            "--dir", str(tmp_path)]


def start_redis(argv: list[str], port: int) -> subprocess.Popen:
    """Start redis-server and wait until it accepts connections."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise AssertionError("redis-server did not start") from None
            time.sleep(0.05)


@pytest.fixture
def redis_url(tmp_path) -> Iterator[str]:
    """A real redis-server on a free loopback port, stopped after the test."""
    port = free_port()
    proc = start_redis(redis_argv(tmp_path, port), port)
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(10)
