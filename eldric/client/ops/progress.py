"""A job's targets as bars, one per worker, until the job ends.

On a terminal the bars are redrawn in place; elsewhere (a log, a pipe) a line is printed
when a target changes state or passes a quarter, so the output stays readable. A bar is
full only when its target completed: a failed one says why instead of staying at 99 %.
"""

from __future__ import annotations

import shutil
import sys
from typing import Any, TextIO

from eldric.client.ops.common import size


def line(t: dict[str, Any], width: int = 24, name_w: int = 12) -> str:
    state = t.get("state", "?")
    pct = 100.0 if state == "completed" else (t.get("percent") or 0.0)
    filled = int(width * min(pct, 100.0) / 100)
    bar = "#" * filled + "-" * (width - filled)
    head = f"{t.get('worker_id', '?'):<{name_w}} [{bar}] {pct:5.1f}%  {state}"
    if state in ("failed", "cancelled", "skipped"):
        why = t.get("error") or t.get("message") or ""
        code = t.get("code")
        return f"{head}: {why}" + (f" ({code})" if code and code not in why else "")
    if state == "completed":
        return head
    more = []
    if t.get("total_bytes"):
        more.append(f"{size(t.get('completed_bytes'))}/{size(t['total_bytes'])}")
    if t.get("bytes_per_second"):
        more.append(f"{size(t['bytes_per_second'])}/s")
    if t.get("eta_seconds") is not None:
        more.append(f"eta {t['eta_seconds']:.0f}s")
    return head + ("  " + "  ".join(more) if more else "")


class Bars:
    def __init__(self, out: TextIO | None = None, tty: bool | None = None) -> None:
        self.out = out or sys.stderr
        self.tty = self.out.isatty() if tty is None else tty
        self.drawn = 0  # lines drawn last time (a terminal's redraw moves up that many)
        self.seen: dict[str, tuple[str, int]] = {}  # worker -> (state, quarter) printed

    def show(self, job: dict[str, Any]) -> None:
        targets = job.get("targets") or []
        name_w = max([len(t.get("worker_id", "")) for t in targets] + [6])
        if self.tty:
            cols = shutil.get_terminal_size((100, 20)).columns
            text = [line(t, name_w=name_w)[: cols - 1] for t in targets]
            up = f"\x1b[{self.drawn}F" if self.drawn else ""
            self.out.write(up + "".join(f"\x1b[2K{s}\n" for s in text))
            self.drawn = len(text)
        else:
            for t in targets:
                pct = 100.0 if t.get("state") == "completed" else (t.get("percent") or 0.0)
                mark = (t.get("state", "?"), int(pct // 25))
                if self.seen.get(t.get("worker_id", "")) != mark:
                    self.seen[t.get("worker_id", "")] = mark
                    self.out.write(line(t, name_w=name_w) + "\n")
        self.out.flush()
