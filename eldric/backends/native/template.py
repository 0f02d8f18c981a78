"""The configured request/response template (TorchServe, TensorFlow Serving, Seldon /
MLServer, Azure ML /score, a deployed LCM or VL-JEPA server…): the adapter and its row
(the translation is eldric/wire/native/template.py; worked examples in
docs/backends.md)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from eldric.backends import auth
from eldric.backends.egress import Adapter, Outbound, Reach
from eldric.backends.table import CHAT, BackendDef
from eldric.wire.native import template


def _health(reach: Reach) -> Outbound | None:
    """The configured ``health`` path (GET), if any: these APIs have no model list, so
    the ``models`` option is served as it is."""
    path = reach.options.get("health")
    return Outbound(path=path, method="GET") if isinstance(path, str) and path else None


def _check(options: Mapping[str, Any], key: str | None) -> None:
    """The template's own check (run per request too), at configuration."""
    try:
        template.check(options)
    except template.Misconfigured as exc:
        raise ValueError(exc.message) from None


ADAPTERS = {"template": Adapter(
    name="template", ops={CHAT: template.chat}, sign=auth.bearer, models=lambda r: None,
    parse_models=lambda raw: [], health=_health, tools="xml", vision=False,
    option_keys=frozenset({"path", "request", "response", "finish", "usage", "strip_prompt",
                           "method", "headers", "stream", "health"}),
    check=_check)}

ROWS = [BackendDef(
    "template", "A configured JSON template (TorchServe, TF Serving, MLServer, Azure ML "
    "/score…)", "template", None, "local", auth="bearer", models=None, paths=(CHAT,),
    tools="xml", vision=False, docs="docs/backends.md#template",
    tested="fakes (tests/backends/test_template_examples.py)",
    note="url required; options path, request, response, models required (docs/backends.md)")]
