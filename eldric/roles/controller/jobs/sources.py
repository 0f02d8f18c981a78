"""Where a distributed model comes from, and what each target is asked to do with it.

- `ollama`: the model is pulled by name from the Ollama registry (the worker's pull);
- `url`: a GGUF/safetensors file anywhere, installed the backend's way (the worker's
  install: Ollama gets it as a blob + /api/create, file backends in --models-dir);
- `registry`: an entry (id or name) of the controller's own model registry
  (eldric.model_registry, in this process): its name, format, size, sha256 and path; the
  worker downloads it from its /download with the cluster key, or, when it sees the same
  file at that path (a shared filesystem), uses it there;
- `worker`: the model file of another worker (`from`) that serves its files
  (GET /api/v1/models/files/{name}), found in its /api/v1/models/local.

A target that has the model already, or is the source, is skipped with that reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

import aiohttp
import msgspec

from eldric.errors import BadRequest, NotFound, UpstreamFailure
from eldric.model_registry import ModelRegistry
from eldric.roles.controller.jobs import targets
from eldric.roles.controller.jobs.calls import open_reply, read_whole
from eldric.roles.controller.jobs.table import Call
from eldric.wire.cluster import WorkerRecord
from eldric.wire.models import LocalModels, Source
from eldric.wire.tunnel import is_tunnel

_TIMEOUT = aiohttp.ClientTimeout(total=30)


class Distribute(msgspec.Struct, forbid_unknown_fields=True):
    """POST /api/v1/models/distribute."""

    model: str
    source: Source
    from_: str | None = msgspec.field(default=None, name="from")
    url: str | None = None
    sha256: str | None = None
    format: Literal["gguf", "safetensors"] = "gguf"
    name: str | None = None  # installed under this name (default: the model's)
    workers: list[str] | None = None
    backend_types: list[str] | None = None


@dataclass
class Plan:
    call: Call
    able: targets.Able
    body: dict[str, Any]
    keyed: bool = False  # the download needs the cluster key
    skip: dict[str, str] = field(default_factory=dict)  # worker id -> why not


async def plan(req: Distribute, workers: dict[str, WorkerRecord],
               session: aiohttp.ClientSession, self_url: str, key: str | None,
               registry: ModelRegistry | None) -> Plan:
    name = req.name or req.model
    if req.source == "ollama":
        return Plan("pull", targets.can_pull("ollama"), {"model": req.model})
    if req.source == "url":
        if not req.url or not req.url.startswith(("http://", "https://")):
            raise BadRequest("source url needs an http:// or https:// url", param="url")
        body = {"name": name, "url": req.url, "format": req.format}
        if req.sha256:
            body["sha256"] = req.sha256
        return _install(body, workers, name)
    if req.source == "registry":
        entry = registry.get(req.model) if registry is not None else None
        if entry is None:
            raise NotFound(f"no model {req.model} in the registry"
                           + ("" if registry is not None else " (this controller keeps none)"),
                           code="registry_model_not_found")
        body = {"name": req.name or entry.name, "format": entry.format, "size": entry.size,
                "sha256": entry.sha256, "path": entry.path,
                "url": f"{self_url}/api/v1/model-registry/{quote(entry.id, safe='')}/download"}
        p = _install(body, workers, body["name"])
        p.keyed = True
        return p
    return await _from_worker(req, name, workers, session, key)


def _install(body: dict[str, Any], workers: dict[str, WorkerRecord], name: str) -> Plan:
    return Plan("install", targets.can_install, body,
                skip={w: "it has the model already" for w, r in workers.items()
                      if name in r.models})


async def _from_worker(req: Distribute, name: str, workers: dict[str, WorkerRecord],
                       session: aiohttp.ClientSession, key: str | None) -> Plan:
    if not req.from_:
        raise BadRequest("source worker needs `from`: the id of a worker that has the model",
                         param="from")
    src = workers.get(req.from_)
    if src is None:
        raise NotFound(f"unknown worker {req.from_}", code="worker_not_found")
    if src.status == "offline":
        raise BadRequest(f"worker {req.from_} is offline", param="from")
    if src.model_ops is None or not src.model_ops.files:
        raise BadRequest(f"worker {req.from_} does not serve its model files", param="from")
    if is_tunnel(src.url):  # behind NAT: neither the controller nor a worker can fetch
        raise BadRequest(f"worker {req.from_} is reached via tunnel ({src.url}): it cannot "
                         "be a source", param="from", code="worker_via_tunnel")
    resp = await open_reply(session, "GET", f"{src.url}/api/v1/models/local", who=req.from_,
                            key=key, timeout=_TIMEOUT)
    try:
        local = msgspec.json.decode(await read_whole(resp, req.from_), type=LocalModels)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise UpstreamFailure.of(req.from_, "status", 502,
                                 f"worker {req.from_}'s model list is unreadable: {exc}") \
            from None
    found = next((m for m in local.models if m.name == req.model), None)
    if found is None:
        raise NotFound(f"worker {req.from_} does not have {req.model}",
                       code="model_not_found")
    body: dict[str, Any] = {
        "name": name, "format": found.format if found.format == "safetensors" else "gguf",
        "url": f"{src.url}/api/v1/models/files/{quote(req.model, safe='')}"}
    body |= {k: v for k in ("size", "path") if (v := getattr(found, k)) is not None}
    if found.digest and found.digest.startswith("sha256:"):
        body["sha256"] = found.digest.removeprefix("sha256:")
    p = _install(body, workers, name)
    p.keyed = True
    p.skip[req.from_] = "it is the source"
    return p
