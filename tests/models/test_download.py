"""eldric.modelops.download against a real aiohttp file server on 127.0.0.1: whole,
resumed after a cut, from a server that ignores Range, with a wrong checksum, HTTP
errors, a full disk, and never holding the file in memory."""

from __future__ import annotations

import hashlib
import os
import tracemalloc
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from eldric.modelops.download import (CHUNK, DownloadError, fetch, part_path, same_file)
from tests.conftest import free_port, url_of

MiB = 1 << 20


def _blob(path: Path, size: int) -> bytes:
    data = (os.urandom(4096) * (size // 4096 + 1))[:size]
    path.write_bytes(data)
    return data


class Files:
    """A file server: /f serves the file with Range (aiohttp's FileResponse); /cut sends
    the first `cut` bytes of the whole then drops the connection, once; /norange answers
    every request with the whole file (200) whatever its Range; /status/{n} is that HTTP
    status. Every request's Range header is recorded."""

    def __init__(self, path: Path, cut: int):
        self.path, self.cut, self.ranges, self.cuts = path, cut, [], 1

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/f", self.file)
        app.router.add_get("/cut", self.cutting)
        app.router.add_get("/norange", self.norange)
        app.router.add_get("/status/{n}", self.status)
        return app

    async def file(self, request: web.Request) -> web.StreamResponse:
        self.ranges.append(request.headers.get("Range"))
        return web.FileResponse(self.path)

    async def cutting(self, request: web.Request) -> web.StreamResponse:
        if not self.cuts:
            return await self.file(request)
        self.cuts -= 1
        self.ranges.append(request.headers.get("Range"))
        resp = web.StreamResponse()
        resp.content_length = self.path.stat().st_size
        await resp.prepare(request)
        await resp.write(self.path.read_bytes()[: self.cut])
        assert request.transport is not None
        request.transport.close()  # the connection ends mid-body
        return resp

    async def norange(self, request: web.Request) -> web.StreamResponse:
        self.ranges.append(request.headers.get("Range"))
        return web.Response(body=self.path.read_bytes())

    async def status(self, request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["n"]), text="no such model")


@pytest.fixture
async def files(aiohttp_server, tmp_path):
    src = tmp_path / "src.gguf"
    data = _blob(src, 5 * MiB + 123)
    f = Files(src, cut=3 * MiB + 7)
    server = await aiohttp_server(f.app())
    f.url = url_of(server)  # type: ignore[attr-defined]
    f.data = data  # type: ignore[attr-defined]
    f.sha = hashlib.sha256(data).hexdigest()  # type: ignore[attr-defined]
    return f


async def test_a_whole_file_lands_verified_with_progress(files, tmp_path):
    dest = tmp_path / "models" / "Model-Q4_K_M.gguf"  # the directory is made
    seen: list[tuple[int, int | None]] = []
    async with aiohttp.ClientSession() as s:
        got = await fetch(s, files.url + "/f", dest, sha256=files.sha.upper(),
                          progress=lambda done, total: seen.append((done, total)))
    assert dest.read_bytes() == files.data and not part_path(dest).exists()
    assert (got.path, got.size, got.sha256) == (dest, len(files.data), files.sha)
    assert seen[0] == (0, len(files.data)) and seen[-1] == (len(files.data), len(files.data))
    dones = [d for d, _ in seen]
    assert dones == sorted(dones) and len(seen) >= 5  # about one a MiB
    assert files.ranges == [None]


async def test_a_cut_download_resumes_with_range_and_is_whole(files, tmp_path):
    dest = tmp_path / "m.gguf"
    async with aiohttp.ClientSession() as s:
        with pytest.raises(DownloadError) as cut:
            await fetch(s, files.url + "/cut", dest, sha256=files.sha)
        assert cut.value.code == "download_failed" and cut.value.resumable
        assert not dest.exists()
        kept = part_path(dest).stat().st_size
        # what aiohttp handed over before it saw the cut (it drops what it buffered)
        assert 0 < kept <= files.cut
        assert part_path(dest).read_bytes() == files.data[:kept]
        seen: list[tuple[int, int | None]] = []
        got = await fetch(s, files.url + "/cut", dest, sha256=files.sha,
                          progress=lambda d, t: seen.append((d, t)))
    assert files.ranges == [None, f"bytes={kept}-"]
    assert seen[0] == (kept, len(files.data))  # the resumed part counts from the start
    assert got.sha256 == files.sha and dest.read_bytes() == files.data
    assert not part_path(dest).exists()


async def test_a_server_that_ignores_range_starts_over(files, tmp_path):
    dest = tmp_path / "m.gguf"
    part_path(dest).write_bytes(files.data[: 2 * MiB])
    async with aiohttp.ClientSession() as s:
        got = await fetch(s, files.url + "/norange", dest, sha256=files.sha)
    assert files.ranges == [f"bytes={2 * MiB}-"]  # asked, and was sent it all (200)
    assert got.size == len(files.data) and dest.read_bytes() == files.data


async def test_a_part_that_is_already_whole_is_finished_without_a_body(files, tmp_path):
    dest = tmp_path / "m.gguf"
    part_path(dest).write_bytes(files.data)  # cut just before its rename
    async with aiohttp.ClientSession() as s:
        got = await fetch(s, files.url + "/f", dest, sha256=files.sha)
    assert files.ranges == [f"bytes={len(files.data)}-"]  # answered 416 by FileResponse
    assert got.sha256 == files.sha and dest.read_bytes() == files.data


async def test_a_part_longer_than_the_file_starts_over(files, tmp_path):
    dest = tmp_path / "m.gguf"
    part_path(dest).write_bytes(files.data + b"junk" * 1000)  # another file's part
    async with aiohttp.ClientSession() as s:
        got = await fetch(s, files.url + "/f", dest, sha256=files.sha)
    assert files.ranges == [f"bytes={len(files.data) + 4000}-", None]
    assert got.size == len(files.data) and dest.read_bytes() == files.data


async def test_a_checksum_mismatch_leaves_nothing(files, tmp_path):
    dest = tmp_path / "m.gguf"
    async with aiohttp.ClientSession() as s:
        with pytest.raises(DownloadError) as err:
            await fetch(s, files.url + "/f", dest, sha256="0" * 64)
    assert err.value.code == "checksum_mismatch" and files.sha in err.value.message
    assert not dest.exists() and not part_path(dest).exists()


async def test_a_resumed_part_that_was_not_this_file_fails_its_checksum(files, tmp_path):
    """The part's bytes are hashed again before resuming: a part of other content is
    caught by the checksum (and removed, so the next try starts clean)."""
    dest = tmp_path / "m.gguf"
    part_path(dest).write_bytes(b"x" * MiB)
    async with aiohttp.ClientSession() as s:
        with pytest.raises(DownloadError) as err:
            await fetch(s, files.url + "/f", dest, sha256=files.sha)
        assert err.value.code == "checksum_mismatch" and not part_path(dest).exists()
        assert (await fetch(s, files.url + "/f", dest, sha256=files.sha)).sha256 == files.sha


@pytest.mark.parametrize("status", [404, 500])
async def test_http_errors_name_the_status_and_write_nothing(files, tmp_path, status):
    dest = tmp_path / "m.gguf"
    async with aiohttp.ClientSession() as s:
        with pytest.raises(DownloadError) as err:
            await fetch(s, f"{files.url}/status/{status}", dest)
    assert err.value.code == "download_failed" and err.value.status == status
    assert f"HTTP {status}" in err.value.message
    assert not dest.exists() and not part_path(dest).exists()


async def test_a_server_that_is_not_there_is_a_download_error(tmp_path):
    async with aiohttp.ClientSession() as s:
        with pytest.raises(DownloadError) as err:
            await fetch(s, f"http://127.0.0.1:{free_port()}/f", tmp_path / "m.gguf")
    assert err.value.code == "download_failed" and err.value.status is None


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
async def test_a_full_disk_is_disk_full(files, tmp_path):
    dest = tmp_path / "m.gguf"
    part_path(dest).symlink_to("/dev/full")  # every write: ENOSPC, from the kernel
    async with aiohttp.ClientSession() as s:
        with pytest.raises(DownloadError) as err:
            await fetch(s, files.url + "/f", dest)
    assert err.value.code == "disk_full" and not dest.exists(), err.value.message


async def test_the_file_is_never_held_in_memory(aiohttp_server, tmp_path):
    src = tmp_path / "big.gguf"
    _blob(src, 48 * MiB)
    server = await aiohttp_server(Files(src, 0).app())
    dest = tmp_path / "out.gguf"
    async with aiohttp.ClientSession() as s:
        tracemalloc.start()
        try:
            got = await fetch(s, url_of(server) + "/f", dest)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert got.size == 48 * MiB and dest.stat().st_size == 48 * MiB
    assert peak < 8 * CHUNK, peak  # a few MiB in flight, not the file's 48


def test_same_file_compares_size_then_hash(tmp_path):
    f = tmp_path / "a.gguf"
    data = _blob(f, 3 * MiB)
    sha = hashlib.sha256(data).hexdigest()
    assert same_file(f, len(data), sha) and same_file(str(f), len(data), sha.upper())
    assert not same_file(f, len(data) + 1, sha)
    assert not same_file(f, len(data), "0" * 64)
    assert not same_file(tmp_path / "missing.gguf", len(data), sha)
    assert not same_file(tmp_path, None, None)  # a directory is no file


async def test_a_part_of_another_url_is_not_resumed(files, aiohttp_server, tmp_path):
    """A cut pull of a model from one URL, then a pull of the same name from another URL
    (another quantisation, another mirror) without a checksum: the part is not the new
    file's prefix, so it is not resumed (it was: the model was the first file's bytes
    followed by the second's, installed as if whole)."""
    other = tmp_path / "other.gguf"
    data = _blob(other, 5 * MiB + 123)
    assert data != files.data
    app = web.Application()
    app.router.add_static("/", tmp_path)
    server = await aiohttp_server(app)
    dest = tmp_path / "models" / "m.gguf"
    async with aiohttp.ClientSession() as s:
        with pytest.raises(DownloadError):
            await fetch(s, files.url + "/cut", dest)
        assert part_path(dest).stat().st_size > 0
        got = await fetch(s, url_of(server) + "/other.gguf", dest)
    assert dest.read_bytes() == data and got.sha256 == hashlib.sha256(data).hexdigest()
    assert [p.name for p in dest.parent.iterdir()] == ["m.gguf"]  # nothing of the first


async def test_a_file_changed_since_the_cut_is_fetched_anew(aiohttp_server, tmp_path):
    """The same URL, but the file there changed after the cut (a new revision under the
    same name): the resume asks with If-Range, and the server sends the new file whole
    instead of the rest of it after the old one's bytes."""
    served = tmp_path / "srv"
    served.mkdir()
    _blob(served / "m.gguf", 5 * MiB + 123)
    app = web.Application()
    app.router.add_static("/", served)
    url = url_of(await aiohttp_server(app)) + "/m.gguf"
    dest = tmp_path / "models" / "m.gguf"

    def stop(done: int, _total: int | None) -> None:
        if done >= 2 * MiB:
            raise RuntimeError("cut")

    async with aiohttp.ClientSession() as s:
        with pytest.raises(RuntimeError):
            await fetch(s, url, dest, progress=stop)
        assert part_path(dest).stat().st_size >= 2 * MiB
        st = (served / "m.gguf").stat()
        new = _blob(served / "m.gguf", 5 * MiB + 123)
        os.utime(served / "m.gguf", (st.st_atime, st.st_mtime + 10))
        got = await fetch(s, url, dest)
    assert dest.read_bytes() == new and got.sha256 == hashlib.sha256(new).hexdigest()
