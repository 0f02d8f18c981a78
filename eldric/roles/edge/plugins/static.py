"""The page-side plugins' files: `/plugins/index.json` lists the enabled action and
widget plugins (what the chat page's plugins.js loads), `/plugins/<id>/<file>` serves
their files, same-origin, so the page's CSP (script-src 'self') admits them.

Only enabled action/widget plugins are served: a server-side plugin's directory (its
main.py, its valves.json with secrets) never is, nor a disabled one's. A path that
leaves the plugin's directory (.., an absolute path, a symlink out) is refused as not
found. Whoever may open /chat may read these (the edge's key or cookie, when required).
"""

from __future__ import annotations

import mimetypes
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from aiohttp import web

from eldric.bus.routes import json_response
from eldric.errors import NotFound

_TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css",
          ".json": "application/json", ".svg": "image/svg+xml", ".png": "image/png"}
HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}


class PagePlugin:
    """What the page needs of one enabled action/widget plugin."""

    __slots__ = ("id", "type", "name", "entry", "directory")

    def __init__(self, id: str, type: str, name: str, entry: str, directory: Path) -> None:
        self.id, self.type, self.name, self.entry, self.directory = id, type, name, entry, directory

    def index(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.type, "name": self.name,
                "script": f"/plugins/{self.id}/{self.entry}"}


def file_of(plugin: PagePlugin, tail: str) -> Path:
    """The file `tail` names inside the plugin's directory, or NotFound."""
    root = plugin.directory.resolve()
    if not tail or "\\" in tail or "\x00" in tail:
        raise NotFound(f"no file {tail!r} in plugin {plugin.id}", code="plugin_file_not_found")
    path = (root / tail).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise NotFound(f"no file {tail!r} in plugin {plugin.id}", code="plugin_file_not_found")
    if path.name in ("manifest.json", "valves.json"):  # the edge's, not the page's
        raise NotFound(f"no file {tail!r} in plugin {plugin.id}", code="plugin_file_not_found")
    return path


def add_routes(app: web.Application, enabled: Callable[[web.Request], Iterable[PagePlugin]],
               auth: Callable[[web.Request], Awaitable[Any]]) -> None:
    """`enabled(request)`: the enabled page plugins; `auth(request)`: raises when the
    caller may not open the chat page."""

    async def index(request: web.Request) -> web.Response:
        await auth(request)
        resp = json_response({"plugins": [p.index() for p in enabled(request)]})
        resp.headers.update(HEADERS)
        return resp

    async def serve(request: web.Request) -> web.StreamResponse:
        await auth(request)
        pid = request.match_info["id"]
        plugin = next((p for p in enabled(request) if p.id == pid), None)
        if plugin is None:
            raise NotFound(f"no enabled action or widget plugin {pid!r}",
                           code="plugin_not_found")
        path = file_of(plugin, request.match_info["tail"])
        ctype = _TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0] \
            or "application/octet-stream"
        return web.Response(body=path.read_bytes(), headers={**HEADERS, "Content-Type": ctype})

    app.router.add_get("/plugins/index.json", index)
    app.router.add_get("/plugins/{id}/{tail:.+}", serve)
