"""An exception in the console log is the standard traceback text, never the values of
its frames' locals (rich, which `eldric chat` brings, would make structlog show them:
API keys, request bodies)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FAIL = """
import structlog
from eldric import log
log.setup("info", "console")
def handler():
    api_key = "sk-" + "in-a-local"
    raise ValueError("boom")
try:
    handler()
except ValueError:
    structlog.get_logger().exception("request_failed")
"""


def test_console_log_traceback_has_no_locals():
    err = subprocess.run([sys.executable, "-c", FAIL], cwd=str(ROOT), capture_output=True,
                         text=True, timeout=60).stderr
    assert "request_failed" in err
    assert "Traceback (most recent call last):" in err and "ValueError: boom" in err
    assert "sk-in-a-local" not in err
