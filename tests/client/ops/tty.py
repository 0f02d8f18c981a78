"""An eldric command in a pseudo-terminal (stdlib pty): what a person at a terminal sees,
read as it is written."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import pty
import re
import sys
import termios
from collections.abc import AsyncIterator
from pathlib import Path

from tests.client.ops.cli import ROOT


class Term:
    def __init__(self, proc: asyncio.subprocess.Process, master: int) -> None:
        self.proc, self.master = proc, master
        self.output = b""
        self.more = asyncio.Event()
        asyncio.get_running_loop().add_reader(master, self._read)

    def _read(self) -> None:
        try:
            chunk = os.read(self.master, 65536)
        except OSError:  # the child closed its side
            chunk = b""
        if not chunk:
            asyncio.get_running_loop().remove_reader(self.master)
        self.output += chunk
        self.more.set()

    async def expect(self, pattern: bytes, timeout: float = 20) -> bytes:
        """The output up to the first match of `pattern` (from the start)."""
        async def find() -> bytes:
            while (m := re.search(pattern, self.output)) is None:
                self.more.clear()
                await self.more.wait()
            return self.output[: m.end()]
        try:
            return await asyncio.wait_for(find(), timeout)
        except TimeoutError:
            raise AssertionError(f"{pattern!r} not seen in {self.output!r}") from None

    def type(self, data: bytes) -> None:
        os.write(self.master, data)

    async def wait(self, timeout: float = 30) -> int:
        return await asyncio.wait_for(self.proc.wait(), timeout)


def _own_terminal() -> None:
    """In the child: a session of its own with the pty as its controlling terminal, so
    Ctrl-C typed there is a SIGINT to it, as in a shell."""
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


@contextlib.asynccontextmanager
async def in_a_terminal(tmp_path: Path, *args: str) -> AsyncIterator[Term]:
    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ELDRIC_")}
    env |= {"XDG_CONFIG_HOME": str(tmp_path / "config"), "COLUMNS": "160", "TERM": "xterm"}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "eldric", *args,
                                                cwd=ROOT, env=env, stdin=slave, stdout=slave,
                                                stderr=slave, preexec_fn=_own_terminal)
    os.close(slave)
    term = Term(proc, master)
    try:
        yield term
    finally:
        with contextlib.suppress(ValueError, OSError):
            asyncio.get_running_loop().remove_reader(master)
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        os.close(master)
