"""The fake Ollama's model management: /api/pull, /api/create, HEAD|POST /api/blobs/:digest,
/api/delete and /api/tags (mounted by tests.fakes.ollama.make_app; /api/show is there).

Shapes follow ollama/ollama docs/api.md and its server at fb307609 (server/routes.go
PullHandler, DeleteHandler, HeadBlobHandler, CreateBlobHandler, streamResponse;
server/images.go PullModel; server/download.go; server/create.go):

- a stream is `application/x-ndjson`, one compact JSON object a line; an error before the
  first line is an HTTP status with `{"error": "…"}`, after it an `{"error": "…"}` line
  (the reply is then a 200 that failed: streamResponse);
- pull: `pulling manifest`, then per layer `pulling <digest[7:19]>` lines with `digest`,
  `total` and `completed` (omitted while 0, ProgressResponse's omitempty; a layer already
  here is one line with completed = total), `verifying sha256 digest`, `writing manifest`,
  `removing unused layers` (only when a model was replaced), `success`. A model the
  library lacks: `pulling manifest` then `{"error": "pull model manifest: file does not
  exist"}`. A pull whose client leaves stops; what it had downloaded stays for the next
  pull to resume (download.go's parts). An empty name: 400 `invalid model name`.
- blobs: HEAD 200 or 404; POST 201 created, 200 when already there, 400 on a digest that
  is not `sha256:<64 hex>` or does not match the body.
- create with `files`: `parsing GGUF` (a file not ending .gguf is sniffed), `using existing
  layer sha256:…`, `writing manifest`, `success`; a blob not pushed is an in-band error
  (the first line went out), as is a file that is not GGUF. Neither `from` nor `files`: 400.
- delete: 200 with an empty body, 404 `model '<name>' not found`.

What a test steers, on `app[MODELS]` (a Models): the library (name -> layer sizes), the
pace, a model that fails in-band after so many bytes (`fail`), one that stalls after so
many bytes until `release` is set (`stall`), and what happened (`seen`: ("pull", name),
("disconnect", name), ("create", name), ("blob", digest), ("delete", name)).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from dataclasses import dataclass, field

from aiohttp import web

from tests.fakes.ollama import DETAILS, PULLED, created_at

_DIGEST = re.compile(r"^sha256[:-][0-9a-fA-F]{64}$")
MANIFEST_MISSING = "pull model manifest: file does not exist"
FAILED = "max retries exceeded: unexpected EOF"  # what a broken layer download says


def full_name(name: str) -> str:
    """Ollama's name with its default tag: llama3.2 is llama3.2:latest."""
    return name if ":" in name.rsplit("/", 1)[-1] else name + ":latest"


def digest_of(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Installed:
    digest: str  # the manifest's digest, as /api/tags shows it (without sha256:)
    size: int
    modified_at: str


@dataclass
class Models:
    # name -> its layers' sizes: what `ollama pull` can fetch (each layer's digest is made
    # from the name and its index)
    library: dict[str, list[int]] = field(default_factory=lambda: {
        "llama3.2:1b": [3_000_000, 12_000], "qwen2.5:0.5b": [2_000_000, 1_500]})
    chunk: int = 500_000  # bytes a layer grows by per progress line
    tick: float = 0.01  # seconds between them (Ollama itself reports every 60 ms)
    fail: dict[str, int] = field(default_factory=dict)  # name -> in-band error after N bytes
    stall: dict[str, int] = field(default_factory=dict)  # name -> silent after N bytes ...
    release: asyncio.Event = field(default_factory=asyncio.Event)  # ... until this is set
    installed: dict[str, Installed] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)  # digest -> the first bytes
    sizes: dict[str, int] = field(default_factory=dict)  # digest -> size
    partial: dict[str, int] = field(default_factory=dict)  # digest -> bytes kept for resume
    seen: list[tuple[str, str]] = field(default_factory=list)

    def layers(self, name: str) -> list[tuple[str, int]]:
        return [(digest_of(f"{name}#{i}"), size) for i, size in enumerate(self.library[name])]


MODELS = web.AppKey("models", Models)


def _line(obj: dict) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _named(request: web.Request, invalid: str = "invalid model name"
                 ) -> tuple[dict, str, web.Response | None]:
    """The body, the model it names (`model`, or the older `name`) and the refusal of a
    body without one."""
    body, refused = await _body(request)
    given = body.get("model") or body.get("name") or ""
    if refused is None and not given:
        refused = _error(400, invalid.format(given))
    return body, given, refused


async def _body(request: web.Request) -> tuple[dict, web.Response | None]:
    raw = await request.read()
    if not raw:
        return {}, _error(400, "missing request body")
    try:
        body = json.loads(raw)
    except json.JSONDecodeError:
        return {}, _error(400, "invalid character 'x' looking for beginning of value")
    if not isinstance(body, dict):
        return {}, _error(400, "json: cannot unmarshal array into Go value of type api.Request")
    return body, None


def _gone(request: web.Request) -> bool:
    t = request.transport
    return t is None or t.is_closing()


def _install(app: web.Application, name: str, size: int) -> None:
    m = app[MODELS]
    m.installed[name] = Installed(digest_of(f"manifest {name}")[7:], size, created_at())
    if name not in app[PULLED]:
        app[PULLED].append(name)


async def tags(request: web.Request) -> web.Response:
    m = request.app[MODELS]
    out = []
    for name in request.app[PULLED]:
        i = m.installed.get(name) or Installed(
            "a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72", 2019393189,
            "2026-10-01T12:00:00.000000Z")
        out.append({"name": name, "model": name, "modified_at": i.modified_at, "size": i.size,
                    "digest": i.digest, "details": DETAILS})
    return web.json_response({"models": out})


async def pull(request: web.Request) -> web.StreamResponse:
    body, given, refused = await _named(request)
    if refused is not None:
        return refused
    name = full_name(given)
    app = request.app
    m = app[MODELS]
    m.seen.append(("pull", name))
    stream = body.get("stream") is not False
    resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    lines: list[bytes] = []

    async def send(obj: dict) -> None:
        if stream:
            if not resp.prepared:
                await resp.prepare(request)
            await resp.write(_line(obj))
        else:
            lines.append(_line(obj))

    try:
        await send({"status": "pulling manifest"})
        if name not in m.library:
            await send({"error": MANIFEST_MISSING})
            return resp if stream else _error(500, MANIFEST_MISSING)
        sent = 0  # bytes downloaded by this pull, for `fail` and `stall`
        for digest, size in m.layers(name):
            status = f"pulling {digest[7:19]}"
            if digest in m.sizes:  # already here (download.go: one line, cache hit)
                await send({"status": status, "digest": digest, "total": size,
                            "completed": size})
                continue
            done = m.partial.get(digest, 0)
            first = {"status": status, "digest": digest, "total": size}
            await send(first | ({"completed": done} if done else {}))
            while done < size:
                if name in m.fail and sent >= m.fail[name]:
                    await send({"error": FAILED})
                    return resp if stream else _error(500, FAILED)
                if name in m.stall and sent >= m.stall[name]:
                    while not m.release.is_set():
                        if stream and _gone(request):
                            raise ConnectionResetError("client left during the stall")
                        await asyncio.sleep(0.02)
                await asyncio.sleep(m.tick)
                step = min(m.chunk, size - done)
                done += step
                sent += step
                m.partial[digest] = done
                await send({"status": status, "digest": digest, "total": size,
                            "completed": done})
            m.sizes[digest] = size
            m.blobs[digest] = b""
            m.partial.pop(digest, None)
        await send({"status": "verifying sha256 digest"})
        await send({"status": "writing manifest"})
        if name in m.installed:
            await send({"status": "removing unused layers"})
        _install(app, name, sum(m.library[name]))
        await send({"status": "success"})
    except (ConnectionResetError, asyncio.CancelledError):
        m.seen.append(("disconnect", name))  # the parts stay for the next pull
        raise
    if not stream:
        return web.Response(body=lines[-1], content_type="application/json")
    return resp


async def head_blob(request: web.Request) -> web.Response:
    digest = request.match_info["digest"]
    if not _DIGEST.match(digest):
        return _error(400, "invalid digest format")
    if digest.replace("-", ":", 1) not in request.app[MODELS].sizes:
        return _error(404, f'blob "{digest}" not found')
    return web.Response(status=200)


async def create_blob(request: web.Request) -> web.Response:
    digest = request.match_info["digest"]
    if not _DIGEST.match(digest):
        return _error(400, "invalid digest format")
    m = request.app[MODELS]
    key = digest.replace("-", ":", 1)
    if key in m.sizes:
        return web.Response(status=200)
    h = hashlib.sha256()
    size = 0
    head = b""
    async for chunk in request.content.iter_chunked(1 << 20):
        h.update(chunk)
        size += len(chunk)
        if len(head) < 4:
            head = (head + chunk)[:4]
    got = "sha256:" + h.hexdigest()
    if got != key:
        return _error(400, f'digest mismatch, expected "{digest}", got "{got}"')
    m.sizes[key] = size
    m.blobs[key] = head
    m.seen.append(("blob", key))
    return web.Response(status=201)


async def create(request: web.Request) -> web.StreamResponse:
    body, refused = await _body(request)
    if refused is not None:
        return refused
    files = body.get("files")
    if isinstance(files, dict) and any(not d for d in files.values()):
        return _error(400, "invalid digest format")
    given = body.get("model") or body.get("name") or ""
    if not given:
        return _error(400, "invalid model name")
    name = full_name(given)
    m = request.app[MODELS]
    source = body.get("from")
    if not source and not files:
        return _error(400, "neither 'from' or 'files' was specified")
    m.seen.append(("create", name))
    resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    await resp.prepare(request)
    size = 0
    if source:
        await resp.write(_line({"status": "reading model metadata"}))
        if full_name(source) not in request.app[PULLED]:
            await resp.write(_line({"error": f"model '{source}' not found"}))
            return resp
        size = m.installed[full_name(source)].size if full_name(source) in m.installed else 1
        await resp.write(_line({"status": "using already created layer "
                                + digest_of(f"manifest {full_name(source)}")}))
    else:
        for fname in sorted(files):
            digest = files[fname]
            await resp.write(_line({"status": "parsing GGUF"}))
            if digest not in m.sizes:
                await resp.write(_line({"error": "open /root/.ollama/models/blobs/"
                                        f"{digest.replace(':', '-')}: no such file or directory"}))
                return resp
            if m.blobs[digest] != b"GGUF":
                await resp.write(_line({"error": "supplied file was not in GGUF format"}))
                return resp
            size += m.sizes[digest]
            await resp.write(_line({"status": f"using existing layer {digest}"}))
    await resp.write(_line({"status": "writing manifest"}))
    _install(request.app, name, size)
    await resp.write(_line({"status": "success"}))
    return resp


async def delete(request: web.Request) -> web.Response:
    _, given, refused = await _named(request, 'name "{}" is invalid')
    if refused is not None:
        return refused
    name = full_name(given)
    app = request.app
    if name not in app[PULLED]:
        return _error(404, f"model '{given}' not found")
    app[PULLED].remove(name)
    app[MODELS].installed.pop(name, None)
    app[MODELS].seen.append(("delete", name))
    return web.Response(status=200)


def add_routes(app: web.Application, models: Models | None = None) -> None:
    app[MODELS] = models or Models()
    app.router.add_get("/api/tags", tags)
    app.router.add_post("/api/pull", pull)
    app.router.add_route("HEAD", "/api/blobs/{digest}", head_blob)
    app.router.add_post("/api/blobs/{digest}", create_blob)
    app.router.add_post("/api/create", create)
    app.router.add_delete("/api/delete", delete)
