"""An edge run from a config file (auth.clients has no flag), in front of a worker."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncIterator

from eldric import registry
from eldric.cli import load_config
from tests.conftest import serving


@contextlib.asynccontextmanager
async def edge_with_file(tmp_path, section: dict, **flags) -> AsyncIterator[str]:
    """An edge (plain HTTP on loopback) with `section` as its config file: its URL.
    Its routers are checked at the default period: a 100 ms one is also each check's
    deadline, and took the only router out under load (see tests/roles/test_edge.py's
    farm())."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "edge.json"
    path.write_text(json.dumps(section))
    flags = dict(no_tls=True, http_port=0, bind="127.0.0.1", data_dir=str(tmp_path / "data"),
                 **flags)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ELDRIC_")}
    roles = registry.resolve("edge")
    async with serving(roles, load_config(roles, flags, env, str(path))) as urls:
        yield urls["edge"]
