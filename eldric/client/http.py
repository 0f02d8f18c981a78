"""One HTTP call to an eldric role, for the clients: the JSON answer, or an ApiError
whose line() is what the user sees (the HTTP status and eldric's error code).

aiohttp (already eldric's client and server) rather than another HTTP library: the
streamed calls (`chat`, a pull's progress) read lines as they arrive, and Ctrl-C
cancels the task, which closes the connection, which stops the request upstream.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp


class ApiError(Exception):
    """A call that failed: refused (status and eldric's `code` from the error body),
    or never answered (status 0: the role is down or the URL wrong)."""

    def __init__(self, status: int, code: str, message: str, url: str = "") -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.url = status, code, message, url

    def line(self) -> str:
        if self.status == 0:
            return f"error: cannot reach {self.url}: {self.message}"
        return f"error: HTTP {self.status} {self.code}: {self.message}"


def headers(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


async def error_of(resp: aiohttp.ClientResponse) -> ApiError:
    """The error a refused call's body states (OpenAI's shape, Anthropic's, or text)."""
    text = (await resp.text(errors="replace"))[:2000]
    code, message = "", text.strip() or resp.reason or ""
    try:
        err = json.loads(text).get("error")
    except (ValueError, AttributeError):
        err = None
    if isinstance(err, dict):
        code = str(err.get("code") or err.get("type") or "")
        message = str(err.get("message") or message)
    elif isinstance(err, str):
        message = err
    elif resp.content_type == "text/html" or text.lstrip().startswith("<"):
        # a proxy's or server's error page (nginx's 502): its first line is markup, the
        # status's reason says it
        message = resp.reason or ""
    return ApiError(resp.status, code or "error", message.splitlines()[0] if message else "",
                    str(resp.url))


async def call(session: aiohttp.ClientSession, method: str, url: str, *,
               key: str | None = None, body: Any = None, timeout_s: float = 30) -> Any:
    """The JSON object a 2xx reply carries; raises ApiError otherwise."""
    try:
        async with session.request(method, url, json=body, headers=headers(key),
                                   timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
            if resp.status >= 400:
                raise await error_of(resp)
            # every eldric API (and OpenAI's /v1/models) answers a JSON object: anything
            # else (a web page at a wrong URL, a file server) is one line, not a
            # traceback in the command that reads it
            try:
                body = await resp.json(content_type=None)
            except ValueError:
                body = None
            if not isinstance(body, dict):
                raise ApiError(resp.status, "not_json", f"{url} answered "
                               f"{resp.content_type}, not a JSON object (is it eldric?)",
                               url)
            return body
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise ApiError(0, "unreachable", type(exc).__name__ if not str(exc) else str(exc),
                       url) from None


async def lines(session: aiohttp.ClientSession, method: str, url: str, *,
                key: str | None = None, body: Any = None,
                read_timeout_s: float = 300,
                extra_headers: dict[str, str] | None = None) -> AsyncIterator[bytes]:
    """The reply's lines as they arrive (SSE, NDJSON); raises ApiError on a refusal.
    `extra_headers`: more request headers (chat's X-Eldric-Swarm)."""
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=read_timeout_s)
    try:
        async with session.request(method, url, json=body,
                                   headers={**headers(key), **(extra_headers or {})},
                                   timeout=timeout) as resp:
            if resp.status >= 400:
                raise await error_of(resp)
            async for line in resp.content:
                yield line
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise ApiError(0, "unreachable", type(exc).__name__ if not str(exc) else str(exc),
                       url) from None
