"""Amazon SageMaker real-time endpoints (InvokeEndpoint, InvokeEndpointWithResponseStream)
serving an LLM container, signed with SigV4 (eldric/backends/auth_aws.py, the extra
``eldric[aws]``, signing name ``sagemaker``).

Two kinds, by the container's schema (eldric/wire/native/sagemaker.py): ``sagemaker``
for a TGI container's ``inputs``/``parameters`` (one prompt, tools by eldric's XML
emulation), ``sagemaker-lmi`` for the chat schema of an LMI container (or TGI 1.4+).
The model a client names is the endpoint's name. The runtime has no model list, so the
endpoints are given as ``options.models`` and served as they are (nothing is probed).
Options: ``region``, the credentials of auth_aws.py, ``models``, ``inference_component``
(X-Amzn-SageMaker-Inference-Component), ``target_variant``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from eldric.backends import auth_aws
from eldric.backends.egress import Adapter, Context, Outbound, Reach
from eldric.backends.eventstream import split
from eldric.backends.table import CHAT, BackendDef
from eldric.stream.upstream_errors import normalise
from eldric.wire.native import sagemaker as wire

DOCS = "https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_runtime_InvokeEndpoint.html"
URL = "https://runtime.sagemaker.us-east-1.amazonaws.com"


class _Egress(wire.Endpoint):
    """The Egress half both containers share (egress.py): the request, the frames."""

    def outbound(self) -> Outbound:
        return Outbound(wire.endpoint_path(self.model, self.stream), self._body,
                        headers=self.headers(), framing="aws" if self.stream else "json")

    def feed(self, frame: bytes) -> list[bytes]:
        return self.event(*split(frame))

    def error(self, status: int, raw: bytes) -> tuple[int, bytes]:
        mapped, body = wire.error(status, raw)
        return mapped, body if body is not None else normalise(mapped, raw, "sagemaker")

    def follow(self, raw: bytes) -> Outbound | None:
        return None


class Tgi(_Egress, wire.Tgi):
    pass


class Lmi(_Egress, wire.Lmi):
    pass


def tgi(body: dict, ctx: Context) -> Tgi:
    return Tgi(body, ctx)


def lmi(body: dict, ctx: Context) -> Lmi:
    return Lmi(body, ctx)


def _no_list(reach: Reach) -> Outbound | None:
    if auth_aws.available():
        auth_aws.keeper(reach).kick()  # resolved from the probe on, off the loop
    return None


def _none(raw: bytes) -> list[str]:
    return []


def _check(options: Mapping[str, Any], key: str | None) -> None:
    auth_aws.check(options, key)  # always signed: botocore needed
    models = options.get("models")
    if not isinstance(models, list) or not models or not all(
            isinstance(m, str) and m for m in models):
        raise ValueError("option models must list the endpoint names (the runtime has "
                         "no model list)")


_SIGN = auth_aws.sigv4("sagemaker")
_OPTIONS = auth_aws.OPTIONS | {"inference_component", "target_variant"}
ADAPTERS = {
    "sagemaker": Adapter(name="sagemaker", ops={CHAT: tgi}, sign=_SIGN, models=_no_list,
                         ready=auth_aws.ready, parse_models=_none, tools="xml",
                         vision=False, option_keys=_OPTIONS, check=_check),
    "sagemaker-lmi": Adapter(name="sagemaker-lmi", ops={CHAT: lmi}, sign=_SIGN,
                             models=_no_list, ready=auth_aws.ready, parse_models=_none,
                             tools="native", option_keys=_OPTIONS, check=_check),
}

_NOTE = ("pip install 'eldric[aws]'; the endpoint names as options.models; SigV4 from "
         "options/env/profile")
ROWS = [
    BackendDef("sagemaker", "Amazon SageMaker endpoint, TGI container (inputs/parameters)",
               "sagemaker", URL, "cloud", auth="sigv4", models=None, paths=(CHAT,),
               tools="xml", vision=False, docs=DOCS,
               tested="fake (tests/fakes/sagemaker.py, SigV4 checked by botocore)", note=_NOTE),
    BackendDef("sagemaker-lmi", "Amazon SageMaker endpoint, LMI container (chat schema)",
               "sagemaker-lmi", URL, "cloud", auth="sigv4", models=None, paths=(CHAT,),
               tools="native", docs=DOCS,
               tested="fake (tests/fakes/sagemaker.py, SigV4 checked by botocore)", note=_NOTE),
]
