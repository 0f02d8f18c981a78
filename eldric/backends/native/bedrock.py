"""Amazon Bedrock (Converse / ConverseStream), natively: chat, streamed too, tools and
images, signed with SigV4 (eldric/backends/auth_aws.py, the extra ``eldric[aws]``) or a
Bedrock API key (the backend's key, sent as a bearer token).

The translation is eldric/wire/native/bedrock.py; this module is its Adapter and table
row. The backend's URL is the runtime endpoint, ``https://bedrock-runtime.{region}.
amazonaws.com``; the model list is the control plane's ListFoundationModels, ``GET
https://bedrock.{region}.amazonaws.com/foundation-models?byOutputModality=TEXT``
(https://docs.aws.amazon.com/bedrock/latest/APIReference/API_ListFoundationModels.html),
at ``options.control_url`` when given, else the runtime host with ``bedrock-runtime``
made ``bedrock``, else (a proxy, a VPC endpoint) the backend's own URL. Models only
reachable through an inference profile (``us.anthropic.…``) are not in that list: give
them as ``options.models``, which is then served as it is.

Options: ``region``, ``access_key_id`` / ``secret_access_key`` / ``session_token``,
``profile`` (auth_aws.py), ``models``, ``control_url``, ``additional_fields`` (merged into
additionalModelRequestFields).
"""

from __future__ import annotations

import functools
import re
from urllib.parse import urlsplit

from eldric.backends import auth_aws
from eldric.backends.egress import Adapter, Context, Outbound, Reach
from eldric.backends.eventstream import split
from eldric.backends.table import CHAT, BackendDef
from eldric.stream.upstream_errors import normalise
from eldric.wire.native import bedrock as wire

DOCS = "https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html"
_RUNTIME = re.compile(r"^(https?://)bedrock-runtime(-fips)?\.")


class Chat(wire.Converse):
    """The Egress of one chat request (egress.py): the translation with its request and
    its frames."""

    def outbound(self) -> Outbound:
        if self.stream:
            return Outbound(wire.model_path(self.model, "converse-stream"), self._body,
                            headers={"Content-Type": "application/json",
                                     "Accept": "application/vnd.amazon.eventstream"},
                            framing="aws")
        return Outbound(wire.model_path(self.model, "converse"), self._body,
                        headers={"Content-Type": "application/json",
                                 "Accept": "application/json"}, framing="json")

    def feed(self, frame: bytes) -> list[bytes]:
        return self.event(*split(frame))

    def error(self, status: int, raw: bytes) -> tuple[int, bytes]:
        mapped, body = wire.error(status, raw)
        return mapped, body if body is not None else normalise(mapped, raw, "bedrock")

    def follow(self, raw: bytes) -> Outbound | None:
        return None


def chat(body: dict, ctx: Context) -> Chat:
    return Chat(body, ctx)


def control_url(reach: Reach) -> str:
    given = reach.options.get("control_url")
    if isinstance(given, str) and given:
        return given.rstrip("/")
    base = reach.url.rstrip("/")
    return _RUNTIME.sub(lambda m: f"{m.group(1)}bedrock{m.group(2) or ''}.", base, count=1)


def _models(reach: Reach) -> Outbound | None:
    if auth_aws.available() and not auth_aws.uses_key(reach):
        auth_aws.keeper(reach).kick()  # resolved from the probe on, off the loop
    if reach.options.get("models"):
        return None  # the configured list is the list
    url = control_url(reach)
    host = urlsplit(url)
    return Outbound("/foundation-models", method="GET", query="byOutputModality=TEXT",
                    url=f"{host.scheme}://{host.netloc}{host.path}/foundation-models")


ADAPTERS = {"bedrock": Adapter(
    name="bedrock", ops={CHAT: chat}, sign=auth_aws.sigv4("bedrock", bearer=True),
    ready=functools.partial(auth_aws.ready, bearer=True),
    models=_models, parse_models=wire.model_ids, tools="native", vision=True,
    inline_images=True,
    option_keys=auth_aws.OPTIONS | {"control_url", "additional_fields"},
    check=lambda options, key: auth_aws.check(options, key, bearer=True))}

ROWS = [BackendDef(
    "bedrock", "Amazon Bedrock (Converse)", "bedrock",
    "https://bedrock-runtime.us-east-1.amazonaws.com", "cloud", auth="sigv4",
    key_env="AWS_BEARER_TOKEN_BEDROCK", models="/foundation-models", paths=(CHAT,),
    tools="native", vision=True, docs=DOCS,
    tested="fake (tests/fakes/bedrock.py, SigV4 checked by botocore)",
    note="pip install 'eldric[aws]'; SigV4 from options/env/profile or a Bedrock API key; "
         "region from options.region or the URL")]
