"""Hugging Face TGI's native generate API (before its Messages API): the adapter and
its table row (the translation is eldric/wire/native/tgi.py, which cites the spec)."""

from __future__ import annotations

from eldric.backends import auth
from eldric.backends.egress import Adapter
from eldric.backends.table import CHAT, BackendDef
from eldric.wire.native import tgi

ADAPTERS = {"tgi-native": Adapter(
    name="tgi-native", ops={CHAT: tgi.chat}, sign=auth.bearer, models=lambda r: tgi.INFO,
    parse_models=tgi.parse_models, health=lambda r: tgi.HEALTH, tools="xml", vision=False,
    check=lambda options, key: tgi.check(options), option_keys=frozenset({"parameters"}))}

ROWS = [BackendDef(
    "tgi-native", "Hugging Face TGI (native /generate)", "tgi-native",
    "http://127.0.0.1:8080", "local", auth="bearer", key_env="HF_TOKEN", models=None,
    paths=(CHAT,), tools="xml", vision=False,
    docs="https://huggingface.github.io/text-generation-inference/",
    tested="fake (tests/fakes/tgi.py)",
    note="for TGI < 1.4 or native-only deployments; TGI's Messages API is the tgi preset")]
