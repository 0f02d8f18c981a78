"""A fast-lane handler is typed with eldric.exchange.LaneRequest: the part of a request
both web.Request and the lane's FastRequest offer. Checked with mypy, on a handler written
for the purpose and on the real ones, so a handler that reaches for what the lane lacks
is a type error here instead of an AttributeError on the lane only."""

from __future__ import annotations

import re
from pathlib import Path

from mypy import api

ROOT = Path(__file__).resolve().parents[2]
# The lane's own code and the leaves under it: clean, every check mypy makes by default.
CORE = ["eldric/exchange.py", "eldric/http.py", "eldric/stream/forward.py",
        "eldric/stream/client.py", "eldric/stream/pool.py", "eldric/stream/flow.py", "eldric/stream/sse.py",
        "eldric/stream/headers.py", "eldric/serve", "eldric/errors.py", "eldric/context.py"]
# The roles' fast handlers: only what concerns the lane is asserted here.
HANDLERS = ["eldric/roles/worker/handlers.py", "eldric/roles/router/handlers.py",
            "eldric/roles/edge/handlers.py", "eldric/roles/router/attempts.py",
            "eldric/roles/edge/routers.py"]

SNIPPET = '''
from aiohttp import web

from eldric.exchange import LaneRequest
from eldric.serve.request import FastRequest
from eldric.serve.server import fast_post


async def fine(request: LaneRequest) -> web.Response:
    request["seen"] = request.headers.get("X-Test"), request.cookies.get("k")
    return web.Response(text=f"{request.method} {request.path} {request.remote}")


async def reaches_past_the_lane(request: LaneRequest) -> web.Response:
    return web.Response(text=request.match_info["id"])


async def typed_for_aiohttp(request: web.Request) -> web.Response:
    return web.Response()


def both_lanes(a: web.Request, b: FastRequest) -> list[LaneRequest]:
    return [a, b]


def routes(app: web.Application) -> None:
    fast_post(app, "/fine", fine)
    fast_post(app, "/aiohttp-only", typed_for_aiohttp)
'''


def _mypy(tmp_path: Path, *targets: str) -> list[str]:
    out, err, _ = api.run(["--follow-imports=silent", "--no-error-summary",
                           "--cache-dir", str(tmp_path / "cache"), *targets])
    assert not err, err
    return [line for line in out.splitlines() if ": error:" in line]


def test_a_handler_using_what_the_lane_lacks_is_a_type_error(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    snippet = tmp_path / "lane_handlers.py"
    snippet.write_text(SNIPPET)
    errors = _mypy(tmp_path, str(snippet), *CORE, *HANDLERS)
    mine = [re.sub(r"^.*?:(\d+): error: ", r"\1: ", e) for e in errors
            if e.startswith(str(snippet))]
    lines = SNIPPET.splitlines()
    # Which lines are type errors, and of which kind (mypy's error codes, not its wording):
    # a handler reading what the lane lacks, and a handler typed for aiohttp alone given
    # to fast_post (web.Request is more than the lane offers).
    assert [(lines[int(e.split(":")[0]) - 1].strip(), e.rsplit("[", 1)[-1]) for e in mine] == [
        ('return web.Response(text=request.match_info["id"])', "attr-defined]"),
        ('fast_post(app, "/aiohttp-only", typed_for_aiohttp)', "arg-type]")]
    core = [e for e in errors if not e.startswith(str(snippet))
            and not any(e.startswith(h) for h in HANDLERS)]
    assert core == []
    lane = [e for e in errors if any(e.startswith(h) for h in HANDLERS)
            and (("LaneRequest" in e and e.endswith("[attr-defined]"))
                 or ('"fast_post"' in e and e.endswith("[arg-type]")))]
    assert lane == []
