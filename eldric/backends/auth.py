"""The auth headers of a native request, one Signer per scheme (table.Auth).

A Signer is ``(reach, method, url, headers, body) -> headers to add`` and does no I/O:
a token that must be refreshed (a Google service account's) is kept fresh by its own
background task and only read here. Schemes with an optional dependency live in their
own module, imported only when a backend uses them: ``sigv4`` (AWS, botocore:
auth_aws.py) and ``google`` (google-auth: auth_google.py).

Headers, as each API documents them:
- bearer: ``Authorization: Bearer KEY`` (OpenAI, Cohere, most others);
- x-api-key: ``x-api-key: KEY`` (Anthropic:
  https://docs.anthropic.com/en/api/overview#authentication);
- api-key: ``api-key: KEY`` (Azure OpenAI / Azure ML key auth);
- goog-api-key: ``x-goog-api-key: KEY`` (Gemini API:
  https://ai.google.dev/gemini-api/docs/api-key);
- token: ``Authorization: Token KEY`` (Replicate's older scheme);
- none: nothing.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from eldric.backends.egress import Reach, Signer


def _header(name: str, template: str = "{key}") -> Signer:
    def sign(reach: Reach, method: str, url: str, headers: Mapping[str, str],
             body: bytes) -> dict[str, str]:
        return {name: template.format(key=reach.key)} if reach.key else {}
    return sign


def none(reach: Reach, method: str, url: str, headers: Mapping[str, str],
         body: bytes) -> dict[str, str]:
    return {}


bearer = _header("Authorization", "Bearer {key}")
x_api_key = _header("x-api-key")
api_key = _header("api-key")
goog_api_key = _header("x-goog-api-key")
token = _header("Authorization", "Token {key}")

_PLAIN: dict[str, Signer] = {"none": none, "bearer": bearer, "x-api-key": x_api_key,
                             "api-key": api_key, "goog-api-key": goog_api_key, "token": token}
# Schemes with an optional dependency: (module, its Signer's name), imported on first use.
_LAZY = {"sigv4": ("eldric.backends.auth_aws", "sign"),
         "google": ("eldric.backends.auth_google", "sign")}


def signer(auth_name: str) -> Signer:
    """The Signer of a scheme; a lazily imported one raises ImportError naming the extra
    (eldric[aws], eldric[vertex]) when its dependency is missing."""
    if auth_name in _PLAIN:
        return _PLAIN[auth_name]
    if auth_name in _LAZY:
        module, name = _LAZY[auth_name]
        return getattr(importlib.import_module(module), name)
    raise ValueError(f"unknown auth scheme {auth_name!r}")


def lazy(auth_name: str) -> Signer:
    """A Signer that imports its scheme's module on its first request, so an Adapter
    defined at import time (a native module's ADAPTERS) does not need the extra until a
    backend of it is used."""
    found: list[Signer] = []

    def sign(reach: Reach, method: str, url: str, headers: Mapping[str, str],
             body: bytes) -> dict[str, str]:
        if not found:
            found.append(signer(auth_name))
        return found[0](reach, method, url, headers, body)
    return sign
