"""A model file downloaded into place: streamed, resumable, sha256-verified.

Model files are gigabytes, so nothing here holds one in memory: the body is read in pieces,
gathered to ~1 MiB, and each MiB is written and hashed in a thread (a slow disk or the hash
must not stall the event loop that also serves inference). The file grows as
`<dest>.part` and is renamed into place only once complete and verified, so a models
directory never shows a half file under a model's name. A cut download keeps its part
file: the next fetch of the same dest re-hashes it and asks the server for the rest with
`Range` (a server that ignores Range sends the whole file again: then it starts over).
Only the same file is resumed: `<part>.src` records the URL and the server's validator
(ETag or Last-Modified) of the part's bytes; a fetch from another URL starts over, and
one whose file changed since (If-Range; a 206 with another validator) too.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp

CHUNK = 1 << 20  # what is written and hashed at once
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")

Progress = Callable[[int, int | None], None]  # (bytes on disk, total bytes if known)


class DownloadError(Exception):
    """A download that did not give the file. `code` is eldric's error code
    (download_failed, checksum_mismatch, disk_full); `status` the server's HTTP status
    when it answered with an error; `resumable` when the part file was kept."""

    def __init__(self, message: str, *, code: str = "download_failed",
                 status: int | None = None, resumable: bool = False):
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.resumable = resumable


@dataclass(frozen=True)
class Fetched:
    path: Path
    size: int
    sha256: str


def part_path(dest: Path) -> Path:
    """Where `dest` grows until it is complete (remove it to drop a resumable download)."""
    return dest.with_name(dest.name + ".part")


def _origin_path(part: Path) -> Path:
    """Beside a part file: the URL its bytes came from and the server's validator (ETag
    or Last-Modified), so a part is resumed only from the same file."""
    return part.with_name(part.name + ".src")


def discard(dest: Path) -> None:
    """Drop `dest`'s resumable download (its part file and what says where it is from)."""
    part = part_path(dest)
    part.unlink(missing_ok=True)
    _origin_path(part).unlink(missing_ok=True)


def _origin(part: Path) -> tuple[str, str | None] | None:
    """(url, validator) of a part file's bytes; None when not recorded (an older part)."""
    try:
        got = json.loads(_origin_path(part).read_text())
        return str(got["url"]), got.get("validator")
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _validator(resp: aiohttp.ClientResponse) -> str | None:
    """What If-Range may name for this reply's file: a strong ETag, else Last-Modified."""
    etag = resp.headers.get("ETag")
    if etag and not etag.startswith("W/"):
        return etag
    return resp.headers.get("Last-Modified")


def sha256_of(path: Path, limit: int | None = None) -> hashlib._Hash:
    """The running hash of a file's first `limit` bytes (all of it by default). Blocking:
    call it in a thread."""
    h = hashlib.sha256()
    left = limit
    with open(path, "rb") as f:
        while left is None or left > 0:
            piece = f.read(CHUNK if left is None else min(CHUNK, left))
            if not piece:
                break
            h.update(piece)
            if left is not None:
                left -= len(piece)
    return h


def same_file(path: str | Path, size: int | None, sha256: str | None) -> bool:
    """Whether `path` is the file of that size and hash (a shared filesystem: the source
    is already here). The size first: the hash is read only when sizes match. Blocking
    (it may read gigabytes): call it in a thread (asyncio.to_thread)."""
    p = Path(path)
    try:
        if not p.is_file() or (size is not None and p.stat().st_size != size):
            return False
        return sha256 is None or sha256_of(p).hexdigest() == sha256.lower()
    except OSError:
        return False


class _Part:
    """The part file open for appending, with the hash of everything in it."""

    def __init__(self, path: Path, keep: int, hasher: hashlib._Hash):
        self.path = path
        self.hasher = hasher
        self.size = keep
        self.f = open(path, "r+b" if keep else "wb")  # noqa: SIM115 - closed by close()
        if keep:
            self.f.truncate(keep)
            self.f.seek(keep)

    def write(self, data: bytes) -> None:
        self.f.write(data)
        self.hasher.update(data)
        self.size += len(data)

    def close(self) -> None:
        """Closed with its bytes on disk (a rename after a crash must not give a short
        file under the model's name)."""
        self.f.flush()
        os.fsync(self.f.fileno())
        self.f.close()

    def abandon(self) -> None:
        """Closed after a failure: what reached the file stays for a resume."""
        try:
            self.f.close()
        except OSError:
            pass  # the write that failed fails again flushing: its error is raised


def _content_range(resp: aiohttp.ClientResponse) -> tuple[int, int | None] | None:
    """(first byte, total or None) of a 206's Content-Range; None without a valid one."""
    m = _CONTENT_RANGE.fullmatch(resp.headers.get("Content-Range", "").strip())
    return (int(m.group(1)), None if m.group(3) == "*" else int(m.group(3))) if m else None


def _complete_at(resp: aiohttp.ClientResponse) -> int | None:
    """The size a 416 names (`Content-Range: bytes */<size>`)."""
    m = re.fullmatch(r"bytes \*/(\d+)", resp.headers.get("Content-Range", "").strip())
    return int(m.group(1)) if m else None


def _total_of(resp: aiohttp.ClientResponse, start: int) -> int | None:
    if resp.status == 206 and (rng := _content_range(resp)) and rng[1] is not None:
        return rng[1]
    return start + resp.content_length if resp.content_length is not None else None


def _io_error(exc: OSError, part: Path) -> DownloadError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DownloadError(f"disk full writing {part}: {exc.strerror}", code="disk_full",
                             resumable=True)
    return DownloadError(f"cannot write {part}: {exc}", resumable=True)


async def fetch(session: aiohttp.ClientSession, url: str, dest: Path, *,
                sha256: str | None = None, headers: dict[str, str] | None = None,
                progress: Progress | None = None,
                timeout: aiohttp.ClientTimeout | None = None) -> Fetched:
    """Download `url` to `dest` (see the module's doc). `progress(done, total)` is called
    as each MiB lands (and once at the start with what a resumed part file holds).
    `timeout` defaults to no total bound, 30 s to connect and 60 s of silence."""
    dest = Path(dest)
    part = part_path(dest)
    want = sha256.lower() if sha256 else None
    timeout = timeout or aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=60)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        have = part.stat().st_size if part.is_file() else 0
    except OSError as exc:
        raise _io_error(exc, part) from None
    origin = _origin(part) if have else None
    if origin is not None and origin[0] != url:
        # a part of another URL's file (the same name pulled from elsewhere): its bytes
        # are no prefix of this one; resumed, they would make a file of both
        await asyncio.to_thread(discard, dest)
        have, origin = 0, None
    hasher = await asyncio.to_thread(sha256_of, part) if have else hashlib.sha256()
    was = origin[1] if origin is not None else None
    out = await _get(session, url, part, headers or {}, progress, timeout, have, hasher, was)
    if out is None:  # the part file is not a prefix of this file (416, changed): anew
        out = await _get(session, url, part, headers or {}, progress, timeout, 0,
                         hashlib.sha256(), None)
        assert out is not None
    size, digest = out
    if want and digest != want:
        await asyncio.to_thread(discard, dest)
        raise DownloadError(f"{url}: sha256 {digest} is not the expected {want}",
                            code="checksum_mismatch")
    try:
        os.replace(part, dest)
    except OSError as exc:
        raise _io_error(exc, part) from None
    _origin_path(part).unlink(missing_ok=True)
    return Fetched(path=dest, size=size, sha256=digest)


async def _get(session: aiohttp.ClientSession, url: str, part: Path, headers: dict[str, str],
               progress: Progress | None, timeout: aiohttp.ClientTimeout, have: int,
               hasher: hashlib._Hash, was: str | None) -> tuple[int, str] | None:
    """The rest of the file after the part file's `have` bytes: (size, sha256) of the
    whole; None when the server says the part is no prefix of it (416), or the file
    changed since the part's bytes came (`was`, their validator: another one now)."""
    req = dict(headers)
    if have:
        req["Range"] = f"bytes={have}-"
        if was:
            req["If-Range"] = was  # changed since: the server sends it whole (200)
    # The file's bytes as sent: a Content-Encoding would hash the decoded bytes instead.
    req.setdefault("Accept-Encoding", "identity")
    try:
        async with session.get(url, headers=req, timeout=timeout) as resp:
            if resp.status == 416 and have:
                # Range past the end: the part is the whole file when the server's size
                # is what it holds (cut just before the rename)
                return (have, hasher.hexdigest()) if _complete_at(resp) == have else None
            if resp.status not in (200, 206):
                body = (await resp.content.read(200)).decode("utf-8", "replace").strip()
                raise DownloadError(f"HTTP {resp.status} from {url}" + (f": {body}" if body
                                                                       else ""),
                                    status=resp.status)
            if have and was and resp.status == 206 and _validator(resp) not in (None, was):
                return None  # a server that ignored If-Range: the rest of another file
            rng = _content_range(resp) if resp.status == 206 else None
            if have and (rng is None or rng[0] != have):
                have, hasher = 0, hashlib.sha256()  # Range ignored (200): from the start
            total = _total_of(resp, have)
            out = await asyncio.to_thread(_Part, part, have, hasher)
            await asyncio.to_thread(_origin_path(part).write_text, json.dumps(
                {"url": url, "validator": _validator(resp)}))
            try:
                await _copy(resp, out, total, progress)
            except BaseException:
                await asyncio.to_thread(out.abandon)
                raise
            await asyncio.to_thread(out.close)
    except (aiohttp.ClientError, TimeoutError) as exc:
        kept = part.stat().st_size if part.exists() else 0
        raise DownloadError(f"download of {url} broke off after {kept} bytes "
                            f"({type(exc).__name__}: {exc}); the part file is kept to "
                            "resume", resumable=True) from None
    except OSError as exc:
        raise _io_error(exc, part) from None
    return out.size, out.hasher.hexdigest()


async def _copy(resp: aiohttp.ClientResponse, out: _Part, total: int | None,
                progress: Progress | None) -> None:
    """The body into the part file, a MiB at a time, one MiB written in a thread while
    the next is read. Whatever arrived is written, also when the body breaks off (the
    part file then resumes from there)."""
    if progress:
        progress(out.size, total)
    pieces: list[bytes] = []  # joined once a MiB: one copy, not a growing buffer's
    held = 0
    writing: asyncio.Future[None] | None = None
    loop = asyncio.get_running_loop()

    async def flush() -> None:
        nonlocal pieces, held, writing
        if writing is not None:
            await writing
            writing = None
            if progress:
                progress(out.size, total)
        if pieces:
            data = b"".join(pieces)
            pieces, held = [], 0
            writing = loop.run_in_executor(None, out.write, data)

    try:
        async for piece in resp.content.iter_any():  # as received: no join of its own
            pieces.append(piece)
            held += len(piece)
            if held >= CHUNK:
                await flush()
    finally:
        await flush()
        await flush()  # and the last write done
    if total is not None and out.size != total:
        raise aiohttp.ClientPayloadError(f"the body ended at {out.size} of {total} bytes")
