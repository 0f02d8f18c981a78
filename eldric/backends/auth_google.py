"""Google OAuth access tokens for Vertex AI: a service account's, through google-auth.

The optional extra ``eldric[vertex]`` brings google-auth; this module is imported only
when a backend's auth is ``google``. Where the service account comes from, per backend:
``options.credentials`` (the path of its JSON key file, or the key's JSON object),
else ``GOOGLE_APPLICATION_CREDENTIALS``; with neither, the backend's ``api_key`` is sent
as a ready-made access token (``gcloud auth print-access-token``), which nobody renews.

google-auth signs a JWT with the key and trades it at the key's ``token_uri`` for an
access token (https://developers.google.com/identity/protocols/oauth2/service-account).
That trade is I/O, so it never happens on a request: the signer reads the token it holds
and, once the token is within MARGIN of its expiry (or there is none yet), starts a
refresh in the background (a thread running google-auth's blocking refresh) and goes on
with the still-valid token. ``ready()`` (the adapter's ``ready``, awaited by eldric/backends/call.py
before it signs) waits only while no token is valid: the first one, or after a failure.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import time
from collections.abc import Mapping
from typing import Any

import structlog

from eldric.backends.egress import Reach
from eldric.errors import UpstreamFailure, error_json
from eldric.tasks import spawn

log = structlog.get_logger("eldric.backends")

SCOPE = "https://www.googleapis.com/auth/cloud-platform"
MARGIN = 300.0  # seconds before expiry a token is renewed (Google's tokens live 3600 s)


class TokenSource:
    """One service account's access token, renewed ahead of its expiry."""

    def __init__(self, info: Mapping[str, Any]):
        try:
            from google.oauth2 import service_account
        except ImportError:  # pragma: no cover - the extra is missing
            raise RuntimeError("Vertex AI's service-account auth needs google-auth: "
                               "pip install 'eldric[vertex]'") from None
        self._creds = service_account.Credentials.from_service_account_info(
            dict(info), scopes=[SCOPE])
        self.account = str(info.get("client_email") or "?")
        self.token: str | None = None
        self.expires = 0.0  # epoch seconds
        self.error: str | None = None  # the last refresh's failure, until one succeeds
        self._task: asyncio.Task[None] | None = None

    def current(self) -> str | None:
        return self.token if self.token and time.time() < self.expires else None

    def due(self) -> bool:
        return self.token is None or time.time() > self.expires - MARGIN

    def kick(self) -> asyncio.Task[None]:
        """A refresh, started unless one is running on this event loop."""
        task = self._task
        if task is None or task.done() or task.get_loop() is not asyncio.get_running_loop():
            task = self._task = spawn(self._refresh(), name=f"google-token:{self.account}")
        return task

    async def _refresh(self) -> None:
        from google.auth.exceptions import GoogleAuthError
        from google.auth.transport.requests import Request

        try:
            await asyncio.to_thread(self._creds.refresh, Request())
        except (GoogleAuthError, OSError, ValueError) as exc:
            # the key was refused, or the token endpoint is unreachable: kept, shown on the
            # next request; the next sign() tries again
            self.error = f"{type(exc).__name__}: {exc}"[:300]
            log.warning("google_token_refresh_failed", account=self.account, error=self.error)
            return
        expiry = self._creds.expiry  # naive UTC, as google-auth keeps it
        self.token = self._creds.token
        self.expires = (expiry.replace(tzinfo=datetime.UTC).timestamp() if expiry
                        else time.time() + 3600)
        self.error = None

    async def ready(self) -> None:
        """Wait for a token only when none is valid; a renewal that is merely due runs
        in the background (sign() starts it)."""
        if self.current() is None:
            await asyncio.shield(self.kick())


# One source per service account, shared by every backend that names it, for the life of
# the process (as google-auth's own credentials are): a token is the account's, not a
# backend's. Found by what the backend gives (a key file's path, or the key's JSON), so a
# request reads no file: a key file replaced on disk is read at the next start.
_sources: dict[str, TokenSource] = {}


def _given(reach: Reach) -> str | Mapping[str, Any] | None:
    given = reach.options.get("credentials") or os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    return given if isinstance(given, Mapping) else str(given) if given else None


def source(reach: Reach) -> TokenSource | None:
    """The backend's token source; None when it sends its api_key as the token."""
    given = _given(reach)
    if given is None:
        return None
    key = given if isinstance(given, str) else json.dumps(given, sort_keys=True)
    src = _sources.get(key)
    if src is None:
        try:
            if isinstance(given, str):
                with open(os.path.expanduser(given), encoding="utf-8") as f:
                    given = json.load(f)
            src = TokenSource(given)
        except (OSError, ValueError, KeyError) as exc:  # no such file, not a key
            raise UpstreamFailure(reach.state.id, "connect", 502, error_json(
                502, f"backend {reach.name}: its service-account key cannot be used "
                f"({type(exc).__name__}: {exc})"[:300], code="backend_misconfigured")) from None
        _sources[key] = src
    return src


async def ready(reach: Reach) -> None:
    """Await the backend's first token (or one after it expired). A failed refresh does
    not raise here (it shows in sign()); a key that cannot be read does (502)."""
    src = source(reach)
    if src is not None:
        await src.ready()


def sign(reach: Reach, method: str, url: str, headers: Mapping[str, str],
         body: bytes) -> dict[str, str]:
    """``Authorization: Bearer <token>``; UpstreamFailure (502, another backend may answer)
    while the service account has no valid token."""
    src = source(reach)
    if src is None:
        return {"Authorization": f"Bearer {reach.key}"} if reach.key else {}
    if src.due():
        src.kick()
    token = src.current()
    if token is None:
        why = src.error or "the first token is still being fetched"
        raise UpstreamFailure(reach.state.id, "connect", 502, error_json(
            502, f"backend {reach.name} has no Google access token for {src.account}: {why}",
            code="backend_auth_failed"))
    return {"Authorization": f"Bearer {token}"}
