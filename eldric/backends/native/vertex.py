"""Vertex AI, natively: Google's Gemini models (generateContent) and Anthropic's Claude
(rawPredict), one backend for a project and location, a service account's OAuth token
(eldric/backends/auth_google.py, the extra ``eldric[vertex]``).

Paths (https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/inference,
/partner-models/claude/use-claude), below the backend's URL
(``https://aiplatform.googleapis.com`` for the ``global`` location, else
``https://{location}-aiplatform.googleapis.com``)::

    /v1/projects/{project}/locations/{location}/publishers/google/models/{m}:generateContent
                                                                  …:streamGenerateContent?alt=sse
    /v1/projects/{project}/locations/{location}/publishers/anthropic/models/{m}:rawPredict
                                                                  …:streamRawPredict

A model whose name starts with ``claude`` is Anthropic's, any other Google's (option
``publisher`` overrides). Options: ``project`` (required), ``location`` (default
``global``), ``credentials`` (see auth_google), ``models`` (the list served: Vertex has no
per-project list of the models a project may call; the Model Garden's is every model).
The probe is ``GET /v1/projects/{project}/locations/{location}``, signed, which tells the
token, the project and the location are good. Embeddings are not translated here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from eldric.backends.auth import lazy
from eldric.backends.egress import Adapter, Context, Outbound, Reach
from eldric.backends.native.anthropic import Messages
from eldric.backends.native.gemini import OPTIONS as GEMINI_OPTIONS
from eldric.backends.native.gemini import Chat
from eldric.backends.table import CHAT, BackendDef
from eldric.errors import EldricError
from eldric.stream.upstream_errors import normalise
from eldric.wire.native import anthropic_vertex
from eldric.wire.native import gemini as gemini_wire

DOCS = "https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/inference"


async def _ready(reach: Reach) -> None:
    from eldric.backends import auth_google  # google-auth only where Vertex is configured

    await auth_google.ready(reach)


def _where(options: Any) -> str:
    project = options.get("project")
    if not isinstance(project, str) or not project:
        raise EldricError("this vertex backend has no options.project", status=500,
                          code="backend_misconfigured")
    location = options.get("location") or "global"
    return f"/v1/projects/{quote(project, safe='')}/locations/{quote(str(location), safe='')}"


def publisher(model: str, options: Any) -> str:
    return options.get("publisher") or ("anthropic" if model.startswith("claude") else "google")


class Claude(Messages):
    """One chat request to Claude on Vertex: Anthropic's Messages egress under rawPredict
    / streamRawPredict, ``anthropic_version`` in the body and the model in the path; its
    errors in Google's shape (the Vertex front) or Anthropic's (the model)."""

    def __init__(self, body: dict, ctx: Context, prefix: str):
        method = ":streamRawPredict" if body.get("stream") else ":rawPredict"
        super().__init__(body, ctx, path=prefix + method, headers={},
                         extra={"anthropic_version": anthropic_vertex.VERSION, "model": None})

    def error(self, status: int, raw: bytes) -> tuple[int, bytes]:
        return anthropic_vertex.error(status, raw, self.model) or (
            status, normalise(status, raw, self.model))

    def retry_after(self, raw: bytes) -> str | None:  # the Vertex front's 429: Google's shape
        return gemini_wire.retry_after(raw)


def chat(body: dict, ctx: Context) -> Chat | Claude:
    pub = publisher(ctx.model, ctx.options)
    prefix = f"{_where(ctx.options)}/publishers/{quote(pub, safe='')}/models/" \
             f"{quote(ctx.model, safe='-._~@')}"
    if pub == "anthropic":
        return Claude(body, ctx, prefix)
    return Chat(body, ctx, prefix)


def _health(reach: Reach) -> Outbound | None:
    """None without a project: nothing to probe (each request answers 500
    backend_misconfigured, which says what is missing)."""
    try:
        return Outbound(_where(reach.options), method="GET")
    except EldricError:
        return None


def _check(options: Mapping[str, Any], key: str | None) -> None:
    """At configuration: the project every path names; google-auth where a service
    account signs (without one, api_key is sent as a ready-made token)."""
    project = options.get("project")
    if not isinstance(project, str) or not project:
        raise ValueError("options.project is required (the Google Cloud project id: "
                         "{\"project\": \"my-project\", \"location\": \"us-east5\"})")
    if options.get("credentials") or os.environ.get("GOOGLE_APPLICATION_CREDENTIALS"):
        try:
            import google.oauth2.service_account  # noqa: F401
        except ImportError:
            raise ValueError("a service account signs for Vertex AI through google-auth: "
                             "pip install 'eldric[vertex]'") from None
    elif not key:
        raise ValueError("no credentials: options.credentials (a service-account key "
                         "file), GOOGLE_APPLICATION_CREDENTIALS, or api_key (an access "
                         "token)")


ADAPTERS = {"vertex": Adapter(
    name="vertex", ops={CHAT: chat}, sign=lazy("google"), ready=_ready, models=lambda reach: None,
    parse_models=lambda raw: [], health=_health, tools="native", vision=True,
    option_keys=GEMINI_OPTIONS | {"project", "location", "credentials", "publisher"},
    check=_check)}

ROWS = [BackendDef(
    "vertex", "Google Vertex AI (Gemini, Claude on Vertex)", "vertex",
    "https://aiplatform.googleapis.com", "cloud", auth="google", models=None, paths=(CHAT,),
    tools="native", vision=True, docs=DOCS, tested="fake (tests/fakes/vertex.py)",
    note="options: project (required), location, credentials, models; a regional "
         "location needs its URL (https://{location}-aiplatform.googleapis.com); "
         "pip install 'eldric[vertex]'")]
