"""The edge's settings (file section "edge", env ELDRIC_EDGE_*, flags)."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

import msgspec

from eldric.batch.config import BatchConfig
from eldric.config import Ms, Renamed, RoleConfig, flag_meta, seconds_to_ms
from eldric.fields import parse_ms
from eldric.replycache.config import CacheConfig
from eldric.roles.edge.plugins.mcp_config import McpServerConfig
from eldric.roles.edge.usage.config import UsageConfig
from eldric.store.responses import ResponsesConfig


def parse_urls(text: str) -> list[str]:
    return [u.strip() for u in text.split(",") if u.strip()]


class TLSConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    mode: Annotated[Literal["manual", "acme"], flag_meta(
        "manual: --cert/--key files (acme is not supported yet)", flag="tls-mode")] = "manual"
    cert_file: Annotated[str | None, flag_meta("TLS certificate chain (PEM)", flag="cert")] = None
    key_file: Annotated[str | None, flag_meta("TLS private key (PEM)", flag="key")] = None


# Budgets are positive; a cost budget may be 0 (priced models refused, free ones not).
Positive = Annotated[int, msgspec.Meta(ge=1)]
Money = Annotated[float, msgspec.Meta(ge=0)]


class ClientSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A static client's settings (auth.clients.NAME): what a created client gets from
    POST /api/v1/clients/register and PATCH /api/v1/clients/NAME. None: no limit of that
    kind (rpm: --per-key-rpm; scopes: inference only)."""

    description: str = ""
    rpm: Positive | None = None
    scopes: list[str] | None = None
    tpm: Positive | None = None  # tokens (prompt + completion) per --rate-window
    max_tokens_per_day: Positive | None = None  # UTC calendar day
    max_cost_per_day: Money | None = None  # USD, the price table's currency
    max_cost_per_month: Money | None = None  # UTC calendar month
    allowed_models: list[str] | None = None  # glob patterns (fnmatch): gpt-4o*, llama-*
    cache: bool | None = None  # the response cache for this client: None as configured


# A client's settings that count (rate and budgets): what must be exact across an
# edge's processes (--processes), so only farm mode has them there.
LIMITS = ("rpm", "tpm", "max_tokens_per_day", "max_cost_per_day", "max_cost_per_month")


class AuthConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    require_api_key: Annotated[bool, flag_meta(
        "refuse requests without a valid API key", flag="require-api-key")] = True
    # key -> client name. Hashed at start-up; the plain keys are not kept.
    api_keys: Annotated[dict[str, str], flag_meta("API key -> client name")] = {}
    # client name (of api_keys, or key-N of --api-key) -> its rpm, scopes, budgets
    clients: Annotated[dict[str, ClientSettings], flag_meta(
        "static clients' settings: {name: {rpm, scopes, tpm, max_tokens_per_day, "
        "max_cost_per_day, max_cost_per_month, allowed_models, cache, description}}")] = {}


# 0 turns a tier off (the quick start's loopback edge limits nothing unless asked).
Rpm = Annotated[int, msgspec.Meta(ge=0)]


def parse_window(text: str) -> int | float:
    """--rate-window was in seconds before every interval became milliseconds: a bare
    number under a second (`--rate-window 60`) is that old habit, which would silently
    mean a 60 ms window, so it must carry its unit."""
    ms = parse_ms(text)
    if ms < 1000 and text.strip().replace(".", "", 1).isdigit():
        raise ValueError(f"{text.strip()} ms is not a rate-limit window; --rate-window is in "
                         f"milliseconds now (it was seconds): write {text.strip()}s, or a "
                         "unit with any window under a second (500ms)")
    return ms


class RateLimits(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    # window_seconds was the window's key before every interval became milliseconds.
    renamed: ClassVar[dict[str, Renamed]] = {
        "window_seconds": Renamed("window_ms", seconds_to_ms, "seconds")}

    global_rpm: Annotated[Rpm, flag_meta("requests per window, all clients together (0: off)",
                                         flag="global-rpm")] = 10_000
    per_ip_rpm: Annotated[Rpm, flag_meta("requests per window per client IP (0: off)",
                                         flag="per-ip-rpm")] = 100
    per_key_rpm: Annotated[Rpm, flag_meta("requests per window per API key (a client's own "
                                          "rpm replaces it; 0: off)", flag="per-key-rpm")] = 1_000
    window_ms: Annotated[Ms, flag_meta("sliding window length, ms (units: 60s, 1m)",
                                       flag="rate-window", parse=parse_window)] = 60_000


class TunnelConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The NAT tunnel (docs/tunnel.md): workers that only connect out, to the edge."""

    poll_ms: Annotated[Ms, flag_meta(
        "longest a tunnelled worker's poll is held before 204 (no poll for twice this: "
        "the tunnel is dropped), ms", flag="tunnel-poll-ms")] = 30_000
    max_queued: Annotated[int, msgspec.Meta(ge=1), flag_meta(
        "requests waiting for one tunnel's worker; beyond: 503 tunnel_busy with "
        "Retry-After")] = 64


class EdgeConfig(RoleConfig, kw_only=True, forbid_unknown_fields=True):
    no_tls: Annotated[bool, flag_meta(
        "plain HTTP on --http-port (behind another proxy, or for testing)", switch=True)] = False
    http_port: Annotated[int, msgspec.Meta(ge=0, le=65535), flag_meta(
        "port for plain HTTP with --no-tls")] = 8080
    tls: TLSConfig = msgspec.field(default_factory=TLSConfig)
    router_urls: Annotated[list[str], flag_meta(
        "routers (or any OpenAI-compatible upstream), URL,URL,…: tried in order of health",
        flag="routers", parse=parse_urls)] = []
    health_check_interval_ms: Annotated[Ms, flag_meta(
        "router health check period, ms", flag="health-interval")] = 10_000
    api_key: Annotated[list[str], flag_meta(
        "an API key clients may use", multiple=True)] = []
    auth: AuthConfig = msgspec.field(default_factory=AuthConfig)
    admin_key: Annotated[str | None, flag_meta(
        "key for /api/v1/clients (create, list, revoke)")] = None
    rate_limits: RateLimits = msgspec.field(default_factory=RateLimits)
    trusted_proxies: Annotated[list[str], flag_meta(
        "peers (IPs or CIDRs) whose X-Forwarded-For is believed")] = []
    cors_origins: Annotated[list[str], flag_meta(
        "browser origins allowed to call the API (CORS)")] = []
    mode: Annotated[Literal["standalone", "farm"], flag_meta(
        "farm: keys, clients and rate-limit windows shared in Redis by several edges")] = "standalone"
    redis_url: Annotated[str | None, flag_meta("Redis for --mode farm")] = None
    plugins_dir: Annotated[str | None, flag_meta(
        "directory of plugins (<id>/manifest.json, main.py); default: plugins in "
        "--data-dir")] = None
    max_tool_rounds: Annotated[int, msgspec.Meta(ge=1, le=32), flag_meta(
        "plugin tools: rounds of tool calls the edge runs for one request before the "
        "model must answer")] = 4
    # MCP servers whose tools join the plugin tools' loop (plugins/mcp.py; file only)
    mcp_servers: list[McpServerConfig] = []
    # Cluster management through the edge (cluster_relay.py) and the NAT tunnel
    controller_url: Annotated[str | None, flag_meta(
        "the controller that worker registrations, heartbeats and pipeline calls are "
        "relayed to (keys with the register scope)", flag="controller")] = None
    cluster_key: Annotated[str | None, flag_meta(
        "the controller's --cluster-key, sent with what the edge relays to it (instead "
        "of the caller's edge key)")] = None
    tunnel: TunnelConfig = msgspec.field(default_factory=TunnelConfig)
    # /v1/responses state: in Redis in farm mode (every edge sees every response)
    responses: ResponsesConfig = msgspec.field(default_factory=ResponsesConfig)
    # usage, spend and budgets per client (eldric/roles/edge/usage/)
    usage: UsageConfig = msgspec.field(default_factory=UsageConfig)
    # the Batch API (eldric/batch/): /v1/files and /v1/batches, run on idle capacity
    batch: BatchConfig = msgspec.field(default_factory=BatchConfig)
    # the response cache (eldric/replycache/): off unless --cache exact|semantic
    cache: CacheConfig = msgspec.field(default_factory=CacheConfig)

    def __post_init__(self) -> None:
        # X-Eldric-Tools and the plugins API name an MCP server by its name: one each.
        names = [m.name for m in self.mcp_servers]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"mcp_servers: the name {twice[0]!r} is given twice "
                             "(each server needs its own)")
