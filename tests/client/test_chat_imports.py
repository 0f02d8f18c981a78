"""The servers' start-up never loads the clients (their click commands, the chat and
its rendering): cli.main hands argv to eldric.client's commands only for a client
command. (rich itself is loaded by structlog.dev when installed; eldric.log keeps the
log's tracebacks plain: tests/test_log_traceback.py.)"""

from __future__ import annotations

import subprocess
import sys

from tests.client.terminal import ROOT

CHECK = """
import sys
from eldric import cli, registry
for name in ("edge", "router", "controller", "worker", "cloud"):
    registry.resolve(name)
from eldric import app
loaded = sorted(m for m in sys.modules if m.startswith("eldric.client."))
print(loaded)
"""


def test_roles_load_without_the_clients():
    out = subprocess.run([sys.executable, "-c", CHECK], cwd=str(ROOT), capture_output=True,
                         text=True, timeout=60, check=True).stdout
    assert out.strip() == "[]"
