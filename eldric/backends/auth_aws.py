"""AWS Signature Version 4 for Bedrock and SageMaker, by botocore (the optional extra
``eldric[aws]``: ``pip install 'eldric[aws]'``).

The signature itself is botocore's (``botocore.auth.SigV4Auth``), over the method, the
URL exactly as it is sent, the body and a few headers (``host``, ``content-type``, the
``x-amz-*`` ones): https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html.
Only those headers are signed so that what the HTTP client adds later (User-Agent,
Accept-Encoding, Content-Length) cannot break it.

Credentials, per backend, from its ``options`` (``access_key_id``, ``secret_access_key``,
``session_token``), else botocore's own chain for ``options.profile`` or the default
profile (environment, shared credentials and config files, SSO, container and instance
metadata). The chain does I/O (files, the metadata service) and temporary credentials
expire, so it is resolved and looked at again (botocore refreshes temporary credentials
near their expiry) in the event loop's default executor, never in the loop: the adapter's
``ready`` (awaited by eldric/backends/call.py before signing) starts that look when it is
due, every _REFRESH_EVERY seconds while requests or probes come (no thread per backend
that outlives it; the executor ends with the loop), and waits for it (asynchronously, at
most _FIRST_WAIT) only while no usable credentials are held; signing only reads the
latest frozen credentials. A request finding none (not resolved in time, or the chain
failed) fails over with a 503 naming the reason.

Region: ``options.region``, else the one in the URL's host
(``bedrock-runtime.eu-west-1.amazonaws.com``), else ``AWS_REGION`` /
``AWS_DEFAULT_REGION``, else us-east-1.

Bedrock also takes an API key (``Authorization: Bearer …``; the key of the backend,
``AWS_BEARER_TOKEN_BEDROCK`` in AWS's SDKs): with a key and no credentials in the
options, that is sent instead of a signature
(https://docs.aws.amazon.com/bedrock/latest/userguide/api-keys-use.html).
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from eldric.backends.egress import Reach, Signer
from eldric.errors import ConfigError, UpstreamFailure, error_json

# The headers signed besides host (lower-case); x-amz-* are always signed.
_SIGNED = frozenset(("content-type",))
_REFRESH_EVERY = 60.0  # seconds between looks at refreshable credentials
_RETRY_EVERY = 5.0  # seconds between tries of a chain that failed
_FIRST_WAIT = 5.0  # how long a request without credentials waits (asynchronously) for them
_HOST_REGION = re.compile(r"^(?:bedrock-runtime|bedrock|runtime\.sagemaker|"
                          r"runtime-fips\.sagemaker|bedrock-runtime-fips)"
                          r"\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$")

INSTALL_HINT = "AWS backends need botocore: pip install 'eldric[aws]'"


# The options auth_aws reads (bedrock's and sagemaker's adapters take them all).
OPTIONS = frozenset({"region", "access_key_id", "secret_access_key", "session_token",
                     "profile", "signing_name"})


def available() -> bool:
    try:
        import botocore  # noqa: F401
    except ImportError:
        return False
    return True


def region_of(url: str, options: Mapping[str, Any]) -> str:
    region = options.get("region")
    if isinstance(region, str) and region:
        return region
    m = _HOST_REGION.match(urlsplit(url).hostname or "")
    if m:
        return m.group(1)
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


class Keeper:
    """One backend's credentials, resolved and kept fresh off the event loop."""

    def __init__(self, name: str, options: Mapping[str, Any]):
        self.name = name
        self.error: str | None = None
        self._frozen: Any = None  # botocore ReadOnlyCredentials
        self._expires: float | None = None  # their expiry (epoch seconds), if they have one
        self._creds: Any = None  # botocore's (Refreshable)Credentials, once resolved
        self._profile = options.get("profile")
        self._static = False
        self._next_look = 0.0  # monotonic time of the next resolution or refresh look
        self._pending: asyncio.Future[None] | None = None
        static = options.get("access_key_id"), options.get("secret_access_key")
        if any(static):
            if not all(isinstance(v, str) and v for v in static):
                raise ConfigError(f"backend {name}: options need both access_key_id and "
                                  "secret_access_key")
            from botocore.credentials import ReadOnlyCredentials
            self._frozen = ReadOnlyCredentials(static[0], static[1],
                                               options.get("session_token") or None)
            self._static = True

    def _usable(self) -> bool:
        return self._frozen is not None and (self._expires is None
                                             or self._expires > time.time())

    def kick(self) -> asyncio.Future[None] | None:
        """Start a resolution or refresh look in the executor when one is due; the one
        under way, if any. Needs the running loop (a request's, a probe's)."""
        if self._static:
            return None
        now = time.monotonic()
        if self._pending is None and now >= self._next_look:
            self._next_look = now + _RETRY_EVERY  # until it is known to have worked
            fut = asyncio.get_running_loop().run_in_executor(None, self._look)
            self._pending = fut
            fut.add_done_callback(self._looked)
        return self._pending

    def _looked(self, fut: asyncio.Future[None]) -> None:
        self._pending = None
        if not fut.cancelled() and fut.exception() is None and self.error is None:
            self._next_look = time.monotonic() + _REFRESH_EVERY

    def _look(self) -> None:
        """In an executor thread: botocore's chain (first), its refresh (later)."""
        import botocore.session

        try:
            if self._creds is None:
                creds = botocore.session.Session(profile=self._profile).get_credentials()
                if creds is None:
                    raise RuntimeError("no AWS credentials found (options, environment, "
                                       "shared files, instance metadata)")
                self._creds = creds
            # refreshes temporary credentials near their expiry (I/O, here only)
            frozen = self._creds.get_frozen_credentials()
            expiry = getattr(self._creds, "_expiry_time", None)
            self._expires = expiry.timestamp() if expiry is not None else None
            self._frozen, self.error = frozen, None
        except Exception as e:  # noqa: BLE001 - any failure is the backend's state
            self.error = f"{type(e).__name__}: {e}"
            self._creds = None  # the chain again next time

    async def ready(self) -> None:
        """Awaited before signing: at once while usable credentials are held (a due
        refresh goes on in the background); else the look under way, at most
        _FIRST_WAIT seconds, without blocking the loop."""
        pending = self.kick()
        if pending is None or self._usable():
            return
        try:
            await asyncio.wait_for(asyncio.shield(pending), _FIRST_WAIT)
        except TimeoutError:
            pass  # current() says so

    def current(self, upstream: str) -> Any:
        try:
            self.kick()  # a signer used without the adapter's ready (auth.signer("sigv4"))
        except RuntimeError:  # no running loop: nothing to start it on
            pass
        if not self._usable():
            why = self.error or ("they are still being resolved" if self._frozen is None
                                 else "they expired and could not be refreshed")
            raise UpstreamFailure(upstream, "connect", 503, error_json(
                503, f"backend {self.name}: no AWS credentials ({why})",
                code="upstream_unavailable"))
        return self._frozen


_keepers: dict[tuple, Keeper] = {}
_lock = threading.Lock()


def _explicit(options: Mapping[str, Any]) -> bool:
    return bool(options.get("access_key_id") or options.get("secret_access_key")
                or options.get("profile"))


def keeper(reach: Reach) -> Keeper:
    """The backend's credentials keeper (started on first use: call it early, from the
    probe, so the first request finds them resolved)."""
    if not available():
        raise ConfigError(f"backend {reach.name}: {INSTALL_HINT}")
    opts = reach.options
    key = (reach.name, opts.get("access_key_id"), opts.get("secret_access_key"),
           opts.get("session_token"), opts.get("profile"))
    with _lock:
        k = _keepers.get(key)
        if k is None:
            k = _keepers[key] = Keeper(reach.name, opts)
        return k


def check(options: Mapping[str, Any], key: str | None = None, *,
          bearer: bool = False) -> None:
    """The adapters' config check: credentials given in the options are both keys
    (strings), a profile, session token or region a string; botocore installed unless
    the backend sends a Bedrock API key (`bearer`: a key and no credentials in its
    options), since everything else is signed."""
    static = options.get("access_key_id"), options.get("secret_access_key")
    if any(static) and not all(isinstance(v, str) and v for v in static):
        raise ValueError("options.access_key_id and options.secret_access_key go together")
    for name in ("session_token", "profile", "region"):
        if options.get(name) is not None and not isinstance(options[name], str):
            raise ValueError(f"option {name} must be a string")
    if not (bearer and key and not _explicit(options)) and not available():
        raise ValueError(INSTALL_HINT)


def uses_key(reach: Reach) -> bool:
    """A Bedrock backend with a key and no credentials in its options: its API key is
    sent (Bearer), nothing is signed."""
    return bool(reach.key and not _explicit(reach.options))


async def ready(reach: Reach, *, bearer: bool = False) -> None:
    """The adapters' ``ready``: the backend's credentials resolved (or a refresh
    started) off the loop; nothing for a Bedrock API key (`bearer`) or without botocore
    (the signer answers 503 then)."""
    if (bearer and uses_key(reach)) or not available():
        return
    await keeper(reach).ready()


def sigv4(service: str, *, bearer: bool = False) -> Signer:
    """A Signer for an AWS service's signing name ("bedrock", "sagemaker"). `bearer`:
    a backend with a key and no credentials in its options sends the key as a bearer
    token instead (Bedrock's API keys)."""

    def sign(reach: Reach, method: str, url: str, headers: Mapping[str, str],
             body: bytes) -> dict[str, str]:
        if bearer and uses_key(reach):
            return {"Authorization": f"Bearer {reach.key}"}
        if not available():
            raise UpstreamFailure(reach.state.id, "connect", 503, error_json(
                503, f"backend {reach.name}: {INSTALL_HINT}", code="upstream_unavailable"))
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        creds = keeper(reach).current(reach.state.id)
        signed = {k: v for k, v in headers.items()
                  if k.lower() in _SIGNED or k.lower().startswith("x-amz-")}
        req = AWSRequest(method=method, url=url, data=body, headers=signed)
        SigV4Auth(creds, service, region_of(url, reach.options)).add_auth(req)
        return {k: v for k, v in req.headers.items() if k not in signed}

    return sign


def _service_of(reach: Reach, method: str, url: str, headers: Mapping[str, str],
                body: bytes) -> dict[str, str]:
    host = urlsplit(url).hostname or ""
    name = reach.options.get("signing_name")
    if not isinstance(name, str) or not name:
        name = "sagemaker" if ".sagemaker." in host else "bedrock"
    return _BY_SERVICE.setdefault(name, sigv4(name))(reach, method, url, headers, body)


_BY_SERVICE: dict[str, Signer] = {}
# auth.signer("sigv4"): the service's signing name from options.signing_name or the
# host (runtime.sagemaker.* is "sagemaker", else "bedrock"); the adapters here use
# sigv4(service) directly.
sign: Signer = _service_of
