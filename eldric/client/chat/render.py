"""What the user sees: a reply rendered as Markdown (code blocks highlighted) while it
streams, with rich, on a terminal; the bare text, piece by piece, when stdout is not a
terminal or with --plain (scripts and pipes get the reply and nothing else on stdout).
Notes, errors and the timings after each reply go to stderr."""

from __future__ import annotations

import sys
from typing import Any


class Output:
    def __init__(self, plain: bool) -> None:
        self.plain = plain or not sys.stdout.isatty()
        self.live: Any = None
        self.text = ""
        self.shown = 0  # how much of text is printed for good, above the live part
        self.console: Any = None
        if not self.plain:
            from rich.console import Console  # noqa: PLC0415 (only on a terminal)

            self.console = Console(highlight=False)
        self.err: Any = None
        if sys.stderr.isatty() and not plain:
            from rich.console import Console  # noqa: PLC0415

            self.err = Console(stderr=True, highlight=False)

    # ---------------------------------------------------------------- a reply
    def begin(self) -> None:
        self.text, self.shown = "", 0
        if self.plain:
            return
        from rich.live import Live  # noqa: PLC0415
        from rich.markdown import Markdown  # noqa: PLC0415

        self.live = Live(Markdown(""), console=self.console, refresh_per_second=15,
                         vertical_overflow="visible", transient=False)
        self.live.start()

    def piece(self, text: str) -> None:
        self.text += text
        if self.plain:
            sys.stdout.write(text)
            sys.stdout.flush()
            return
        from rich.markdown import Markdown  # noqa: PLC0415

        # Only the unfinished block stays live: the finished ones (up to the last blank
        # line outside a code fence) are printed once above it. Re-rendering the whole
        # reply on every piece is quadratic: a long reply took minutes and wrote hundreds
        # of MB to the terminal (redrawn in full each refresh).
        done = _finished(self.text, self.shown)
        if done > self.shown:
            finished, self.shown = self.text[self.shown:done], done
            # The live part Live redraws below a printed block is the one it last
            # *refreshed* (15 Hz), not the one it was last given: with pieces faster
            # than that (or its thread starved) a stale live part, an older block, came
            # out again below the newer ones. Emptied first, it redraws nothing there.
            self.live.update("", refresh=True)
            self.live.console.print(Markdown(finished))
        self.live.update(Markdown(self.text[self.shown:]))

    def end(self) -> None:
        """The reply is over (finished, stopped or failed): the cursor on a new line."""
        if self.plain:
            if self.text and not self.text.endswith("\n"):
                sys.stdout.write("\n")
            sys.stdout.flush()
            return
        if self.live is not None:
            self.live.stop()
            self.live = None

    def show(self, role: str, text: str) -> None:
        """A past turn (a resumed conversation)."""
        if self.plain:
            sys.stdout.write(f"{role}: {text}\n")
            return
        from rich.markdown import Markdown  # noqa: PLC0415

        if role == "user":
            self.console.print(f"> {text}", style="bold")
        else:
            self.console.print(Markdown(text))

    # ---------------------------------------------------------------- notes on stderr
    def note(self, text: str, style: str = "dim") -> None:
        if self.err is not None:
            self.err.print(text, style=style, markup=False)
        else:
            print(text, file=sys.stderr, flush=True)

    def error(self, line: str) -> None:
        self.note(line, style="red")


def _finished(text: str, start: int) -> int:
    """Where the finished Markdown blocks of text[start:] end: after its last blank line
    outside a code fence (start: none is finished yet)."""
    cut = text.rfind("\n\n", start)
    while cut > start:
        if text.count("```", start, cut) % 2 == 0:
            return cut + 2
        cut = text.rfind("\n\n", start, cut)
    return start
