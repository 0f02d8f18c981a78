"""`eldric --help` tells a user the client and operator commands exist (they are not
role flags, so the role command's own help would not list them), and each command's
own --help works."""

from __future__ import annotations

import subprocess
import sys

import pytest

from eldric.client import NAMES
from tests.client.terminal import ROOT


def eldric(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "eldric", *args], cwd=str(ROOT),
                          capture_output=True, text=True, timeout=60)


def test_the_top_help_names_every_client_command():
    out = eldric("--help")
    assert out.returncode == 0
    flat = " ".join(out.stdout.split())
    for name in NAMES:
        assert f"`eldric {name}`" in flat, name


@pytest.mark.parametrize("name", ["chat", "models"])
def test_a_commands_own_help(name):
    out = eldric(name, "--help")
    assert out.returncode == 0 and out.stdout.startswith(f"Usage: eldric {name} ")
