"""A fake Replicate predictions API, following the real one's documented shapes.

- Create: ``POST /v1/models/{owner}/{name}/predictions`` ``{input, stream}``, ``POST
  /v1/predictions`` ``{version, input}``, ``POST /v1/deployments/{owner}/{name}/predictions``;
  ``Authorization: Bearer TOKEN`` (else 401), ``input`` an object (else 422), a known
  model (else 404), all as RFC 7807 problem JSON (``application/problem+json``). The reply
  (201) is a prediction ``{id, model, version, input, output, logs, error, status, created_at,
  metrics, urls: {get, cancel, stream?, web}}``. With ``Prefer: wait=N`` it is finished
  (``succeeded``, ``output`` a list of text pieces, ``metrics`` with token counts), except
  in the ``pending`` scenario (``processing`` for the first two GETs of ``urls.get``).
  With ``"stream": true`` it is ``starting`` and ``urls.stream`` names this server's
  ``/stream/{id}``.
- ``GET /stream/{id}``: SSE as /docs/topics/predictions/streaming shows: ``event: output``,
  ``id: …``, ``data: <text>`` (a newline in the text is a second data line), then ``event:
  done`` ``data: {}``; an ``event: error`` in the ``error_midstream`` scenario.
- ``GET /v1/predictions/{id}``; ``POST /v1/predictions/{id}/cancel`` (status ``canceled``;
  noted in ``Knobs.canceled``); ``GET /v1/account``.

The scenario is ``Knobs.scenario`` if set, else the input's ``prompt`` when it names one:
``text``, ``error_midstream``, ``error_first`` (its error before any output), ``ratelimited`` (429 with Retry-After), ``overloaded``
(503), ``pending`` (``pending_long``: for 40 GETs), ``cut`` (the stream breaks after two events), ``slow`` (an event every
50 ms for 10 s, for a client that leaves).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

from aiohttp import web

from tests.fakes.recorded import bearer_ok, recorded

TOKEN = "r8_test_token"
MODEL = "meta/meta-llama-3-8b-instruct"
VERSION = "5a6809ca6288247d06daf6365557e5e429063f32a21146b2a807c682652136b8"
PIECES = ["Hello", "!", " How", " can", " I", " help", "?\n", "Ask away."]


class Knobs:
    def __init__(self) -> None:
        self.token = TOKEN
        self.scenario: str | None = None
        self.requests: list[dict] = []  # method, path, headers, body of each request
        self.predictions: dict[str, dict] = {}
        self.polls: dict[str, int] = {}
        self.canceled = asyncio.Event()
        # Where the prediction's urls point (default: this server); another server's URL
        # stands for a reply naming another host (eldric must not send it the token).
        self.url_base: str | None = None


KNOBS = web.AppKey("knobs", Knobs)


def problem(status: int, title: str, detail: str, headers: dict | None = None) -> web.Response:
    return web.Response(status=status, headers=headers, content_type="application/problem+json",
                        text=json.dumps({"title": title, "detail": detail, "status": status}))


async def _record(request: web.Request) -> tuple[Knobs, Any, web.Response | None]:
    knobs = request.app[KNOBS]
    body = await recorded(request, knobs.requests)
    if not bearer_ok(request, knobs.token):
        return knobs, body, problem(401, "Unauthenticated",
                                    "You did not pass a valid authentication token")
    return knobs, body, None


def _base(request: web.Request) -> str:
    return request.app[KNOBS].url_base or f"{request.scheme}://{request.host}"


def _new(request: web.Request, model: str, version: str, body: dict) -> dict:
    pid = uuid.uuid4().hex[:26]
    base = _base(request)
    urls = {"get": f"{base}/v1/predictions/{pid}", "cancel": f"{base}/v1/predictions/{pid}/cancel",
            "web": f"https://replicate.com/p/{pid}"}
    if body.get("stream"):
        urls["stream"] = f"{base}/stream/{pid}"
    return {"id": pid, "model": model, "version": version, "input": body["input"],
            "logs": "", "output": None, "data_removed": False, "error": None,
            "status": "starting", "created_at": time.strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
            "urls": urls}


def _succeed(p: dict) -> None:
    p.update(status="succeeded", output=list(PIECES), logs="",
             completed_at=time.strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
             metrics={"predict_time": 0.42, "total_time": 0.5, "input_token_count": 11,
                      "output_token_count": len(PIECES), "tokens_per_second": 19.0})


def _scenario(knobs: Knobs, body: dict) -> str:
    if knobs.scenario:
        return knobs.scenario
    prompt = body.get("input", {}).get("prompt")
    return prompt.strip() if isinstance(prompt, str) else "text"


async def _create(request: web.Request, model: str, version: str) -> web.Response:
    knobs, body, denied = await _record(request)
    if denied is not None:
        return denied
    if not isinstance(body, dict) or not isinstance(body.get("input"), dict):
        return problem(422, "Input validation failed", "input: input is required")
    if model != MODEL or version not in ("", VERSION):
        return problem(404, "Not found", "The requested resource could not be found.")
    scenario = _scenario(knobs, body)
    if scenario == "ratelimited":
        return problem(429, "Request was throttled", "Request was throttled. Expected available "
                       "in 1 second.", headers={"Retry-After": "1"})
    if scenario == "overloaded":
        return problem(503, "Service unavailable", "The service is temporarily unavailable")
    p = _new(request, model, version or VERSION, body)
    p["scenario"] = scenario  # the fake's own note, removed before answering
    knobs.predictions[p["id"]] = p
    prefer = request.headers.get("Prefer", "")
    if prefer.startswith("wait") and not body.get("stream"):
        if scenario in ("pending", "pending_long"):
            p["status"] = "processing"
        else:
            _succeed(p)
    return web.json_response(_public(p), status=201)


def _public(p: dict) -> dict:
    return {k: v for k, v in p.items() if k != "scenario"}


async def create_for_model(request: web.Request) -> web.Response:
    return await _create(request, f"{request.match_info['owner']}/{request.match_info['name']}", "")


async def create_for_version(request: web.Request) -> web.Response:
    raw = await request.read()
    body = json.loads(raw) if raw else {}
    version = body.get("version") if isinstance(body, dict) else None
    return await _create(request, MODEL if version == VERSION else "?", version or "?")


async def create_for_deployment(request: web.Request) -> web.Response:
    return await _create(request, MODEL, "")  # a deployment runs this model


async def _found(request: web.Request) -> tuple[Knobs, dict | None, web.Response | None]:
    """The prediction the path names (after the request is recorded and its token checked)."""
    knobs, _, denied = await _record(request)
    p = knobs.predictions.get(request.match_info["id"]) if denied is None else None
    if denied is None and p is None:
        denied = problem(404, "Not found", "The requested resource could not be found.")
    return knobs, p, denied


async def get(request: web.Request) -> web.Response:
    knobs, p, denied = await _found(request)
    if denied is not None:
        return denied
    n = knobs.polls[p["id"]] = knobs.polls.get(p["id"], 0) + 1
    if p["status"] == "processing" and n >= (3 if p["scenario"] == "pending" else 40):
        _succeed(p)
    return web.json_response(_public(p))


async def cancel(request: web.Request) -> web.Response:
    knobs, p, denied = await _found(request)
    if denied is not None:
        return denied
    if p["status"] in ("starting", "processing"):
        p["status"] = "canceled"
        knobs.canceled.set()
    return web.json_response(_public(p))


def _event(name: str, n: int, data: str) -> bytes:
    lines = "".join(f"data: {line}\n" for line in data.split("\n"))
    return f"event: {name}\nid: {int(time.time())}:{n}\n{lines}\n".encode()


async def stream(request: web.Request) -> web.StreamResponse:
    knobs, p, denied = await _found(request)
    if denied is not None:
        return denied
    scenario = p["scenario"]
    pieces = ["tick "] * 200 if scenario == "slow" else PIECES
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                       "Cache-Control": "no-cache"})
    await resp.prepare(request)
    p["status"] = "processing"
    try:
        for n, piece in enumerate(pieces):
            if scenario == "cut" and n == 2:
                request.transport.close()
                return resp
            if (scenario == "error_midstream" and n == 3) or (scenario == "error_first" and n == 0):
                await resp.write(_event("error", n, json.dumps({"detail": "CUDA out of memory"})))
                p["status"] = "failed"
                await resp.write(_event("done", n + 1, json.dumps({"reason": "error"})))
                await resp.write_eof()
                return resp
            if scenario == "slow":
                await asyncio.sleep(0.05)
                if p["status"] == "canceled":
                    break
            await resp.write(_event("output", n, piece))
        if p["status"] == "canceled":
            await resp.write(_event("done", len(pieces), json.dumps({"reason": "canceled"})))
        else:
            _succeed(p)
            await resp.write(_event("done", len(pieces), "{}"))
    except (ConnectionResetError, asyncio.CancelledError):
        return resp  # the client (eldric) left
    await resp.write_eof()
    return resp


async def account(request: web.Request) -> web.Response:
    knobs, _, denied = await _record(request)
    if denied is not None:
        return denied
    return web.json_response({"type": "user", "username": "eldric", "name": "Eldric Tests",
                              "github_url": None})


def make_app() -> web.Application:
    app = web.Application()
    app[KNOBS] = Knobs()
    app.router.add_post("/v1/models/{owner}/{name}/predictions", create_for_model)
    app.router.add_post("/v1/predictions", create_for_version)
    app.router.add_post("/v1/deployments/{owner}/{name}/predictions", create_for_deployment)
    app.router.add_get("/v1/predictions/{id}", get)
    app.router.add_post("/v1/predictions/{id}/cancel", cancel)
    app.router.add_get("/stream/{id}", stream)
    app.router.add_get("/v1/account", account)
    return app
