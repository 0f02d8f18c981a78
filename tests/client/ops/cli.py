"""The operator commands run as a user runs them: `python -m eldric …` in a subprocess
(awaited, so the roles the test serves in this event loop answer meanwhile), with no
ELDRIC_* variable and a config directory of the test's own."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]


@dataclass
class Ran:
    rc: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    def one_error(self) -> str:
        """The failure as the user sees it: exactly one line on stderr, nothing else."""
        assert self.rc != 0, self
        lines = self.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), self
        assert "Traceback" not in self.err, self
        return lines[0]


async def eldric(tmp_path: Path, *args: str, env: dict[str, str] | None = None,
                 timeout: float = 60) -> Ran:
    base = {k: v for k, v in os.environ.items() if not k.startswith("ELDRIC_")}
    base |= {"XDG_CONFIG_HOME": str(tmp_path / "config"), "COLUMNS": "200"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "eldric", *args, cwd=ROOT, env={**base, **(env or {})},
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return Ran(proc.returncode or 0, out.decode(), err.decode())


def rows(text: str) -> dict[str, list[str]]:
    """A table's rows by their first cell (cells split on runs of 2+ spaces)."""
    import re

    lines = text.strip().splitlines()
    return {cells[0]: cells for cells in (re.split(r"\s{2,}", ln.strip()) for ln in lines[1:])}
