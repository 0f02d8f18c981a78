"""The Responses API's reply objects built from a Chat Completions reply: the `response`
object, its output items and usage (O-SPEC `Response`, the openai SDK's
types/responses/response.py; research: formats.md §2.3, §2.7). Pure, no I/O."""

from __future__ import annotations

import secrets
import time
from typing import Any

import msgspec

_decode = msgspec.json.decode
_encode = msgspec.json.encode


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(24)}"


# Echoed from the request into every response object, with the documented defaults.
_ECHO_DEFAULTS: dict[str, Any] = {
    "instructions": None, "max_output_tokens": None, "parallel_tool_calls": True,
    "previous_response_id": None, "store": True, "temperature": 1.0, "tool_choice": "auto",
    "tools": [], "top_p": 1.0, "truncation": "disabled", "user": None, "metadata": {}}


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def echo(req: dict) -> dict:
    """The request's fields a response object repeats."""
    out = {k: v if req.get(k) is None else req[k] for k, v in _ECHO_DEFAULTS.items()}
    reasoning = _dict(req.get("reasoning"))
    out["reasoning"] = {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")}
    out["text"] = {"format": _dict(req.get("text")).get("format") or {"type": "text"}}
    return out


def _count(obj: dict, field: str) -> int:
    """A token count; a backend's junk there counts as none (the SDK's type needs an int)."""
    value = obj.get(field)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def usage(chat_usage: Any) -> dict:
    """Chat Completions usage -> Responses usage (every field is required by the SDK's type)."""
    u = _dict(chat_usage)
    prompt, completion = _count(u, "prompt_tokens"), _count(u, "completion_tokens")
    cached = _count(_dict(u.get("prompt_tokens_details")), "cached_tokens")
    reasoning = _count(_dict(u.get("completion_tokens_details")), "reasoning_tokens")
    return {"input_tokens": prompt,
            "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
            "output_tokens": completion,
            "output_tokens_details": {"reasoning_tokens": reasoning},
            "total_tokens": _count(u, "total_tokens") or prompt + completion}


# finish_reason -> incomplete_details.reason; the others (stop, tool_calls) complete
INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def message_item(text: str, status: str = "completed", item_id: str | None = None) -> dict:
    return {"id": item_id or new_id("msg"), "type": "message", "status": status,
            "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": []}]}


def call_item(call_id: str | None, name: str, arguments: str, status: str = "completed",
              item_id: str | None = None) -> dict:
    return {"id": item_id or new_id("fc"), "type": "function_call", "status": status,
            "call_id": call_id or new_id("call"), "name": name, "arguments": arguments}


class Reply:
    """One response being built: its id, its echo of the request, and the last complete
    response object made (``final``: what the store keeps)."""

    def __init__(self, req: dict) -> None:
        self.model: str = req["model"]
        self.id = new_id("resp")
        self.created_at = int(time.time())
        self.echo = echo(req)
        self.final: dict | None = None

    def response(self, status: str, output: list[dict], usage_: dict | None, *,
                 error: dict | None = None, reason: str | None = None) -> dict:
        done = status in ("completed", "incomplete")
        resp = {"id": self.id, "object": "response", "created_at": self.created_at,
                "status": status, "completed_at": int(time.time()) if done else None,
                "error": error, "incomplete_details": {"reason": reason} if reason else None,
                "model": self.model, "output": output, "usage": usage_, **self.echo}
        if status != "in_progress":
            self.final = resp
        return resp

    def whole(self, body: bytes) -> bytes:
        """A whole chat.completion -> the response object; ValueError (the upstream's
        failure: a 502) for a reply that is not one."""
        try:
            reply = _decode(body)
        except (msgspec.DecodeError, RecursionError) as exc:  # 0.18's is no ValueError
            raise ValueError(f"the chat completion is not JSON: {exc}") from None
        if not isinstance(reply, dict) or not isinstance(reply.get("choices"), list):
            raise ValueError("a chat completion without choices")
        choice = _dict(reply["choices"][0]) if reply["choices"] else {}
        msg = _dict(choice.get("message"))
        content, calls = msg.get("content"), msg.get("tool_calls") or []
        if content is not None and not isinstance(content, str):
            raise ValueError("a chat completion whose message content is not a string")
        if not isinstance(calls, list) or not all(isinstance(c, dict) for c in calls):
            raise ValueError("a chat completion whose tool_calls is not an array of objects")
        finish = choice.get("finish_reason")
        if finish is not None and not isinstance(finish, str):
            raise ValueError("a chat completion whose finish_reason is not a string")
        output = []
        if content or not calls:
            output.append(message_item(content or ""))
        for call in calls:
            fn = _dict(call.get("function"))
            name, arguments, cid = fn.get("name") or "", fn.get("arguments") or "", call.get("id")
            if not (isinstance(name, str) and isinstance(arguments, str)
                    and (cid is None or isinstance(cid, str))):
                raise ValueError("a chat completion whose tool call's id, name or arguments "
                                 "is not a string")
            output.append(call_item(cid, name, arguments))
        reason = INCOMPLETE.get(finish) if finish is not None else None
        return _encode(self.response("incomplete" if reason else "completed", output,
                                     usage(reply.get("usage")), reason=reason))
