"""Where the request path meets the tool and pipe plugins: a chat completion for a
virtual model is the pipe's; one for a model tool plugins apply to runs the tool loop;
every other request is relayed as if there were no plugins. The edge asks only when a
pipe or tool plugin is enabled at all (Plugins.tools / Plugins.pipes non-empty).

The models listing: the routers' /v1/models with the virtual models added (beside, not
instead: a virtual model whose id the cluster also has is the pipe's), and
/v1/models/{id} for a virtual one."""

from __future__ import annotations

import fnmatch
from typing import Any

import msgspec

from eldric import keys
from eldric.errors import BadRequest, EldricError
from eldric.exchange import Answer, LaneRequest
from eldric.roles.edge.clients import Client
from eldric.roles.edge.plugins import pipes, tools
from eldric.roles.edge.plugins.host import Plugin, Plugins
from eldric.roles.edge.plugins.process import PluginError
from eldric.roles.edge.plugins.upstream import CHAT, cluster_models
from eldric.roles.edge.state import EdgeState

_dec = msgspec.json.Decoder()
MAX_TOOL_ROUNDS = 4


def virtual(host: Plugins) -> dict[str, tuple[Plugin, str]]:
    """model id -> (its pipe plugin, its display name), from the pipes' initialize."""
    out: dict[str, tuple[Plugin, str]] = {}
    for p in host.pipes:
        info = p.process.info if p.process is not None else {}
        for m in info.get("models") or ():
            if isinstance(m, dict) and isinstance(m.get("id"), str):
                out.setdefault(m["id"], (p, str(m.get("name") or m["id"])))
    return out


async def started(host: Plugins, plugins: list[Plugin]) -> None:
    """Lazy plugins start at first need (their tools or models are known only then); one
    that cannot start is left out (logged, counted, retried by its supervisor)."""
    for p in plugins:
        if p.process is not None and not p.process.running:
            try:
                await p.process.start()
            except PluginError:
                pass


def _applies(p: Plugin, model: str) -> bool:
    return p.manifest is not None and any(fnmatch.fnmatchcase(model, g)
                                          for g in p.manifest.applies_to)


async def answered(request: LaneRequest, es: EdgeState, client: Client | None,
                   body: bytes, headers: dict[str, str]) -> Answer | None:
    """The answer for a chat completion a pipe or plugin tools take; None: relay it."""
    host = es.plugins
    if request.path != CHAT or request.method != "POST":
        return None
    model = request[keys.HOP].model or ""
    name = client.name if client else "anonymous"
    user = {"name": name}
    if host.pipes:
        await started(host, host.pipes)
        found = virtual(host).get(model)
        if found is not None:
            p = found[0]
            assert p.process is not None and p.manifest is not None
            piped = pipes.Piped(request, p.id, p.process, model, _object(body), user,
                                headers, p.manifest.timeout_ms)
            count(es, name)
            return await (piped.streamed() if _object(body).get("stream") else piped.whole())
    if not host.tools and not host.mcp:
        return None
    asked = tools.wanted(request.headers.get(tools.HEADER))
    mine = [p for p in host.tools if _applies(p, model) and tools.offered(p.offer, asked)]
    servers = [s for s in host.mcp if tools.offered(s.offer, asked)
               and any(fnmatch.fnmatchcase(model, g) for g in s.applies_to)]
    if not mine and not servers:
        return None
    await started(host, mine)
    box = tools.toolbox([*((p.id, p.process) for p in mine if p.process is not None),
                         *((s.id, s) for s in servers)], asked)
    if not box:
        return None
    parsed = _object(body)
    if parsed.get("n", 1) not in (1, None) or not isinstance(parsed.get("messages"), list) \
            or not isinstance(parsed.get("tools", []), list):
        # several choices (the loop follows one conversation), or a body the model's
        # server must refuse in its own words: relayed as sent
        return None
    count(es, name)
    loop = tools.Loop(request, es, parsed, box, user, headers,
                      max_rounds=getattr(es.cfg, "max_tool_rounds", MAX_TOOL_ROUNDS))
    return await (loop.streamed() if parsed.get("stream") else loop.whole())


def count(es: EdgeState, name: str) -> None:
    """The client's request, counted as the routers' path counts it (once: the loop's
    own calls to the routers are not the client's)."""
    es.metrics.client_requests.labels(es.metrics.client_label(name)).inc()


def _object(body: bytes) -> dict[str, Any]:
    try:
        obj = _dec.decode(body)
    except msgspec.DecodeError:
        raise BadRequest("the body is not JSON") from None
    if not isinstance(obj, dict):
        raise BadRequest("the body must be a JSON object")
    return obj


async def is_virtual(host: Plugins, model: str) -> bool:
    await started(host, host.pipes)
    return model in virtual(host)


def model(host: Plugins, model: str) -> dict[str, Any]:
    """/v1/models/{id} of a virtual model (is_virtual said it is one)."""
    p, name = virtual(host)[model]
    return pipes.model_entry(model, p.id, name)


async def models(request: LaneRequest, es: EdgeState, headers: dict[str, str]) -> dict[str, Any]:
    """The routers' models with the virtual ones added (a routers' error is raised as
    it was, in the client's shape)."""
    host = es.plugins
    await started(host, host.pipes)
    status, listing = await cluster_models(request, es)
    if status >= 400:
        err = listing.get("error")
        err = err if isinstance(err, dict) else {}
        raise EldricError(str(err.get("message") or f"the routers answered {status}"),
                          status=status, code=str(err.get("code") or "upstream_error"),
                          headers=headers)
    data = [m for m in listing.get("data") or [] if isinstance(m, dict)]
    ours = virtual(host)
    data = [m for m in data if m.get("id") not in ours]
    data += pipes.listed({m: (p.id, name) for m, (p, name) in ours.items()})
    return {**listing, "object": "list", "data": data}
