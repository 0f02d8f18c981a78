"""POST /api/v1/knowledge/classify (what a prompt would be classified as, and where it
would go) and GET /api/v1/knowledge/themes (the themes loaded, and who is tagged)."""

from __future__ import annotations

import re
from typing import Annotated, Any

import msgspec
from aiohttp import web

from eldric.bus.routes import json_response
from eldric.errors import BadRequest
from eldric.http import read_body
from eldric.roles.router.knowledge.narrow import TAG, Knowledge, Ranked, theme_text
from eldric.roles.router.state import ROUTER
from eldric.wire.head import decode_head

KNOWLEDGE: web.AppKey[Knowledge] = web.AppKey("eldric_knowledge", Knowledge)


class _Message(msgspec.Struct):  # as chat messages are: other fields are the client's
    role: str
    content: str | list[dict[str, Any]] | None = None


class _ClassifyBody(msgspec.Struct, forbid_unknown_fields=True):
    messages: Annotated[list[_Message], msgspec.Meta(min_length=1, max_length=10_000)]
    system: str | None = None  # Anthropic's spelling of the system prompt
    model: str | None = None  # accepted so that a chat body can be pasted as it is


_UNKNOWN = re.compile(r"unknown field `([^`]+)`")


def _decode(raw: bytes) -> _ClassifyBody:
    try:
        return decode_head(raw, _ClassifyBody)
    except BadRequest as exc:
        m = _UNKNOWN.search(exc.message) if exc.param is None else None
        if m is not None:  # name the field the client should not have sent
            exc.param = m.group(1)
        raise


def _ranked(r: Ranked) -> dict[str, Any]:
    out: dict[str, Any] = {"id": r.theme.id, "name": r.theme.name, "score": r.score}
    if r.matched:
        out["matched"] = r.matched
    return out


async def classify(request: web.Request) -> web.Response:
    k = request.app[KNOWLEDGE]
    body = _decode(await read_body(request))
    doc = msgspec.to_builtins(body)
    text = theme_text(doc, k.cfg.max_chars)
    verdict = await k.classify(text)
    workers = request.app[ROUTER].pool.routable()
    tag, chosen = k.pick(verdict, workers)
    top = verdict.themes[0] if verdict.themes else None
    return json_response({
        "theme": top.theme.id if top else None, "name": top.theme.name if top else None,
        "score": top.score if top else None, "scorer": verdict.scorer,
        "reason": verdict.note or None, "chars": len(text),
        "themes": [_ranked(r) for r in (verdict.themes or verdict.best)],
        "route": {"tag": tag, "workers": [w.id for w in chosen]} if tag else None,
        "enabled": k.cfg.enabled, "threshold": k.cfg.threshold})


async def themes(request: web.Request) -> web.Response:
    k = request.app[KNOWLEDGE]
    workers = list(request.app[ROUTER].pool.workers.values())
    emb = k.embeddings
    return json_response({
        "source": k.source, "count": len(k.themes), "enabled": k.cfg.enabled,
        "threshold": k.cfg.threshold, "top_k": k.cfg.top_k,
        "embeddings": None if emb is None else {
            "model": k.cfg.embeddings_model, "url": emb.url,
            "threshold": k.cfg.embeddings_threshold, "ready": emb.centroids is not None},
        "themes": [{"id": t.id, "name": t.name, "parent": t.parent, "keywords": t.keywords,
                    "examples": t.examples,
                    "workers": [w.id for w in workers if TAG + t.id in w.tags]}
                   for t in k.themes]})


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/knowledge/classify", classify)
    app.router.add_get("/api/v1/knowledge/themes", themes)
