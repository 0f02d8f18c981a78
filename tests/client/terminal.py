"""`eldric chat` as a user runs it: in a pseudo-terminal (pexpect), or with its output
piped, with its own XDG directories (never the user's history or config).

The servers a test starts run in the test's event loop, so a blocking pexpect step
runs in a thread (`await step(fn)`), leaving the loop free to answer."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pexpect

ROOT = Path(__file__).resolve().parents[2]  # this tree, not the installed one
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][0-9A-Za-z]|\r")
STATS = r"\d+ tokens · [-\d.]+ tok/s · TTFT \d+ ms"


def env_for(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ELDRIC_")}
    env.update(XDG_STATE_HOME=str(home / "state"), XDG_CONFIG_HOME=str(home / "config"),
               HOME=str(home), TERM="xterm-256color", COLUMNS="120", LINES="40", **extra)
    return env


def spawn(home: Path, *args: str, **env: str) -> pexpect.spawn:
    """`eldric chat ARGS` in a pseudo-terminal (stdin, stdout and stderr a terminal)."""
    return pexpect.spawn(sys.executable, ["-m", "eldric", "chat", *args], cwd=str(ROOT),
                         env=env_for(home, **env), encoding="utf-8", timeout=15,
                         dimensions=(40, 120))


def piped(home: Path, *args: str, stdin: str = "", **env: str) -> subprocess.CompletedProcess:
    """`eldric chat ARGS` with stdin, stdout and stderr pipes (a script's view)."""
    return subprocess.run([sys.executable, "-m", "eldric", "chat", *args], cwd=str(ROOT),
                          env=env_for(home, **env), input=stdin, capture_output=True,
                          text=True, timeout=30)


async def step(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return await asyncio.to_thread(fn, *args, **kwargs)


def seen(child: pexpect.spawn) -> str:
    """What the terminal showed up to the last match, without escape sequences."""
    return ANSI.sub("", (child.before or "") + (child.after if isinstance(child.after, str)
                                                 else ""))


def prompt(child: pexpect.spawn) -> str:
    """Wait for the input prompt: what came before it (escapes removed)."""
    child.expect(r"\n> ")
    return seen(child)


def say(child: pexpect.spawn, line: str) -> str:
    """Type a line and Enter; what the terminal showed until the next prompt."""
    child.sendline(line)
    return prompt(child)


def leave(child: pexpect.spawn) -> int:
    child.sendline("/exit")
    child.expect(pexpect.EOF)
    child.close()
    return child.exitstatus
