"""The cloud worker's settings (file section "cloud", env ELDRIC_CLOUD_*, flags)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

import msgspec

from eldric.cluster.config import MemberConfig
from eldric.config import Ms, flag_meta
from eldric.roles.cloud.kinds import PROVIDER_KINDS

# The types eldric speaks: the kinds table's names, so a new kind is one entry there.
BackendType = Literal[tuple(PROVIDER_KINDS)]  # type: ignore[valid-type]


class BackendSpec(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    type: BackendType | None = None  # None: inferred from a known provider's name
    url: str | None = None  # None: the known provider's default URL
    api_key: str | None = None  # "$ENV_VAR" reads the environment; None: the provider's variable
    priority: int = 100  # lower wins when several backends list a model
    enabled: bool = True
    headers: dict[str, str] = {}
    api_version: str = "2024-10-21"  # azure_openai only
    # A native kind's adapter options (project, region, template, models, …: each
    # adapter's section of docs/backends.md says which it reads)
    options: dict[str, object] = {}


# name:url:key where the URL has colons of its own. A number right after the host is
# the port; a ":" after the host[:port][/path] starts the key.
_ENTRY = re.compile(r"^(?P<name>[^:]+)(?::(?P<rest>.*))?$")
_URL = re.compile(r"^(?P<url>https?://[^/:\s]+(?::\d+)?(?:/[^:]*)?)(?::(?P<key>.*))?$")


def parse_backends(text: str) -> list[dict]:
    """--backends "openai,anthropic::$MY_KEY,xai:https://api.x.ai/v1:KEY,ollama-remote:http://10.0.0.5:11434"."""
    out = []
    for item in (x.strip() for x in text.split(",")):
        if not item:
            continue
        m = _ENTRY.match(item)
        assert m is not None
        entry: dict = {"name": m.group("name").strip()}
        rest = m.group("rest") or ""
        if rest.startswith(":"):  # name::key (default URL)
            key = rest[1:]
        elif rest:
            u = _URL.match(rest)
            if u is None:
                raise ValueError(f"backend {entry['name']!r}: {rest!r} is not http(s)://host[:port][/path][:key]")
            entry["url"] = u.group("url").rstrip("/")
            key = u.group("key") or ""
        else:
            key = ""
        if key:
            entry["api_key"] = key
        out.append(entry)
    return out


class CloudConfig(MemberConfig, kw_only=True, forbid_unknown_fields=True):
    backends: Annotated[list[BackendSpec], flag_meta(
        "name[:url[:key]],… — a known name (any kind `eldric backends` lists: openai, groq, "
        "gemini, bedrock, …) brings its type, URL and key variable; a key may be $ENV_VAR; "
        "a backend's options (a native kind's, a model list) go in the config file",
        parse=parse_backends)] = []
    default_backend: Annotated[str | None, flag_meta(
        "where a model no backend lists is sent (else 404)")] = None
    refresh_interval_ms: Annotated[Ms, flag_meta("model catalog refresh period, ms")] = 300_000
    health_check_interval_ms: Annotated[Ms, flag_meta(
        "backend probe period (reachability, latency, key accepted), ms",
        flag="health-interval")] = 60_000
    admin_key: Annotated[str | None, flag_meta("key for /api/v1/backends changes")] = None
