"""The reply renderer's live part, without a terminal's timing: Live redraws below a
printed block what it last refreshed, so a stale older block must never come out again
below a newer one (seen once in a loaded full-suite run of the long-reply test)."""

from __future__ import annotations

import io

from rich.console import Console

from eldric.client.chat.render import Output


def test_a_block_refreshed_live_is_not_drawn_again_below_the_next_block() -> None:
    out = Output(plain=True)
    out.plain = False  # rendered, onto a terminal-like buffer
    buf = io.StringIO()
    out.console = Console(file=buf, force_terminal=True, force_interactive=True,
                          width=80, color_system=None, highlight=False)
    out.begin()
    out.live.stop()  # no refresh thread: each refresh below is one tick, by hand
    out.live._started = True  # noqa: SLF001 (its hooks stay on, as while it runs)
    out.console.push_render_hook(out.live)
    out.piece("alpha one\n\nbravo two")
    out.live.refresh()  # a tick while "bravo" is the live part
    out.piece(" more\n\ncharlie three")  # bravo printed for good, charlie live
    out.piece(" more\n\ndelta four")  # charlie finished before any tick: printed
    shown = buf.getvalue()
    assert shown.rfind("bravo") < shown.find("charlie")
    assert shown.rfind("charlie") < shown.find("delta") or "delta" not in shown
