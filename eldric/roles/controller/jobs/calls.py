"""Requests from the controller to a worker's model API, failures in eldric's one shape.

Everything the controller asks of a worker (start or follow an operation, cancel it,
show a model, list its models) goes through open_reply(), which turns what went wrong
into the UpstreamFailure the shared Failover judges (eldric.stream.failover): no
connection, no reply in time, or an error status with the worker's OpenAI-shaped body.
The cluster key goes with every request, as workers demand it when they have one.
"""

from __future__ import annotations

import aiohttp
import msgspec

from eldric.bus.prober import describe
from eldric.errors import UpstreamFailure
from eldric.stream.upstream_errors import normalise

_enc = msgspec.json.Encoder()


def auth(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


async def open_reply(session: aiohttp.ClientSession, method: str, url: str, *, who: str,
                     key: str | None, timeout: aiohttp.ClientTimeout,
                     body: object = None) -> aiohttp.ClientResponse:
    """The worker's reply with a status below 400 (the caller reads and releases it)."""
    headers = auth(key)  # the session sends eldric's User-Agent
    data = None
    if body is not None:
        data = _enc.encode(body)
        headers["Content-Type"] = "application/json"
    try:
        resp = await session.request(method, url, data=data, headers=headers,
                                     timeout=timeout)
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise _failure(exc, who, replied=False) from None
    if resp.status >= 400:
        try:
            raw = await resp.read()
        except (aiohttp.ClientError, OSError, TimeoutError):
            raw = b""
        finally:
            resp.release()
        raise UpstreamFailure(who, "status", resp.status, normalise(resp.status, raw, who))
    return resp


async def read_whole(resp: aiohttp.ClientResponse, who: str) -> bytes:
    """A reply's whole body; a reply that breaks off is a failure of the worker."""
    try:
        async with resp:
            return await resp.read()
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise _failure(exc, who, replied=True) from None


def _failure(exc: BaseException, who: str, *, replied: bool) -> UpstreamFailure:
    """What went wrong, as the Failover judges it: no reply in time, no connection, or
    (`replied`) a reply that broke off."""
    if isinstance(exc, TimeoutError):
        what = "stopped sending its reply" if replied else "gave no reply in time"
        return UpstreamFailure.of(who, "timeout", 504, f"worker {who} {what}")
    if replied:
        return UpstreamFailure.of(who, "closed", 502,
                                  f"worker {who} broke off its reply: {describe(exc)}")
    return UpstreamFailure.of(who, "connect", 503,
                              f"worker {who} is unreachable: {describe(exc)}")
