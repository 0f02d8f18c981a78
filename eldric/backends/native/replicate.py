"""Replicate's predictions API as a native kind: a chat request is a prediction of a
language model (created, then streamed from its ``urls.stream`` or awaited with
``Prefer: wait``), cancelled when the client leaves. The translation is
eldric.wire.native.replicate. https://replicate.com/docs/reference/http
"""

from __future__ import annotations

from eldric.backends.auth import bearer
from eldric.backends.egress import Adapter, Outbound, Reach
from eldric.backends.table import CHAT, BackendDef
from eldric.wire.native import replicate


def _health(reach: Reach) -> Outbound:
    # No list of "the models this account runs" exists (GET /v1/models is every public
    # model, paged): the account is the cheap signed check, options.models the list.
    return Outbound("/v1/account", method="GET", framing="json",
                    headers={"Accept": "application/json"})


ADAPTERS = {"replicate": Adapter(
    name="replicate", ops={CHAT: replicate.ChatEgress}, sign=bearer,
    models=lambda reach: None, parse_models=lambda raw: [], health=_health,
    tools="xml", vision=False,
    # where Replicate's replies point besides api.replicate.com: its stream URLs
    # (https://stream.replicate.com/v1/files/…, https://stream-b.svc.ric1.c.replicate.net/
    # v1/streams/…, as replicate-python's and replicate-javascript's fixtures show)
    reply_hosts=("replicate.com", ".replicate.com", ".replicate.net"),
    option_keys=frozenset({"version", "deployment", "wait", "names", "input"}))}

ROWS = [BackendDef(
    "replicate", "Replicate (predictions)", "replicate", "https://api.replicate.com",
    "cloud", auth="bearer", key_env="REPLICATE_API_TOKEN", models=None, paths=(CHAT,),
    tools="xml", vision=False, docs="https://replicate.com/docs/reference/http",
    tested="fake (tests/fakes/replicate.py), cloud and worker roles",
    note="options.models names the models (owner/name, or owner/name:version); "
         "options.deployment, options.names, options.input for other models' inputs")]
