"""Where an install's file comes from: the same file already on this host (a shared
filesystem, told by the same size and hash at the path the caller names), else a download
(eldric.modelops.download) whose progress moves the operation."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp

from eldric.modelops.download import DownloadError, discard, fetch, same_file
from eldric.modelops.ops import Op, OpFailed
from eldric.wire.models import InstallRequest

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(name: str) -> str:
    """A model name as a file name of its own (no directory parts, nothing hidden)."""
    return _UNSAFE.sub("_", name).lstrip(".") or "model"


async def shared(req: InstallRequest) -> Path | None:
    """The source file itself when this host sees it (same size and sha256 at req.path);
    without a sha256 to compare nothing is taken for the same file."""
    if req.path is None or req.sha256 is None:
        return None
    if await asyncio.to_thread(same_file, req.path, req.size, req.sha256):
        return Path(req.path)
    return None


async def download(session: aiohttp.ClientSession, url: str, dest: Path, op: Op, *,
                   sha256: str | None = None, headers: dict[str, str] | None = None,
                   size: int | None = None, resume: bool = False) -> tuple[Path, str]:
    """`url` into `dest` (resumed from its part file), the bytes reported on `op`:
    (path, sha256). A failed download fails the operation with its code. Cancelled, the
    part file is kept only to `resume` (a pull of a URL, asked for again); an install's
    is removed."""
    op.update(state="pulling", message=f"downloading {url}", total_bytes=size)
    try:
        got = await fetch(session, url, dest, sha256=sha256, headers=headers,
                          progress=lambda done, total: op.update(
                              completed_bytes=done, total_bytes=total or size))
    except DownloadError as exc:
        raise OpFailed(exc.message, exc.code) from None
    except asyncio.CancelledError:
        if not resume:
            await asyncio.to_thread(discard, dest)
        raise
    return got.path, got.sha256


async def obtain(session: aiohttp.ClientSession, req: InstallRequest, dest: Path,
                 op: Op) -> tuple[Path, str, bool]:
    """The install's file: (path, sha256, downloaded). Not downloaded: the shared path."""
    if (here := await shared(req)) is not None:
        op.update(state="pulling", message=f"same file at {here}: not copied",
                  total_bytes=req.size, completed_bytes=req.size or 0)
        return here, req.sha256.lower(), False  # type: ignore[union-attr]
    if await already(dest, req.sha256, op):
        return dest, req.sha256.lower(), True  # type: ignore[union-attr]
    path, sha = await download(session, req.url, dest, op, sha256=req.sha256,
                               headers=req.headers, size=req.size)
    return path, sha, True


class Exclusive:
    """One operation at a time per destination file: two would write the same part file.
    The second waits (queued, saying why), then finds the file there."""

    def __init__(self) -> None:
        self._locks: dict[Path, tuple[asyncio.Lock, list[int]]] = {}  # lock, its users

    @contextlib.asynccontextmanager
    async def hold(self, dest: Path, op: Op) -> AsyncIterator[None]:
        lock, users = self._locks.setdefault(dest, (asyncio.Lock(), [0]))
        users[0] += 1
        if lock.locked():
            op.update(state="queued", message=f"waiting for another operation on {dest.name}")
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if not users[0]:
                self._locks.pop(dest, None)


async def already(dest: Path, sha256: str | None, op: Op) -> bool:
    """Whether `dest` is already that file (same sha256): then nothing is downloaded."""
    if sha256 is None or not await asyncio.to_thread(same_file, dest, None, sha256):
        return False
    size = (await asyncio.to_thread(dest.stat)).st_size
    op.update(state="verifying", message=f"{dest.name} is already here",
              total_bytes=size, completed_bytes=size)
    return True
