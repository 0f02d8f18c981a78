"""The OpenAI-compatible kinds: one row each, relayed through the zero-copy core.

Defaults from each server's own documentation (the row's `docs`): its usual port, how it
takes a key, where its model list lives (below `url`), which OpenAI paths it serves. A
local server's key is optional (sent as a bearer token when one is configured); `auth`
says how it takes one when it has a key option at all ("none": it has none).

The worker's --backend choices are the local rows and `openai`; the cloud role's
provider names are all of them (roles/worker/backends.py, roles/cloud/providers.py). The
last rows are kinds the product names that have no public server API: listed, refused
at start with a pointer to the template adapter.
"""

from __future__ import annotations

from eldric.backends.table import CHAT, COMPLETIONS, EMBEDDINGS, RERANK, BackendDef

_CORE = (CHAT, COMPLETIONS)
_OPENAI = (*_CORE, EMBEDDINGS)
RESPONSES = "/v1/responses"
MESSAGES = "/v1/messages"
# llama.cpp's server: /v1/messages/count_tokens with /v1/messages, rerank with --reranking
_LLAMACPP = (*_OPENAI, RESPONSES, MESSAGES, RERANK)
_FAKE = "fake (tests/fakes/preset.py)"


def _local(name: str, label: str, url: str, docs: str, *, auth: str = "bearer",
           **kw: object) -> BackendDef:
    return BackendDef(name, label, "openai", url, "local", auth=auth,  # type: ignore[arg-type]
                      docs=docs, tested=kw.pop("tested", _FAKE), **kw)  # type: ignore[arg-type]


def _cloud(name: str, label: str, url: str | None, key_env: str | None, docs: str,
           **kw: object) -> BackendDef:
    return BackendDef(name, label, "openai", url, "cloud", key_env=key_env, docs=docs,
                      tested=kw.pop("tested", _FAKE), **kw)  # type: ignore[arg-type]


LOCAL: tuple[BackendDef, ...] = (
    # Ollama's own API (/api/chat, /api/show, …) relayed untouched; its model list is its
    # /api/tags (the worker's and the cloud's ollama entries say so). /v1/responses since
    # 0.13.3, Anthropic's /v1/messages since 0.14 (no count_tokens).
    _local("ollama", "Ollama", "http://127.0.0.1:11434/v1",
           "https://github.com/ollama/ollama/blob/main/docs/openai.md", auth="none",
           models="/api/tags", paths=(*_OPENAI, RESPONSES, MESSAGES, "/api"), vision=True,
           embeddings=True, tested="fake (tests/fakes/ollama.py)",
           note="model list at the root's /api/tags"),
    _local("vllm", "vLLM", "http://127.0.0.1:8000/v1",
           "https://docs.vllm.ai/en/latest/serving/openai_compatible_server.html",
           paths=(*_LLAMACPP, "/v1/score", "/v1/audio"), embeddings=True, rerank=True,
           note="--api-key for a key"),
    _local("llamacpp", "llama.cpp server", "http://127.0.0.1:8080/v1",
           "https://github.com/ggml-org/llama.cpp/blob/master/tools/server/README.md",
           paths=_LLAMACPP, embeddings=True, rerank=True,
           note="tools need --jinja; embeddings --embeddings; rerank --reranking"),
    _local("tgi", "Hugging Face TGI (Messages API)", "http://127.0.0.1:8080/v1",
           "https://huggingface.co/docs/text-generation-inference/messages_api",
           auth="none", paths=_CORE,
           note="docker -p 8080:80; the launcher's own default port is 3000"),
    _local("localai", "LocalAI", "http://127.0.0.1:8080/v1",
           "https://localai.io/features/openai-functions/",
           paths=(*_OPENAI, RERANK, "/v1/audio", "/v1/images"), embeddings=True,
           rerank=True, note="API_KEY for a key"),
    _local("lmdeploy", "LMDeploy api_server", "http://127.0.0.1:23333/v1",
           "https://lmdeploy.readthedocs.io/en/latest/llm/api_server.html", paths=_CORE,
           note="--api-keys for keys"),
    _local("mlc", "MLC LLM (mlc_llm serve)", "http://127.0.0.1:8000/v1",
           "https://llm.mlc.ai/docs/deploy/rest.html", auth="none", paths=_CORE,
           note="mlc_llm serve --host/--port"),
    _local("nim", "NVIDIA NIM for LLMs", "http://127.0.0.1:8000/v1",
           "https://docs.nvidia.com/nim/large-language-models/latest/api-reference.html",
           auth="none", paths=_CORE, note="health at /v1/health/ready"),
    _local("triton", "NVIDIA Triton (OpenAI-compatible frontend)", "http://127.0.0.1:9000/v1",
           "https://docs.nvidia.com/deeplearning/triton-inference-server/user-guide/docs/"
           "client_guide/openai_readme.html", auth="none", paths=_OPENAI, embeddings=True,
           note="openai_frontend/main.py --openai-port; its v2 API (:8000) is `kserve`"),
    _local("tabbyapi", "ExLlamaV2 / TabbyAPI", "http://127.0.0.1:5000/v1",
           "https://github.com/theroyallab/tabbyAPI/blob/main/endpoints/OAI/router.py",
           paths=_OPENAI, embeddings=True,
           note="a key by default (api_tokens.yml), as x-api-key or a bearer token"),
    # mii.entrypoints.openai_api_server (--port, default 8000; --api-keys). MII's own
    # RESTful gateway (restful_api_port, 28080 in its README) is /mii/{deployment}, not
    # OpenAI's API: reach that one with the template adapter.
    _local("deepspeed-mii", "DeepSpeed-MII (OpenAI-compatible server)",
           "http://127.0.0.1:8000/v1",
           "https://github.com/deepspeedai/DeepSpeed-MII/blob/main/mii/entrypoints/"
           "openai_api_server.py", paths=_CORE,
           note="python -m mii.entrypoints.openai_api_server; not its :28080 /mii/ gateway"),
    _local("openllm", "BentoML / OpenLLM", "http://127.0.0.1:3000/v1",
           "https://github.com/bentoml/OpenLLM", auth="none", paths=_CORE),
    _local("ray-serve", "Ray Serve LLM", "http://127.0.0.1:8000/v1",
           "https://docs.ray.io/en/latest/serve/llm/index.html", auth="none",
           paths=_OPENAI, embeddings=True, note="serve.llm.build_openai_app"),
    _local("kserve-hf", "KServe Hugging Face runtime (OpenAI endpoints)",
           "http://127.0.0.1:8080/openai/v1",
           "https://kserve.github.io/website/docs/model-serving/generative-inference/overview",
           auth="none", paths=(*_OPENAI, RERANK), embeddings=True, rerank=True,
           note="under /openai/v1 (KSERVE_OPENAI_ROUTE_PREFIX); its v2 API is `kserve`"),
    _local("mlx", "MLX (mlx_lm.server)", "http://127.0.0.1:8080/v1",
           "https://github.com/ml-explore/mlx-lm/blob/main/mlx_lm/SERVER.md", auth="none",
           paths=_CORE, note="not for production, its docs say"),
)

CLOUD: tuple[BackendDef, ...] = (
    _cloud("openai", "OpenAI", "https://api.openai.com/v1", "OPENAI_API_KEY",
           "https://platform.openai.com/docs/api-reference", paths=None, vision=True,
           embeddings=True),
    _cloud("xai", "xAI", "https://api.x.ai/v1", "XAI_API_KEY",
           "https://docs.x.ai/docs/api-reference", vision=True),
    _cloud("deepseek", "DeepSeek", "https://api.deepseek.com/v1", "DEEPSEEK_API_KEY",
           "https://api-docs.deepseek.com/"),
    _cloud("groq", "Groq", "https://api.groq.com/openai/v1", "GROQ_API_KEY",
           "https://console.groq.com/docs/openai"),
    _cloud("together", "Together AI", "https://api.together.xyz/v1", "TOGETHER_API_KEY",
           "https://docs.together.ai/docs/openai-api-compatibility", paths=_OPENAI,
           embeddings=True),
    _cloud("fireworks", "Fireworks AI", "https://api.fireworks.ai/inference/v1",
           "FIREWORKS_API_KEY", "https://docs.fireworks.ai/tools-sdks/openai-compatibility",
           paths=_OPENAI, embeddings=True),
    _cloud("mistral", "Mistral AI", "https://api.mistral.ai/v1", "MISTRAL_API_KEY",
           "https://docs.mistral.ai/api/", paths=(CHAT, EMBEDDINGS), embeddings=True),
    # No model list: the backend's `models` option is served as it is.
    _cloud("perplexity", "Perplexity", "https://api.perplexity.ai", "PERPLEXITY_API_KEY",
           "https://docs.perplexity.ai/api-reference/chat-completions-post", models=None,
           paths=(CHAT,), note="no model list: give options.models"),
    _cloud("openrouter", "OpenRouter", "https://openrouter.ai/api/v1", "OPENROUTER_API_KEY",
           "https://openrouter.ai/docs/api-reference/overview", vision=True),
    _cloud("cerebras", "Cerebras", "https://api.cerebras.ai/v1", "CEREBRAS_API_KEY",
           "https://inference-docs.cerebras.ai/resources/openai"),
    # Anyscale's hosted Endpoints closed in 2024; an Anyscale service (Ray Serve LLM)
    # keeps the same OpenAI API at its own URL with its bearer token.
    _cloud("anyscale", "Anyscale-compatible endpoint", None, "ANYSCALE_API_KEY",
           "https://docs.anyscale.com/llm/serving/", note="url required"),
    _cloud("gemini-openai", "Google Gemini (OpenAI-compatible endpoint)",
           "https://generativelanguage.googleapis.com/v1beta/openai", "GEMINI_API_KEY",
           "https://ai.google.dev/gemini-api/docs/openai", paths=_OPENAI, vision=True,
           embeddings=True),
    _cloud("cohere-openai", "Cohere (Compatibility API)",
           "https://api.cohere.ai/compatibility/v1", "COHERE_API_KEY",
           "https://docs.cohere.com/docs/compatibility-api", paths=(CHAT, EMBEDDINGS),
           embeddings=True,
           note="its docs name chat and embeddings only: if /models answers 404, give "
                "options.models"),
    _cloud("nvidia", "NVIDIA API catalog (hosted NIM)", "https://integrate.api.nvidia.com/v1",
           "NVIDIA_API_KEY", "https://docs.api.nvidia.com/nim/reference/", paths=_OPENAI,
           embeddings=True),
    _cloud("ai21", "AI21 Jamba", "https://api.ai21.com/studio/v1", "AI21_API_KEY",
           "https://docs.ai21.com/reference/jamba-1-6-api-ref", models=None, paths=(CHAT,),
           note="no model list: give options.models"),
    _cloud("azure-ml", "Azure ML online endpoint (OpenAI-compatible)", None, None,
           "https://learn.microsoft.com/en-us/azure/machine-learning/how-to-authenticate-online-endpoint",
           models=None, paths=(CHAT,),
           note="url required (https://ENDPOINT.REGION.inference.ml.azure.com/v1); "
                "its key as a bearer token"),
)

# Named by the product, with no public server API to speak to: listed so the table says
# so; `--backend lcm` is refused and points at the template adapter, which reaches such
# a server when one is deployed.
UNAVAILABLE: tuple[BackendDef, ...] = (
    BackendDef("lcm", "Meta Large Concept Model", "template", None, "local", auth="none",
               models=None, paths=(CHAT,), available=False,
               docs="https://github.com/facebookresearch/large_concept_model",
               note="research code, no server: use --backend template"),
    BackendDef("vl-jepa", "Meta VL-JEPA", "template", None, "local", auth="none",
               models=None, paths=(CHAT,), available=False,
               docs="https://arxiv.org/abs/2512.10942",
               note="no public server API: use --backend template"),
)

PRESETS: tuple[BackendDef, ...] = (*LOCAL, *CLOUD, *UNAVAILABLE)
