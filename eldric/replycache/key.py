"""What a request is, for the cache: its normalised form hashed, and whether it may be
cached at all (the policy). Read from the body the hop already has; never written back.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json

from eldric.replycache.config import CacheConfig

# Fields that change how a reply is delivered or who asked, not what it says.
_UNKEYED = frozenset(("stream", "stream_options", "user", "metadata", "store",
                      "service_tier", "prompt_cache_key", "safety_identifier"))


def normalised(path: str, body: dict) -> bytes:
    """The request's identity: path and every field that shapes the reply, as sorted
    JSON (so key order and whitespace in the client's body do not matter)."""
    kept = {k: v for k, v in body.items() if k not in _UNKEYED}
    return json.dumps([path, kept], sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode()


def digest(path: str, body: dict, scope: str) -> str:
    return scope + ":" + hashlib.sha256(normalised(path, body)).hexdigest()


def deterministic(body: dict) -> bool:
    """Temperature 0 or a seed: a reply the backend would give again (OpenAI's default
    temperature is 1, so a body naming none is sampled)."""
    return body.get("temperature") == 0 or body.get("seed") is not None


def refusal(cfg: CacheConfig, body: object, model: str | None) -> str | None:
    """Why this request is not cached ("bypass"), or None: it may be."""
    if not isinstance(body, dict):
        return "not a JSON object"
    if not isinstance(model, str) or not model:
        return "no model"
    if cfg.models and not any(fnmatch.fnmatchcase(model, p) for p in cfg.models):
        return "model not opted in"
    if not cfg.nondeterministic and not deterministic(body):
        return "sampled"
    n = body.get("n")
    if n is not None and n != 1:
        return "n"
    return None


def directives(header: str | None) -> tuple[bool, bool]:
    """(look up, store) from the client's Cache-Control: no-cache skips the lookup (the
    fresh reply is still kept), no-store neither looks up nor keeps."""
    if not header:
        return True, True
    words = {w.strip().split("=", 1)[0].lower() for w in header.split(",")}
    if "no-store" in words:
        return False, False
    return "no-cache" not in words, True
