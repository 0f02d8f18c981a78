"""A fake Vertex AI and the Google OAuth token endpoint its service account names.

- ``POST /token`` (the service-account key's ``token_uri``): the JWT-bearer grant of
  https://developers.google.com/identity/protocols/oauth2/service-account#httprest:
  form ``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<JWT>``; the
  JWT's RS256 signature is checked with the key's public half (cryptography, not
  google-auth, so the client is not judged by itself), and its claims (iss = the
  account, aud = https://oauth2.googleapis.com/token as the guide says it always is,
  scope, iat/exp at most an hour apart). Answers
  ``{"access_token", "expires_in", "token_type": "Bearer"}``; a bad grant is 400
  ``{"error": "invalid_grant", "error_description"}``.
- Vertex (https://cloud.google.com/vertex-ai/docs/reference/rest): every call needs
  ``Authorization: Bearer <a token this fake issued and that has not expired>``, else 401
  UNAUTHENTICATED (google.rpc.Status). ``GET /v1/projects/{p}/locations/{l}`` is the
  Location resource; ``…/publishers/google/models/{m}:generateContent`` and
  ``:streamGenerateContent?alt=sse`` answer as the fake Gemini API (tests/fakes/gemini.py);
  ``…/publishers/anthropic/models/{m}:rawPredict`` / ``:streamRawPredict`` take a Messages
  body with ``anthropic_version: "vertex-2023-10-16"`` and no ``model`` (the path names
  it) and answer as the fake Anthropic API (tests/fakes/anthropic.py).
"""

from __future__ import annotations

import asyncio

import base64
import json
import time
import uuid
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.fakes import anthropic as fake_anthropic
from tests.fakes import gemini as fake_gemini

PROJECT = "eldric-test"
ACCOUNT = f"eldric@{PROJECT}.iam.gserviceaccount.com"
SCOPE = "https://www.googleapis.com/auth/cloud-platform"
AUDIENCE = "https://oauth2.googleapis.com/token"


class Knobs(fake_gemini.Knobs):
    def __init__(self) -> None:
        super().__init__()
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.tokens: dict[str, float] = {}  # issued token -> expiry (epoch seconds)
        self.expires_in = 3599
        self.grants = 0  # tokens issued
        self.refuse_grants = False
        self.stall_grants = False  # the token endpoint takes the request and does not answer


def service_account(knobs: Knobs, url: str, path: Path) -> Path:
    """A service-account key file, as the console downloads one, whose token_uri is the
    fake's: its path."""
    pem = knobs.key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()).decode()
    path.write_text(json.dumps({
        "type": "service_account", "project_id": PROJECT, "private_key_id": "k1",
        "private_key": pem, "client_email": ACCOUNT, "client_id": "1234567890",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": f"{url}/token",
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "universe_domain": "googleapis.com"}))
    return path


def _b64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _grant_problem(knobs: Knobs, form: Any) -> str | None:
    if knobs.refuse_grants:
        return "Invalid JWT Signature."
    if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
        return "grant_type must be the JWT bearer grant"
    try:
        head, claims, sig = str(form.get("assertion") or "").split(".")
        header, payload = json.loads(_b64(head)), json.loads(_b64(claims))
        knobs.key.public_key().verify(_b64(sig), f"{head}.{claims}".encode(),
                                      padding.PKCS1v15(), hashes.SHA256())
    except Exception:
        return "Invalid JWT Signature."
    if header.get("alg") != "RS256" or payload.get("iss") != ACCOUNT:
        return "Invalid issuer or algorithm"
    # "When making an access token request this value is always
    # https://oauth2.googleapis.com/token", whatever host serves the grant
    if payload.get("aud") != AUDIENCE or payload.get("scope") != SCOPE:
        return "Invalid audience or scope"
    if not 0 < payload.get("exp", 0) - payload.get("iat", 0) <= 3600:
        return "Invalid JWT: exp - iat must be at most an hour"
    return None


async def token(request: web.Request) -> web.Response:
    knobs = request.app[fake_gemini.KNOBS]
    assert isinstance(knobs, Knobs)
    form = await request.post()
    while knobs.stall_grants:  # until the test lets it go (a server cannot stop mid-handler)
        await asyncio.sleep(0.05)
    if (problem := _grant_problem(knobs, form)) is not None:
        return web.json_response({"error": "invalid_grant", "error_description": problem},
                                 status=400)
    issued = f"ya29.fake-{uuid.uuid4().hex}"
    knobs.tokens[issued] = time.time() + knobs.expires_in
    knobs.grants += 1
    return web.json_response({"access_token": issued, "expires_in": knobs.expires_in,
                              "token_type": "Bearer"})


def _bearer(request: web.Request) -> web.Response | None:
    knobs = request.app[fake_gemini.KNOBS]
    auth = request.headers.get("Authorization", "")
    issued = knobs.tokens.get(auth.removeprefix("Bearer ")) if auth.startswith("Bearer ") else None
    if issued is None or issued < time.time():
        return fake_gemini.fail(401, "UNAUTHENTICATED", "Request had invalid authentication "
                                "credentials. Expected OAuth 2 access token, login cookie or "
                                "other valid authentication credential.")
    return None


async def location(request: web.Request) -> web.Response:
    await fake_gemini.record(request)
    if (denied := _bearer(request)) is not None:
        return denied
    p, loc = request.match_info["project"], request.match_info["location"]
    return web.json_response({"name": f"projects/{p}/locations/{loc}", "locationId": loc})


async def google_model(request: web.Request) -> web.StreamResponse:
    knobs, body = await fake_gemini.record(request)
    if (denied := _bearer(request)) is not None:
        return denied
    model, method = fake_gemini.split(request.match_info["tail"])
    return await fake_gemini.generate(request, model, method, knobs, body)


async def anthropic_model(request: web.Request) -> web.StreamResponse:
    knobs, body = await fake_gemini.record(request)
    if (denied := _bearer(request)) is not None:
        return denied
    model, method = fake_gemini.split(request.match_info["tail"])
    if method not in ("rawPredict", "streamRawPredict"):
        return fake_gemini.fail(404, "NOT_FOUND", f"Method {method} not found")
    if not isinstance(body, dict) or body.get("anthropic_version") != "vertex-2023-10-16" \
            or "model" in body:
        return fake_anthropic.error(400, "invalid_request_error",
                                    "anthropic_version: vertex-2023-10-16 is required in the "
                                    "body, and model is not allowed there")
    for field in ("max_tokens", "messages"):
        if field not in body:
            return fake_anthropic.error(400, "invalid_request_error", f"{field}: Field required")
    scenario = knobs.scenario or fake_anthropic._scenario(fake_anthropic.Knobs(), body)
    if scenario in fake_gemini.HTTP_ERRORS:  # the Vertex front's quota / overload
        return fake_gemini.fail(*fake_gemini.HTTP_ERRORS[scenario])
    if scenario in fake_anthropic.HTTP_ERRORS and (scenario == "overloaded"
                                                   or method == "rawPredict"):
        return fake_anthropic.error(*fake_anthropic.HTTP_ERRORS[scenario])
    if method == "rawPredict":
        return web.json_response(fake_anthropic.MESSAGES.get(scenario, fake_anthropic.MESSAGES["text"]))
    if not body.get("stream"):
        return fake_anthropic.error(400, "invalid_request_error",
                                    "streamRawPredict needs stream: true")
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    await resp.write(fake_anthropic.TRANSCRIPTS.get(scenario, fake_anthropic.TEXT_SSE))
    await resp.write_eof()
    return resp


def app(knobs: Knobs | None = None) -> web.Application:
    a = web.Application()
    a[fake_gemini.KNOBS] = knobs or Knobs()
    base = "/v1/projects/{project}/locations/{location}"
    a.router.add_post("/token", token)
    a.router.add_get(base, location)
    a.router.add_post(base + "/publishers/google/models/{tail}", google_model)
    a.router.add_post(base + "/publishers/anthropic/models/{tail}", anthropic_model)
    return a
