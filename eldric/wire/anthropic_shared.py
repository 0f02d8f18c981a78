"""What both directions of the Anthropic Messages translation share.

eldric speaks Anthropic's Messages API two ways: as a client of Anthropic (the cloud
worker's egress, wire/anthropic_egress*.py: Chat Completions in, Messages out and back)
and as a server of it (the ingress, wire/anthropic*.py: a client's Messages request to any
Chat Completions backend and back). Both read and write the same vocabulary: stop
reasons, usage counts, error types, SSE events. Shapes: https://docs.anthropic.com/en/api/
messages, /en/docs/build-with-claude/streaming, /en/api/errors.
"""

from __future__ import annotations

import re

from typing import Any

import msgspec

from eldric.wire.openai_reply import Usage

# What eldric sends as anthropic-version when it calls Anthropic.
ANTHROPIC_VERSION = "2023-06-01"

# Anthropic stop_reason -> OpenAI finish_reason. pause_turn (a server-tool turn paused, to
# be resumed by sending it back) has no OpenAI twin: the turn did end, so "stop".
FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "pause_turn": "stop",
    "refusal": "content_filter",
}

# OpenAI finish_reason -> Anthropic stop_reason (a stop string the backend names turns
# "stop" into "stop_sequence": see stop_reason()). function_call is the deprecated twin of
# tool_calls.
STOP_REASON = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}

# Anthropic error type -> (OpenAI type, code, HTTP status it comes with).
ERRORS = {
    "invalid_request_error": ("invalid_request_error", "invalid_request", 400),
    "authentication_error": ("authentication_error", "invalid_api_key", 401),
    "billing_error": ("insufficient_quota", "insufficient_quota", 402),
    "permission_error": ("permission_error", "permission_denied", 403),
    "not_found_error": ("not_found_error", "not_found", 404),
    "request_too_large": ("invalid_request_error", "request_too_large", 413),
    "rate_limit_error": ("rate_limit_error", "rate_limit_exceeded", 429),
    "api_error": ("api_error", "upstream_error", 500),
    "timeout_error": ("timeout_error", "upstream_timeout", 504),
    "overloaded_error": ("api_error", "upstream_overloaded", 503),
}

# An OpenAI error type (in a backend's mid-stream error event, which has no status of its
# own) -> the HTTP status it stands for; anything else is a 500.
STATUS_OF_OPENAI_TYPE = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "rate_limit_error": 429,
    "timeout_error": 504,
}

_encode = msgspec.json.encode


def stop_reason(finish_reason: Any, matched: Any, has_tool_calls: bool) -> tuple[str, str | None]:
    """(stop_reason, stop_sequence) for a Chat Completions choice. `matched` is the stop
    string the backend says it stopped on (vLLM's choice.stop_reason; a token id there is
    an int and names no string). A backend that calls tools but says "stop" (some do) is
    still a tool_use turn: that is what tells an Anthropic client to run the tools."""
    if finish_reason == "stop" and isinstance(matched, str):
        return "stop_sequence", matched
    if has_tool_calls and finish_reason in (None, "stop"):
        return "tool_use", None
    return STOP_REASON.get(finish_reason, "end_turn"), None


# ---------------------------------------------------------------- usage

def prompt_tokens(usage: dict) -> int:
    """Anthropic splits the prompt: input_tokens excludes cache writes and cache reads."""
    return sum(usage.get(k) or 0 for k in
               ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"))


def openai_usage(prompt: int, completion: int, cached: int | None) -> dict:
    u: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion,
                         "total_tokens": prompt + completion}
    if cached:
        u["prompt_tokens_details"] = {"cached_tokens": cached}
    return u


def usage_counts(data: bytes) -> tuple[int, int] | None:
    """(prompt, completion) tokens a Message or a stream event of Anthropic's states: a
    Message both, message_start the prompt, message_delta the completion (cumulative, and
    there is one per message); None for anything else."""
    try:
        obj = msgspec.json.decode(data)
    except msgspec.DecodeError:
        return None
    kind = obj.get("type") if isinstance(obj, dict) else None
    if kind == "message_start" and isinstance(obj.get("message"), dict):
        obj = obj["message"]
    usage = obj.get("usage") if kind in ("message", "message_start", "message_delta") else None
    if not isinstance(usage, dict):
        return None
    if kind == "message_delta":
        return 0, _int(usage.get("output_tokens"))
    if kind == "message_start":
        return prompt_tokens(usage), 0
    return prompt_tokens(usage), _int(usage.get("output_tokens"))


def anthropic_usage(usage: Usage | None) -> dict:
    """An OpenAI usage object -> Anthropic's usage, the inverse of openai_usage: the prompt
    tokens the backend served from its cache are cache_read_input_tokens, the rest
    input_tokens (Anthropic's whole prompt is their sum)."""
    if usage is None:
        return {"input_tokens": 0, "output_tokens": 0}
    prompt = _int(usage.prompt_tokens)
    details = usage.prompt_tokens_details
    cached = _int(details.cached_tokens) if details is not None else 0
    out = {"input_tokens": max(prompt - cached, 0),
           "output_tokens": _int(usage.completion_tokens)}
    if cached:
        out["cache_read_input_tokens"] = cached
    return out


def _int(v: Any) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else 0


# ---------------------------------------------------------------- SSE

_SSE_LINE = re.compile(rb"\r\n|\r|\n")


def sse_fields(event: bytes) -> tuple[str | None, bytes | None]:
    """(event name, data) of one SSE event (its bytes without the blank line): data lines
    joined with newlines as the SSE spec says; comments and other fields skipped."""
    if event.startswith(b"data: ") and b"\n" not in event:
        return None, event[6:]  # one data line: what nearly every event is, read as it is
    data, name = [], None
    # SSE's lines end at CRLF, LF or CR only (str.splitlines would also cut at U+2028,
    # form feeds and the like, which a text event carries raw: Replicate's output events)
    for line in _SSE_LINE.split(event):
        field, _, value = line.partition(b":")
        value = value[1:] if value.startswith(b" ") else value
        if field == b"data":
            data.append(value)
        elif field == b"event":
            name = value.decode("utf-8", "replace")
    return name, (b"\n".join(data) if data else None)


def named_event(obj: dict) -> bytes:
    """One Anthropic SSE event: the SDK reads only events with an `event:` line, named as
    their data's type."""
    return b"event: " + obj["type"].encode() + b"\ndata: " + _encode(obj) + b"\n\n"
