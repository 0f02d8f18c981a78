"""A plugin call's child span (eldric.trace): `eldric.plugin.<hook>` with the plugin's
id and, for a tool, the GenAI semconv's tool attributes; its duration is the span's, its
outcome an attribute (ERROR when it failed). Off (not traced): NULL, nothing built."""

from __future__ import annotations

from typing import Any

from eldric import keys, trace


def call(request: Any, hook: str, plugin: str, tool: str | None = None) -> trace.SpanLike:
    return on(request[keys.HOP], hook, plugin, tool)


def on(hop: Any, hook: str, plugin: str, tool: str | None = None) -> trace.SpanLike:
    """The same for a caller that holds the Hop (or None: a call outside any request)."""
    if hop is None or hop.span is None:
        return trace.NULL
    attrs: dict[str, Any] = {"eldric.plugin.id": plugin, "eldric.plugin.hook": hook}
    if tool is not None:
        attrs["gen_ai.operation.name"] = "execute_tool"
        attrs["gen_ai.tool.name"] = tool
    return trace.child(hop, f"eldric.plugin.{hook}", attrs)


def failed(span: trace.SpanLike, outcome: str, why: str) -> None:
    span.set_attribute("eldric.outcome", outcome)
    span.fail(why)
