"""The Factories of Ollama's /api/chat and /api/generate (eldric.wire.translate): the
client's body in, its OllamaReply out, or a 400 naming the field for a body Ollama would
refuse or that has no Chat Completions equivalent."""

from __future__ import annotations

from typing import Any

from eldric.errors import BadRequest
from eldric.wire import ollama_request as req
from eldric.wire.ollama_reply import OllamaReply

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"


def _unloads(keep_alive: Any) -> bool:
    """keep_alive 0 (seconds, or a duration string such as "0s", "0m"): unload now."""
    if isinstance(keep_alive, bool):
        return False
    if isinstance(keep_alive, (int, float)):
        return keep_alive == 0
    return isinstance(keep_alive, str) and keep_alive[:1] == "0" \
        and not keep_alive.rstrip("smhµun").strip("0.")


def _body(model: str, stream: bool, body: req._Common) -> dict:
    out: dict[str, Any] = {"model": model, "stream": stream}
    if stream:
        out["stream_options"] = {"include_usage": True}  # the done line's counts
    req.sampling(body, out)
    return out


def _loading(model: str, keep_alive: Any, *, chat: bool) -> OllamaReply:
    """An empty chat or prompt loads (keep_alive 0: unloads) the model; Ollama answers at
    once with one JSON object. The backend is asked for one token, so an unknown model is
    a 404 as on Ollama."""
    body = {"model": model, "messages": [{"role": "user", "content": ""}], "max_tokens": 1,
            "stream": False}
    return OllamaReply(model=model, stream=False, upstream_path=CHAT, body=body, chat=chat,
                       load="unload" if _unloads(keep_alive) else "load")


def chat(raw: bytes) -> OllamaReply:
    """POST /api/chat."""
    b = req.decode(raw, req.ChatBody)
    if not b.messages:
        return _loading(b.model, b.keep_alive, chat=True)
    stream = b.stream is not False
    out = _body(b.model, stream, b)
    out["messages"] = req.messages(b.messages)
    tools = req.tools(b.tools)
    if tools:
        out["tools"] = tools
    return OllamaReply(model=b.model, stream=stream, upstream_path=CHAT, body=out, chat=True,
                       thinking=b.think is not False)


def generate(raw: bytes) -> OllamaReply:
    """POST /api/generate: the prompt (and system) as a chat, or with `raw` the prompt as it
    is to /v1/completions, which applies no template either."""
    b = req.decode(raw, req.GenerateBody)
    if not b.prompt:
        return _loading(b.model, b.keep_alive, chat=False)
    for field in ("suffix", "template"):
        if getattr(b, field):
            raise BadRequest(f"{field} has no equivalent on this model's backend (it speaks "
                             "Chat Completions): leave it out", param=field)
    if b.context:
        raise BadRequest("context (deprecated by Ollama) has no equivalent on this model's "
                         "backend: send the conversation to /api/chat", param="context")
    stream = b.stream is not False
    out = _body(b.model, stream, b)
    if b.raw:
        if b.system:
            raise BadRequest("raw mode does not support system", param="system")
        if b.images:
            raise BadRequest("raw mode does not support images", param="images")
        out.pop("reasoning_effort", None)
        out["prompt"] = b.prompt
        path = COMPLETIONS
    else:
        turns: list[dict] = [{"role": "system", "content": b.system}] if b.system else []
        turns.append({"role": "user",
                      "content": req.user_content(b.prompt, b.images, "images")})
        out["messages"] = turns
        path = CHAT
    return OllamaReply(model=b.model, stream=stream, upstream_path=path, body=out,
                       chat=False, thinking=b.think is not False)
