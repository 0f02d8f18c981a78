"""A cached reply in either form: a stream's chunks made whole (what is stored), and a
whole reply told again as a stream (a streamed request answered from the store).
Chat completions and legacy completions, OpenAI's shapes."""

from __future__ import annotations

import json

DONE = b"data: [DONE]\n\n"


class Accumulator:
    """The Tap of a streamed miss: every SSE event, read-only. whole() is the reply made
    whole, or None unless the stream ended with [DONE] and every choice finished (a
    partial stream is never stored)."""

    __slots__ = ("head", "choices", "usage", "done", "broken")

    def __init__(self) -> None:
        self.head: dict | None = None
        self.choices: dict[int, dict] = {}
        self.usage = None
        self.done = False
        self.broken = False

    def __call__(self, event: bytes) -> None:
        for line in event.splitlines():
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                self.done = True
                continue
            try:
                chunk = json.loads(data)
                self._add(chunk)
            except Exception:  # an error event, or not OpenAI's shape: not stored
                self.broken = True

    def _add(self, chunk: dict) -> None:
        if "error" in chunk:
            self.broken = True
            return
        if self.head is None:
            self.head = {k: chunk[k] for k in ("id", "created", "model", "system_fingerprint",
                                               "object") if k in chunk}
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        for c in chunk.get("choices") or ():
            i = c.get("index", 0)
            mine = self.choices.setdefault(i, {"index": i, "text": [], "tools": {},
                                               "finish_reason": None, "role": "assistant"})
            delta = c.get("delta")
            if delta is None:  # legacy completions: text
                mine["text"].append(c.get("text") or "")
            else:
                if delta.get("role"):
                    mine["role"] = delta["role"]
                if delta.get("content"):
                    mine["text"].append(delta["content"])
                for t in delta.get("tool_calls") or ():
                    got = mine["tools"].setdefault(t.get("index", 0), {
                        "id": None, "type": "function", "function": {"name": "", "arguments": ""}})
                    if t.get("id"):
                        got["id"] = t["id"]
                    fn = t.get("function") or {}
                    got["function"]["name"] += fn.get("name") or ""
                    got["function"]["arguments"] += fn.get("arguments") or ""
            if c.get("finish_reason"):
                mine["finish_reason"] = c["finish_reason"]

    def whole(self, chat: bool) -> dict | None:
        if not self.done or self.broken or self.head is None or not self.choices or any(
                c["finish_reason"] is None for c in self.choices.values()):
            return None
        out = dict(self.head)
        out["object"] = "chat.completion" if chat else "text_completion"
        choices = []
        for i in sorted(self.choices):
            c = self.choices[i]
            text = "".join(c["text"])
            if chat:
                msg: dict = {"role": c["role"], "content": text or None}
                if c["tools"]:
                    msg["tool_calls"] = [c["tools"][k] for k in sorted(c["tools"])]
                choices.append({"index": i, "message": msg, "logprobs": None,
                                "finish_reason": c["finish_reason"]})
            else:
                choices.append({"index": i, "text": text, "logprobs": None,
                                "finish_reason": c["finish_reason"]})
        out["choices"] = choices
        if self.usage is not None:
            out["usage"] = self.usage
        return out


def as_stream(reply: dict, chat: bool, include_usage: bool) -> bytes:
    """A whole reply as the SSE stream the backend would have sent: each choice's content
    in one chunk, then its finish_reason, the usage chunk if asked, then [DONE]."""
    head = {k: reply[k] for k in ("id", "created", "model", "system_fingerprint")
            if k in reply}
    head["object"] = "chat.completion.chunk" if chat else "text_completion"
    out = []

    def chunk(choices: list, **more: object) -> None:
        out.append(b"data: " + json.dumps({**head, "choices": choices, **more},
                                          separators=(",", ":")).encode() + b"\n\n")

    for c in reply.get("choices") or ():
        i = c.get("index", 0)
        if chat:
            msg = c.get("message") or {}
            delta: dict = {"role": msg.get("role", "assistant"), "content": msg.get("content")}
            if msg.get("tool_calls"):
                delta["tool_calls"] = [{"index": n, **t}
                                       for n, t in enumerate(msg["tool_calls"])]
            chunk([{"index": i, "delta": delta, "logprobs": None, "finish_reason": None}])
            chunk([{"index": i, "delta": {}, "logprobs": None,
                    "finish_reason": c.get("finish_reason")}])
        else:
            chunk([{"index": i, "text": c.get("text", ""), "logprobs": None,
                    "finish_reason": c.get("finish_reason")}])
    if include_usage and reply.get("usage") is not None:
        chunk([], usage=reply["usage"])
    out.append(DONE)
    return b"".join(out)
