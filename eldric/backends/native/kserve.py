"""KServe / Triton v2 generate: the adapter and its table row (the translation is
eldric/wire/native/kserve.py, which cites the spec)."""

from __future__ import annotations

from eldric.backends import auth
from eldric.backends.egress import Adapter, Outbound, Reach
from eldric.backends.table import CHAT, BackendDef
from eldric.wire.native import kserve


def _models(reach: Reach) -> Outbound:
    return kserve.models(str(reach.options.get("server", "triton")))


ADAPTERS = {"kserve": Adapter(
    name="kserve", ops={CHAT: kserve.chat}, sign=auth.bearer, models=_models,
    parse_models=kserve.parse_models, health=lambda r: kserve.HEALTH, tools="xml",
    vision=False, check=lambda options, key: kserve.check(options),
    option_keys=frozenset({"server", "version", "inputs", "parameters", "sampling_at"}))}

ROWS = [BackendDef(
    "kserve", "KServe / Triton v2 generate", "kserve", "http://127.0.0.1:8000", "local",
    auth="bearer", models=None, paths=(CHAT,), tools="xml", vision=False,
    docs="https://github.com/triton-inference-server/server/blob/main/docs/protocol/"
         "extension_generate.md",
    tested="fake (tests/fakes/kserve.py)",
    note="options: server triton|kserve, version, inputs, parameters (docs/backends.md)")]
