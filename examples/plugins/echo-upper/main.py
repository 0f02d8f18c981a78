"""A pipe: the virtual model `echo-upper` asks a cluster model through the edge (with
the token the edge gave this process) and answers in capitals, streamed as it comes."""

import json
import urllib.request

from eldric import plugin


def _open(path: str, body: dict | None = None):  # type: ignore[no-untyped-def]
    req = urllib.request.Request(
        plugin.edge_url + path, data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {plugin.token}", "Content-Type": "application/json"})
    # HTTPS: pinned to the edge's own certificate (edge_url names loopback, which the
    # certificate need not cover); None over plain HTTP
    return urllib.request.urlopen(req, timeout=60, context=plugin.edge_ssl())


def _model() -> str:
    if plugin.valves.get("model"):
        return plugin.valves["model"]
    with _open("/v1/models") as r:
        listed = [m["id"] for m in json.load(r)["data"]]
    real = [m for m in listed if m != "echo-upper"]  # never ask ourselves
    if not real:
        raise RuntimeError("the cluster lists no model to ask")
    return real[0]


@plugin.pipe(id="echo-upper", name="Echo upper (a cluster model, in capitals)")
def answer(body, user):  # type: ignore[no-untyped-def]
    ask = {"model": _model(), "messages": body.get("messages") or [], "stream": True}
    for key in ("max_tokens", "temperature"):
        if key in body:
            ask[key] = body[key]
    with _open("/v1/chat/completions", ask) as r:
        for raw in r:
            line = raw.decode().strip()
            if not line.startswith("data:") or line == "data: [DONE]":
                continue
            choices = json.loads(line[5:]).get("choices") or [{}]
            piece = (choices[0].get("delta") or {}).get("content")
            if piece:
                yield piece.upper()


plugin.run()
